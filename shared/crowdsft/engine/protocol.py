"""The authors' exact protocol, beside ours: how crowds are drawn and how they dealt groups.

Their released code draws the crowd from the first ``N + 1`` rows of the user table (file order),
shuffled once with a fixed seed (pandas ``sample(frac=1, random_state=42)``), and each run draws
the expert from those rows; their interleaved dealing (the ``interleaved_paper`` grouping)
starts each half again at group 0, with ties in the points sort kept in index order. Ours draws
every run's crowd afresh from the whole population and breaks ties at random. Which of the
differences matter is measured, side by side, by ``bench/paper_main.py --protocol paper``.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray

from crowdsft.engine.crowd import Crowd, sample_crowd

FloatArray: TypeAlias = NDArray[np.float64]
Protocol: TypeAlias = Literal["ours", "paper"]
PROTOCOLS: tuple[Protocol, ...] = ("ours", "paper")
PAPER_SHUFFLE_SEED = 42  # their random_state


def paper_pool(population: FloatArray, n_users: int) -> FloatArray:
    """The first ``n_users + 1`` rows in the authors' shuffled order. pandas'
    ``sample(frac=1, random_state=42)`` is ``RandomState(42).choice(n, n, replace=False)``."""
    if n_users + 1 > population.shape[0]:
        raise ValueError(f"population of {population.shape[0]} is too small for {n_users} + 1")
    rows = n_users + 1
    order = np.random.RandomState(PAPER_SHUFFLE_SEED).choice(rows, size=rows, replace=False)
    return np.asarray(population[:rows][order], dtype=np.float64)


def paper_crowd(pool: FloatArray, rng: np.random.Generator) -> Crowd:
    """One run's expert drawn from the pool and removed; the crowd is the rest, in order."""
    expert = int(rng.integers(pool.shape[0]))
    return Crowd(users=np.delete(pool, expert, axis=0), expert=pool[expert].copy())


def draw_crowd(
    protocol: Protocol, population: FloatArray, n_users: int, rng: np.random.Generator
) -> Crowd:
    if protocol == "paper":
        return paper_crowd(paper_pool(population, n_users), rng)
    return sample_crowd(population, n_users, rng)
