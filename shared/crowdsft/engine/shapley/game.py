"""Cooperative games evaluated on batches of coalitions.

A coalition batch is a boolean matrix ``masks`` of shape ``(B, n)``; a game returns the ``B``
coalition values in one vectorised call. :class:`CentroidGame` also exposes
``values_from_sums`` so estimators that build coalitions incrementally (prefix sums over a
permutation) can skip the masks entirely: its value depends only on the coalition's sum vector
and size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from crowdsft.engine.evaluation import get_evaluation

FloatArray: TypeAlias = NDArray[np.float64]
BoolArray: TypeAlias = NDArray[np.bool_]


@runtime_checkable
class Game(Protocol):
    """A transferable-utility game whose value function is vectorised over coalitions."""

    @property
    def n_players(self) -> int: ...

    def values(self, masks: BoolArray) -> FloatArray:
        """Values of the coalitions given as rows of a ``(B, n)`` boolean matrix."""
        ...


@dataclass(frozen=True)
class CentroidGame:
    """``v(S) = eval(mean of u_i over S, e)`` with ``v(empty) = eval(0, e)`` (the paper's game)."""

    vectors: FloatArray
    target: FloatArray
    evaluation: str = "l2"
    _eval: Callable[[FloatArray, FloatArray], FloatArray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vectors", np.asarray(self.vectors, dtype=np.float64))
        object.__setattr__(self, "target", np.asarray(self.target, dtype=np.float64))
        object.__setattr__(self, "_eval", get_evaluation(self.evaluation))

    @property
    def n_players(self) -> int:
        return int(self.vectors.shape[0])

    def values(self, masks: BoolArray) -> FloatArray:
        masks = np.asarray(masks, dtype=bool)
        sums = masks.astype(np.float64) @ self.vectors
        return self.values_from_sums(sums, masks.sum(axis=-1))

    def values_from_sums(
        self, sums: FloatArray, sizes: NDArray[np.integer] | FloatArray
    ) -> FloatArray:
        """Values from coalition sum vectors ``(..., d)`` and sizes ``(...)``; size 0 is empty."""
        sizes = np.asarray(sizes)
        means = sums / np.maximum(sizes, 1)[..., None]
        means = np.where((sizes == 0)[..., None], 0.0, means)
        return self._eval(means, self.target)

    def cyclic_run_values(self, perm: NDArray[np.integer]) -> FloatArray:
        """``W[r, s]``: value of the ``s`` players just before position ``r`` on circle ``perm``.

        Shape ``(n + 1, n + 1)``. For ``l2`` and ``dot`` the run sums are never materialised: with
        ``y_i = u_i - e`` and prefix sums ``P`` over the doubled circle,
        ``||sum_S y||^2 = |P_hi|^2 + |P_lo|^2 - 2 P_hi.P_lo``, so the whole grid costs one Gram
        product (BLAS) read through a strided band view, plus ``O(1)`` work per run.
        """
        perm = np.asarray(perm)
        n = perm.size
        sizes = np.arange(n + 1)
        inv = 1.0 / np.maximum(sizes, 1)
        x = self.vectors[np.concatenate([perm, perm])]
        if self.evaluation == "dot":
            pe = np.concatenate([[0.0], np.cumsum(x @ self.target)])
            lo = _band(pe[None, :], n, rows_start=None)
            return np.asarray((pe[n:, None] - lo) * inv[None, :])
        if self.evaluation == "l2":
            prefix = np.zeros((2 * n + 1, x.shape[1]))
            np.cumsum(x - self.target, axis=0, out=prefix[1:])
            cross = prefix[n:] @ prefix.T  # rows: hi = n + r; columns: lo
            sq = np.einsum("ij,ij->i", prefix, prefix)
            out = _band(cross, n, rows_start=0) * -2.0
            out += _band(sq[None, :], n, rows_start=None)
            out += sq[n:, None]
            np.maximum(out, 0.0, out=out)
            np.sqrt(out, out=out)
            out *= -inv[None, :]
            out[:, 0] = -float(np.linalg.norm(self.target))
            return out
        prefix = np.zeros((2 * n + 1, x.shape[1]))
        np.cumsum(x, axis=0, out=prefix[1:])
        out = np.empty((n + 1, n + 1))
        hi = np.arange(n, 2 * n + 1)
        chunk = max(1, 2_000_000 // ((n + 1) * x.shape[1]))
        for s0 in range(0, n + 1, chunk):
            ss = sizes[s0 : s0 + chunk]
            sums = prefix[hi][:, None, :] - prefix[hi[:, None] - ss[None, :]]
            out[:, ss] = self.values_from_sums(sums, np.broadcast_to(ss, sums.shape[:2]))
        return out


def _band(matrix: FloatArray, n: int, rows_start: int | None) -> FloatArray:
    """Copy of ``M[r, n + r - s]`` for ``r, s`` in ``0..n`` (``M[0, ...]`` for every ``r`` when
    ``rows_start`` is None): the prefix index ``lo = hi - s`` for runs ending at ``hi = n + r``."""
    m = np.ascontiguousarray(matrix)
    rs, cs = m.strides
    row_step = (rs if rows_start is not None else 0) + cs
    view = np.lib.stride_tricks.as_strided(m, shape=(n + 1, n + 1), strides=(row_step, cs))
    return np.array(view[:, ::-1])


@dataclass(frozen=True)
class TableGame:
    """A game given by its full value table, indexed by coalition bitmask (player i = bit i)."""

    table: FloatArray

    def __post_init__(self) -> None:
        table = np.asarray(self.table, dtype=np.float64)
        n = int(np.log2(table.size))
        if table.ndim != 1 or 2**n != table.size:
            raise ValueError("table must have 2**n entries")
        object.__setattr__(self, "table", table)

    @property
    def n_players(self) -> int:
        return int(np.log2(self.table.size))

    def values(self, masks: BoolArray) -> FloatArray:
        bits = np.left_shift(1, np.arange(self.n_players, dtype=np.int64))
        return self.table[np.asarray(masks, dtype=np.int64) @ bits]


@dataclass(frozen=True)
class FunctionGame:
    """Wraps any vectorised ``masks -> values`` function as a game."""

    n: int
    fn: Callable[[BoolArray], FloatArray]

    @property
    def n_players(self) -> int:
        return self.n

    def values(self, masks: BoolArray) -> FloatArray:
        return np.asarray(self.fn(np.asarray(masks, dtype=bool)), dtype=np.float64)


def grand_and_empty(game: Game) -> tuple[float, float]:
    """``(v(N), v(empty))``: the two values every estimator needs for efficiency."""
    n = game.n_players
    masks = np.array([np.ones(n, dtype=bool), np.zeros(n, dtype=bool)])
    v = game.values(masks)
    return float(v[0]), float(v[1])
