"""Serving: the campaigns' current models behind an OpenAI-compatible chat API."""
