"""How a round pays: every contributor starts with one point, only accepted rounds pay.

The one statement of the method's payment rule. The engine's simulation and the services'
ledger both move balances with `pay`, so they make the same float additions in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

INITIAL_POINTS = 1.0


def standing(balances: FloatArray, known: BoolArray) -> FloatArray:
    """Points going into a round: the balance, or the starting point for a newcomer."""
    return np.where(known, balances, INITIAL_POINTS)


@dataclass(frozen=True)
class Payout:
    """One round's payment to its members, in their order."""

    newcomers: BoolArray  # each gets their starting point now
    awards: FloatArray | None  # what the rule pays; None when the model did not move
    moves: FloatArray  # each balance's increment: starting point plus award


def pay(awards: FloatArray, accepted: bool, known: BoolArray) -> Payout:
    start = np.where(known, 0.0, INITIAL_POINTS)
    paid = np.asarray(awards, dtype=np.float64) if accepted else None
    moves = start + paid if paid is not None else start
    return Payout(~known, paid, moves)
