"""Balances API: points, ranks, the public leaderboard and each contributor's own ledger."""
