"""A paid round as ledger entries and balance moves: the payment rule applied to one round.

The rule itself (start at one point, pay only accepted rounds) is `crowdsft.engine.ledger.pay`,
which the engine's simulation calls too; here it becomes the entries the append-only ledger
keeps, each unique per (campaign, round, contributor, rule), so a replay cannot pay twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydantic import BaseModel, ConfigDict

from crowdsft.domain.ids import INITIAL_ROUND_ID
from crowdsft.domain.round import Round
from crowdsft.engine import ledger

INITIAL_RULE = "initial"
INITIAL_ROUND_INDEX = -1


class LedgerEntry(BaseModel):
    """One line of a contributor's points history."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    campaign_id: str
    round_id: str
    round_index: int
    contributor_id: str
    rule: str
    points: float
    recorded_at: datetime


@dataclass(frozen=True)
class RoundPayout:
    entries: list[LedgerEntry]
    moves: dict[str, float]  # contributor -> balance increment
    newcomers: frozenset[str]  # contributors without a balance before this round


def pay(scored: Round, rule: str, known: set[str], at: datetime) -> RoundPayout:
    """The entries and moves of a paid round; `known` holds the members who had a balance."""
    if scored.payment is None or scored.decision is None:
        raise ValueError(f"{scored.round_id} is not paid")
    members = scored.contributor_ids
    had = np.asarray([c in known for c in members], dtype=bool)
    payout = ledger.pay(np.asarray(scored.payment.awards), scored.decision.accepted, had)
    entries: list[LedgerEntry] = []
    for row, contributor_id in enumerate(members):
        if payout.newcomers[row]:
            entries.append(
                LedgerEntry(
                    campaign_id=scored.campaign_id,
                    round_id=INITIAL_ROUND_ID,
                    round_index=INITIAL_ROUND_INDEX,
                    contributor_id=contributor_id,
                    rule=INITIAL_RULE,
                    points=ledger.INITIAL_POINTS,
                    recorded_at=at,
                )
            )
        if payout.awards is not None:
            entries.append(
                LedgerEntry(
                    campaign_id=scored.campaign_id,
                    round_id=scored.round_id,
                    round_index=scored.round_index,
                    contributor_id=contributor_id,
                    rule=rule,
                    points=float(payout.awards[row]),
                    recorded_at=at,
                )
            )
    moves = {c: float(m) for c, m in zip(members, payout.moves, strict=True)}
    newcomers = frozenset(c for c, new in zip(members, payout.newcomers, strict=True) if new)
    return RoundPayout(entries, moves, newcomers)


def standing(contributor_ids: list[str], balances: dict[str, float]) -> np.ndarray:
    """Points going into a round, in the order given; a newcomer holds the starting point."""
    known = np.asarray([c in balances for c in contributor_ids], dtype=bool)
    values = np.asarray([balances.get(c, 0.0) for c in contributor_ids], dtype=np.float64)
    return ledger.standing(values, known)
