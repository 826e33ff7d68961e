"""A paid round as a campaign's standing and a contributor's ledger: the payment rule applied
to one round.

The rule itself (start at one point, pay only accepted rounds) is `crowdsft.engine.ledger.pay`,
which the engine's simulation calls too. A round is paid once (its status moves once), so each
contributor has at most one line per round and rule, derived from the round's stored awards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from crowdsft.domain.ids import INITIAL_ROUND_ID
from crowdsft.domain.round import Round
from crowdsft.engine import ledger

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

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


class Standing:
    """A campaign's points after a round: every contributor ever paid, in the order they were
    first paid. Balances, ranks and the leaderboard are read from it; it is derived from the
    previous standing and one round's payment, so no per-contributor document is written."""

    def __init__(self, contributor_ids: list[str], points: FloatArray) -> None:
        if len(contributor_ids) != len(points):
            raise ValueError(f"{len(contributor_ids)} contributors, {len(points)} balances")
        self.contributor_ids = contributor_ids
        self.points = np.asarray(points, dtype=np.float64)

    @classmethod
    def empty(cls) -> Standing:
        return cls([], np.zeros(0))

    @cached_property
    def rows(self) -> dict[str, int]:
        return {c: row for row, c in enumerate(self.contributor_ids)}

    @cached_property
    def best_first(self) -> IntArray:
        """Rows by points descending, ties by contributor id: the leaderboard's order."""
        ids = np.asarray(self.contributor_ids, dtype=object)
        return np.lexsort((ids, -self.points)) if len(ids) else np.zeros(0, dtype=np.int64)

    @cached_property
    def _ascending(self) -> FloatArray:
        return np.sort(self.points)

    def balance(self, contributor_id: str) -> float | None:
        row = self.rows.get(contributor_id)
        return None if row is None else float(self.points[row])

    def above(self, points: float) -> int:
        """How many hold strictly more than `points`."""
        return int(len(self._ascending) - np.searchsorted(self._ascending, points, "right"))

    def going_in(self, contributor_ids: list[str]) -> FloatArray:
        """Points going into a round, in the order given; a newcomer holds the starting point."""
        rows = self.rows
        known = np.asarray([c in rows for c in contributor_ids], dtype=bool)
        values = np.asarray([self.points[rows[c]] if c in rows else 0.0
                             for c in contributor_ids], dtype=np.float64)  # fmt: skip
        return ledger.standing(values, known)


@dataclass(frozen=True)
class Settlement:
    """A paid round: which members were paid for the first time, and the standing after it."""

    newcomers: BoolArray
    after: Standing


def settle(before: Standing, scored: Round) -> Settlement:
    """The payment rule applied to one round on top of the standing before it: the same float
    additions, in the same order, as the engine's simulation makes."""
    if scored.payment is None or scored.decision is None:
        raise ValueError(f"{scored.round_id} is not paid")
    members = scored.contributor_ids
    rows = before.rows
    had = np.asarray([c in rows for c in members], dtype=bool)
    payout = ledger.pay(np.asarray(scored.payment.awards), scored.decision.accepted, had)
    points = np.concatenate([before.points, np.zeros(int((~had).sum()))])
    old_rows = np.asarray([rows[c] for c, known in zip(members, had, strict=True) if known],
                          dtype=np.int64)  # fmt: skip
    new_rows = np.arange(len(before.points), len(points))
    targets = np.empty(len(members), dtype=np.int64)
    targets[had], targets[~had] = old_rows, new_rows
    points[targets] = points[targets] + payout.moves
    ids = [*before.contributor_ids, *(c for c, known in zip(members, had, strict=True)
                                       if not known)]  # fmt: skip
    return Settlement(payout.newcomers, Standing(ids, points))


@dataclass(frozen=True)
class PaidRound:
    """What a contributor's ledger needs of one paid round they were in."""

    campaign_id: str
    round_id: str
    round_index: int
    rule: str
    accepted: bool
    award: float
    newcomer: bool
    recorded_at: datetime


def entries(contributor_id: str, paid: PaidRound) -> list[LedgerEntry]:
    """A contributor's lines for one round, newest first: the award, then the starting point
    if this round paid them for the first time."""
    lines = []
    if paid.accepted:
        lines.append(LedgerEntry(campaign_id=paid.campaign_id, round_id=paid.round_id,
                                 round_index=paid.round_index, contributor_id=contributor_id,
                                 rule=paid.rule, points=paid.award,
                                 recorded_at=paid.recorded_at))  # fmt: skip
    if paid.newcomer:
        lines.append(LedgerEntry(campaign_id=paid.campaign_id, round_id=INITIAL_ROUND_ID,
                                 round_index=INITIAL_ROUND_INDEX, contributor_id=contributor_id,
                                 rule=INITIAL_RULE, points=ledger.INITIAL_POINTS,
                                 recorded_at=paid.recorded_at))  # fmt: skip
    return lines
