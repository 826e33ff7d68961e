"""Shapley values of the centroid game for crowds of any size, from the game's structure.

In the centroid game ``v(S)`` depends on a coalition only through its size ``k`` and the sum of
its members' vectors. Player ``i``'s value is the average over ``k = 0 .. n-1`` of its expected
marginal ``m_i(k) = E[v(S + i) - v(S)]``, with ``S`` a uniform size-``k`` subset of the others:

* ``k = 0`` is exact: ``v({i}) - v(empty)``.
* For small ``k`` the subset sum is far from Gaussian, so subsets are drawn directly. One drawn
  subset serves every player at once (``O(n d)``); a player inside it skips that draw.
* For larger ``k`` the subset sum of the others has mean ``k mean_{-i}`` and covariance
  ``k (n'-k)/(n'-1) Sigma`` (sampling without replacement from ``n' = n-1``), and is close to
  Gaussian. It is drawn from that normal with standard-normal draws shared by every player and
  every size (common random numbers, antithetic pairs). ``Sigma`` is the whole crowd's
  covariance, an ``O(1/n)`` approximation of each player's others'.
* ``(k+1) m_i(k)`` changes slowly with ``k`` (the marginal of a smooth ``v`` falls like
  ``1/(k+1)``), so it is computed at log-spaced sizes and interpolated linearly in between;
  the sum over every size is then a fixed weighted sum of the node values.

The reported standard error is the spread of independent replicates (the draws split into
groups): it covers the sampling, not the Gaussian approximation or the interpolation, whose
size `bench/shapley.py` measures against references. For ``dot`` the exact value has a closed
form at any size (`dot_shapley`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from crowdsft.engine.shapley.game import CentroidGame, FloatArray
from crowdsft.engine.shapley.result import ShapleyResult

IntArray = NDArray[np.int64]

EXACT_BELOW = 12  # players: fewer than this, nothing is estimated (the caller enumerates)
PLAYER_CHUNK = 8_192  # players whose marginals are computed at once: bounds the memory
SMALL_DRAWS = 1_536  # subsets drawn over every small size, by default
GAUSSIAN_DRAWS = 16  # antithetic pairs of Gaussian subset sums, by default


def dot_shapley(game: CentroidGame) -> ShapleyResult:
    """Exact for ``dot`` at any size: with ``a_j = u_j . e``, ``v(S)`` is the mean of ``a`` over
    ``S`` (0 when empty), so the marginal to a size-``k`` coalition averages to
    ``(a_i - mean of the others) / (k + 1)`` for ``k >= 1`` and is ``a_i`` for ``k = 0``."""
    if game.evaluation != "dot":
        raise ValueError(f"the closed form is for the dot game, not {game.evaluation!r}")
    a = game.vectors @ game.target
    n = a.size
    if n == 1:
        values = a.copy()
    else:
        others = (a.sum() - a) / (n - 1)
        harmonic = float(np.sum(1.0 / np.arange(1, n + 1)))
        values = (a + (a - others) * (harmonic - 1.0)) / n
    return ShapleyResult(values, np.zeros(n), "dot_closed_form", 0, 0)


def size_nodes(n: int, small: int, nodes: int) -> NDArray[np.int64]:
    """Sizes above `small`, log-spaced up to ``n - 1`` (both ends included), no repeats."""
    if n - 1 <= small:
        return np.zeros(0, dtype=np.int64)
    grid = np.geomspace(small + 1, n - 1, num=min(nodes, n - 1 - small))
    return np.unique(np.round(grid).astype(np.int64))


def interpolation_weights(n: int, small: int, ks: NDArray[np.int64]) -> FloatArray:
    """``w`` with ``sum_{k=small+1}^{n-1} g(k)/(k+1) = w . g(ks)`` for g linear between nodes."""
    if ks.size == 0:
        return np.zeros(0)
    every = np.arange(small + 1, n, dtype=np.float64)
    scale = 1.0 / (every + 1.0)
    return np.array([np.sum(np.interp(every, ks, basis) * scale) for basis in np.eye(ks.size)])


class _Marginals:
    """Expected marginals of every player at one size, one row per replicate, from subsets drawn
    for that size or from Gaussian draws of the subset sum. Columns of `members` and of
    `shifts` are grouped by replicate: replicate r owns the r-th block of equal width. Any
    evaluation works here, through `values_from_sums`."""

    def __init__(self, game: CentroidGame) -> None:
        self.game = game
        self.u = game.vectors
        self.n, self.d = self.u.shape
        self.total = self.u.sum(axis=0)
        self.empty = float(game.values_from_sums(np.zeros(self.d), np.asarray(0))[()])

    def alone(self) -> FloatArray:
        return self.game.values_from_sums(self.u, np.ones(self.n)) - self.empty

    def drawn(self, k: int, members: NDArray[np.int64], replicates: int) -> FloatArray:
        """Per replicate, the mean over its subsets (rows of `members`) of ``v(S + i) - v(S)``,
        each player skipping the subsets it is in."""
        sums = self.u[members].sum(axis=1)
        without = self.game.values_from_sums(sums, np.full(len(members), k))
        out = np.empty((replicates, self.n))
        for chunk in _chunks(self.n):
            u = self.u[chunk]
            marginal = np.empty((u.shape[0], len(members)))
            for column, subset_sum in enumerate(sums):
                joined = self.game.values_from_sums(subset_sum + u, np.full(u.shape[0], k + 1))
                marginal[:, column] = joined - without[column]
            out[:, chunk] = _skipping_members(marginal, members, chunk, replicates)
        return out

    def gaussian(self, ks: IntArray, weights: FloatArray, unit: FloatArray,
                 replicates: int) -> FloatArray:  # fmt: skip
        """Per replicate, ``sum_j weights_j (k_j + 1) m(k_j)`` with the subset sum at size k drawn
        as its mean plus ``spread(k)`` times each row of `unit` (shared by every size)."""
        out = np.zeros((self.n, len(unit)))
        for chunk in _chunks(self.n):
            u = self.u[chunk]
            for k, weight in zip(ks, weights, strict=True):
                mean = (k / (self.n - 1)) * (self.total[None, :] - u)
                sizes = np.full(u.shape[0], k)
                for column, shift in enumerate(spread(self.n, int(k)) * unit):
                    sums = mean + shift[None, :]
                    joined = self.game.values_from_sums(sums + u, sizes + 1)
                    marginal = joined - self.game.values_from_sums(sums, sizes)
                    out[chunk, column] += weight * (k + 1) * marginal
        return _by_replicate(out, replicates)


class _L2Marginals(_Marginals):
    """The same for ``l2`` without forming any coalition: with ``y = u - e`` and ``w`` a subset's
    ``sum - k e``, ``|w + y_i|^2 = |w|^2 + 2 y_i . w + |y_i|^2``, so every player's marginal for
    every drawn subset comes from one matrix product. For a Gaussian draw ``w_i = c (Y - y_i) +
    s z`` (``c = k/(n-1)``, ``Y`` the sum of every ``y``): its norms need only ``|Y - y_i|^2``,
    ``(Y - y_i) . y_i``, ``|y_i|^2`` and the products with the draws, all shared by every size."""

    def __init__(self, game: CentroidGame) -> None:
        super().__init__(game)
        self.y = self.u - game.target
        self.yy = np.einsum("ij,ij->i", self.y, self.y)
        self.y_total = self.y.sum(axis=0)

    def drawn(self, k: int, members: NDArray[np.int64], replicates: int) -> FloatArray:
        w = self.y[members].sum(axis=1)  # (draws, d): each subset's sum - k e
        ww = np.einsum("ij,ij->i", w, w)
        without = np.sqrt(ww) / k
        out = np.empty((replicates, self.n))
        for chunk in _chunks(self.n):
            joined = ww[None, :] + 2.0 * (self.y[chunk] @ w.T) + self.yy[chunk, None]
            marginal = without[None, :] - np.sqrt(np.maximum(joined, 0.0)) / (k + 1)
            out[:, chunk] = _skipping_members(marginal, members, chunk, replicates)
        return out

    def gaussian(self, ks: IntArray, weights: FloatArray, unit: FloatArray,
                 replicates: int) -> FloatArray:  # fmt: skip
        zz = np.einsum("ij,ij->i", unit, unit)[None, :]
        out = np.zeros((self.n, len(unit)))
        for chunk in _chunks(self.n):
            rest = self.y_total[None, :] - self.y[chunk]
            a = np.einsum("ij,ij->i", rest, rest)[:, None]
            b = np.einsum("ij,ij->i", rest, self.y[chunk])[:, None]
            p, q = rest @ unit.T, self.y[chunk] @ unit.T
            yy = self.yy[chunk, None]
            for k, weight in zip(ks, weights, strict=True):
                c, s = k / (self.n - 1), spread(self.n, int(k))
                without = c * c * a + (2.0 * c * s) * p + (s * s) * zz
                joined = without + 2.0 * c * b + yy + (2.0 * s) * q
                marginal = np.sqrt(np.maximum(without, 0.0)) / k
                marginal -= np.sqrt(np.maximum(joined, 0.0)) / (k + 1)
                out[chunk] += (weight * (k + 1)) * marginal
        return _by_replicate(out, replicates)


class _DotMarginals(_Marginals):
    """The same for ``dot``, where a coalition is worth the mean of ``a = u . e`` over it: only
    the subset's sum of ``a`` matters. (The estimator needs no Gaussian approximation here: the
    marginal is linear in the subset sum. The closed form, `dot_shapley`, is exact anyway; this
    path exists to measure the estimator's sampling and interpolation against it.)"""

    def __init__(self, game: CentroidGame) -> None:
        super().__init__(game)
        self.a = self.u @ game.target
        self.a_total = float(self.a.sum())

    def drawn(self, k: int, members: NDArray[np.int64], replicates: int) -> FloatArray:
        w = self.a[members].sum(axis=1)
        out = np.empty((replicates, self.n))
        for chunk in _chunks(self.n):
            marginal = (w[None, :] + self.a[chunk, None]) / (k + 1) - (w / k)[None, :]
            out[:, chunk] = _skipping_members(marginal, members, chunk, replicates)
        return out

    def gaussian(self, ks: IntArray, weights: FloatArray, unit: FloatArray,
                 replicates: int) -> FloatArray:  # fmt: skip
        along = (unit @ self.game.target)[None, :]
        rest = (self.a_total - self.a)[:, None]
        out = np.zeros((self.n, len(unit)))
        for k, weight in zip(ks, weights, strict=True):
            w = (k / (self.n - 1)) * rest + spread(self.n, int(k)) * along
            out += (weight * (k + 1)) * ((w + self.a[:, None]) / (k + 1) - w / k)
        return _by_replicate(out, replicates)


FAST_PATHS: dict[str, type[_Marginals]] = {"l2": _L2Marginals, "dot": _DotMarginals}


def spread(n: int, k: int) -> float:
    """Standard deviation of a size-k subset sum of the ``n - 1`` others, per unit of theirs."""
    return float(np.sqrt(k * (n - 1 - k) / max(n - 2, 1)))


def _by_replicate(columns: FloatArray, replicates: int) -> FloatArray:
    means: FloatArray = columns.reshape(columns.shape[0], replicates, -1).mean(axis=2).T
    return means


def _skipping_members(
    marginal: FloatArray, members: NDArray[np.int64], chunk: slice, replicates: int
) -> FloatArray:
    """Per replicate, the mean of each player's marginals (rows: the chunk's players; columns:
    the drawn subsets) over the subsets it is not in."""
    valid = np.ones_like(marginal)
    draw, position = np.nonzero((members >= chunk.start) & (members < chunk.stop))
    valid[members[draw, position] - chunk.start, draw] = 0.0
    rows = marginal.shape[0]
    total = (marginal * valid).reshape(rows, replicates, -1).sum(axis=2)
    count = valid.reshape(rows, replicates, -1).sum(axis=2)
    means: FloatArray = (total / np.maximum(count, 1.0)).T
    return means


def subsets(rng: np.random.Generator, n: int, k: int, count: int) -> NDArray[np.int64]:
    """`count` uniform size-k subsets of ``range(n)``, as rows: drawn with replacement and
    drawn again where a row repeats a member (rare while k is far below sqrt(n))."""
    rows = rng.integers(0, n, size=(count, k))
    while True:
        ordered = np.sort(rows, axis=1)
        bad = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
        if bad.size == 0:
            return rows
        rows[bad] = rng.integers(0, n, size=(bad.size, k))


def _chunks(n: int) -> list[slice]:
    return [slice(s, min(n, s + PLAYER_CHUNK)) for s in range(0, n, PLAYER_CHUNK)]


def size_strata_shapley(
    game: CentroidGame,
    rng: np.random.Generator,
    *,
    small: int = 12,
    small_draws: int = SMALL_DRAWS,
    nodes: int = 24,
    gaussian_draws: int = GAUSSIAN_DRAWS,
    replicates: int = 8,
) -> ShapleyResult:
    """The structure-based estimator above. `small_draws` subsets in all go to the small sizes,
    in proportion to 1/k (a marginal's spread falls with the coalition's size, so size 1 needs
    the most); `gaussian_draws` antithetic pairs serve every larger size. Each is split evenly
    over `replicates` independent groups, whose spread is the reported standard error."""
    marginals = FAST_PATHS.get(game.evaluation, _Marginals)(game)
    n, d = marginals.n, marginals.d
    if n < EXACT_BELOW:
        raise ValueError(f"{n} players: enumerate them exactly instead")
    small = min(small, n - 2)
    ks = size_nodes(n, small, nodes)
    weights = interpolation_weights(n, small, ks)
    centred = game.vectors - game.vectors.mean(axis=0)
    # A square root of the crowd's covariance (eigh: PSD even when some genre never varies).
    eigval, eigvec = np.linalg.eigh(centred.T @ centred / n)
    root = eigvec * np.sqrt(np.clip(eigval, 0.0, None))
    share = 1.0 / np.arange(1, small + 1)
    per_small = np.maximum(1, np.round(small_draws * share / share.sum() / replicates)).astype(int)
    per_gauss = max(1, gaussian_draws // replicates)
    estimates = np.tile(marginals.alone(), (replicates, 1))
    for k, draws in zip(range(1, small + 1), per_small, strict=True):
        estimates += marginals.drawn(k, subsets(rng, n, k, replicates * draws), replicates)
    unit = (rng.standard_normal((replicates, per_gauss, d)) @ root.T)[:, None]
    unit = np.concatenate([unit, -unit], axis=1).reshape(-1, d)  # antithetic, by replicate
    estimates += marginals.gaussian(ks, weights, unit, replicates)
    estimates /= n
    values = estimates.mean(axis=0)
    stderr = estimates.std(axis=0, ddof=1) / np.sqrt(replicates)
    evaluations = replicates * (int(per_small.sum()) + ks.size * 2 * per_gauss) * (n + 1)
    return ShapleyResult(values, stderr, "size_strata", replicates, int(evaluations))


def size_strata_until(
    game: CentroidGame, rng: np.random.Generator, rel_error: float, attempts: int = 4
) -> ShapleyResult:
    """For a caller that asks for an error, not a budget: exact for ``dot``; otherwise the
    estimator again with four times the draws until its reported error is within `rel_error`
    (at most `attempts` runs; the last one stands)."""
    if game.evaluation == "dot":
        return dot_shapley(game)
    scale = 1
    for _ in range(attempts):
        result = size_strata_shapley(
            game, rng, small_draws=SMALL_DRAWS * scale, gaussian_draws=GAUSSIAN_DRAWS * scale
        )
        if result.relative_error <= rel_error:
            break
        scale *= 4
    return result
