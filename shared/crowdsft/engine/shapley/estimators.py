"""Shapley value estimators: exact enumeration, antithetic permutations, size-stratified
(cyclic) permutations and KernelSHAP.

Every sampling estimator draws independent *units* (one unit = one unbiased estimate of the
whole value vector), keeps a running mean and variance, and reports the standard error of the
mean. Each unit satisfies efficiency on its own, so every estimate sums to ``v(N) - v(empty)``.
Games that expose ``values_from_sums`` (the centroid game) are evaluated from prefix sums of the
player vectors instead of boolean masks, which turns a permutation into ``O(n d)`` work.
"""

from __future__ import annotations

from collections.abc import Callable
from math import comb

import numpy as np
from numpy.typing import NDArray

from crowdsft.engine.shapley.game import BoolArray, CentroidGame, FloatArray, Game, grand_and_empty
from crowdsft.engine.shapley.large import EXACT_BELOW, size_strata_until
from crowdsft.engine.shapley.result import ShapleyResult
from crowdsft.engine.shapley.stopping import MaxEvaluations, RelativeError, StoppingCriterion

IntArray = NDArray[np.int64]
UnitSampler = Callable[[np.random.Generator], FloatArray]

EXACT_MAX_PLAYERS = 22
_CHUNK_ELEMENTS = 4_000_000  # floats materialised at once in the vectorised inner loops


class _RunningMean:
    """Chan/Welford running mean and variance of unit estimates, merged a batch at a time."""

    def __init__(self, n: int) -> None:
        self.count = 0
        self.mean = np.zeros(n)
        self.m2 = np.zeros(n)

    def update(self, batch: FloatArray) -> None:
        b = batch.shape[0]
        b_mean = batch.mean(axis=0)
        b_m2 = ((batch - b_mean) ** 2).sum(axis=0)
        total = self.count + b
        delta = b_mean - self.mean
        self.mean = self.mean + delta * (b / total)
        self.m2 = self.m2 + b_m2 + delta**2 * (self.count * b / total)
        self.count = total

    def stderr(self) -> FloatArray:
        if self.count < 2:
            return np.full_like(self.mean, np.inf)
        return np.sqrt(self.m2 / (self.count - 1) / self.count)


def _sample_until(
    sampler: UnitSampler,
    n: int,
    evals_per_unit: int,
    rng: np.random.Generator,
    stop: StoppingCriterion,
    method: str,
) -> ShapleyResult:
    """Draw units in batches of roughly a million evaluations until ``stop`` says so.

    Batches never overshoot a ``MaxEvaluations`` budget by more than one unit.
    """
    budget = _unit_budget(stop, evals_per_unit)
    acc = _RunningMean(n)
    per_batch = max(1, 1_000_000 // max(evals_per_unit, 1))
    while True:
        # Small first batches keep the stopping check honest for cheap games.
        batch_units = min(per_batch, max(2, acc.count), max(1, budget - acc.count))
        acc.update(np.stack([sampler(rng) for _ in range(batch_units)]))
        result = ShapleyResult(
            values=acc.mean.copy(),
            stderr=acc.stderr(),
            method=method,
            n_samples=acc.count,
            n_evaluations=acc.count * evals_per_unit,
        )
        if stop(result):
            return result


def _unit_budget(stop: StoppingCriterion, evals_per_unit: int) -> int:
    """Units allowed by a plain ``MaxEvaluations`` criterion (unbounded otherwise)."""
    if isinstance(stop, MaxEvaluations):
        return -(-stop.n // evals_per_unit)
    return 2**62


def default_stop(
    rel_error: float = 0.01, max_evaluations: int = 2_000_000_000
) -> StoppingCriterion:
    """Stop at the requested relative error, or at a hard evaluation budget."""
    return RelativeError(rel_error) | MaxEvaluations(max_evaluations)


# ---------------------------------------------------------------------------- exact


def exact_shapley(game: Game) -> ShapleyResult:
    """Exact Shapley values by enumerating all ``2**n`` coalitions (``n <= 22``)."""
    n = game.n_players
    if n > EXACT_MAX_PLAYERS:
        raise ValueError(f"exact enumeration is limited to {EXACT_MAX_PLAYERS} players, got {n}")
    idx = np.arange(2**n, dtype=np.int64)
    bits = ((idx[:, None] >> np.arange(n)) & 1).astype(bool)
    v = game.values(bits)
    sizes = bits.sum(axis=1)
    weights = np.array([1.0 / (n * comb(n - 1, s)) for s in range(n)])
    phi = np.empty(n)
    for i in range(n):
        without = idx[~bits[:, i]]
        phi[i] = np.sum(weights[sizes[without]] * (v[without | (1 << i)] - v[without]))
    return ShapleyResult(phi, np.zeros(n), "exact", 1, int(2**n))


# ---------------------------------------------------------------------------- permutations


def _prefix_values(game: Game, perms: IntArray) -> FloatArray:
    """Values of every prefix coalition of each permutation: shape ``(B, n + 1)``."""
    b, n = perms.shape
    if isinstance(game, CentroidGame):
        x = game.vectors[perms]
        prefix = np.zeros((b, n + 1, x.shape[-1]))
        np.cumsum(x, axis=1, out=prefix[:, 1:])
        return game.values_from_sums(prefix, np.arange(n + 1)[None, :])
    ranks = np.argsort(perms, axis=1)
    masks: BoolArray = ranks[:, None, :] < np.arange(n + 1)[None, :, None]
    return game.values(masks.reshape(-1, n)).reshape(b, n + 1)


def _marginals(game: Game, perms: IntArray) -> FloatArray:
    """Each player's marginal contribution in each permutation, indexed by player: ``(B, n)``."""
    diffs = np.diff(_prefix_values(game, perms), axis=1)
    out = np.empty_like(diffs)
    np.put_along_axis(out, perms, diffs, axis=1)
    return out


def permutation_shapley(
    game: Game, rng: np.random.Generator, stop: StoppingCriterion | None = None
) -> ShapleyResult:
    """Antithetic permutation sampling: each unit averages a permutation and its reverse.

    The reverse places every player at the mirrored position, which cancels much of the
    position-driven variance of plain permutation sampling.
    """
    n = game.n_players
    stop = stop or default_stop()

    def unit(r: np.random.Generator) -> FloatArray:
        perm = r.permutation(n)[None, :]
        both = np.concatenate([perm, perm[:, ::-1]])
        return np.asarray(_marginals(game, both).mean(axis=0))

    return _sample_until(unit, n, 2 * (n + 1), rng, stop, "permutation")


# ---------------------------------------------------------------------------- stratified


def _cyclic_window_values(game: Game, perm: IntArray) -> FloatArray:
    """``W[r, s]``: value of the ``s`` players just before position ``r`` on the circle ``perm``.

    Shape ``(n + 1, n + 1)`` for ``r, s`` in ``0..n``; ``s = 0`` is the empty coalition and
    ``s = n`` the grand coalition.
    """
    n = perm.size
    out = np.empty((n + 1, n + 1))
    rows = np.arange(n + 1)
    chunk = max(1, _CHUNK_ELEMENTS // ((n + 1) * max(n, 1)))
    if isinstance(game, CentroidGame):
        return game.cyclic_run_values(perm)
    pos_of = np.empty(n, dtype=np.int64)
    pos_of[perm] = np.arange(n)
    # Cyclic distance back from position r to each player's position, in 1..n.
    dist = ((rows[:, None] - pos_of[None, :] - 1) % n) + 1
    for s0 in range(0, n + 1, chunk):
        ss = np.arange(s0, min(n + 1, s0 + chunk))
        masks = dist[:, None, :] <= ss[None, :, None]
        out[:, ss] = game.values(masks.reshape(-1, n)).reshape(n + 1, ss.size)
    return out


def stratified_shapley(
    game: Game, rng: np.random.Generator, stop: StoppingCriterion | None = None
) -> ShapleyResult:
    """Sampling stratified by coalition size, with all cyclic shifts of one random permutation.

    One unit draws a random order of the players on a circle. For every player and every size
    ``s`` in ``0..n-1`` it takes the ``s`` players just before it as the coalition, so each
    player gets exactly one marginal contribution per size: the estimator
    ``phi_i = (1/n) sum_s E[v(S + i) - v(S) | |S| = s]`` with one draw per stratum. Each shift
    is a uniformly random permutation, so the unit is unbiased; the stratification removes the
    variance that plain permutation sampling gets from a player's random position.
    """
    n = game.n_players
    stop = stop or default_stop()

    def unit(r: np.random.Generator) -> FloatArray:
        perm = r.permutation(n)
        w = _cyclic_window_values(game, perm)
        # Player at position r (rows 0..n-1) with s predecessors: W[r+1, s+1] - W[r, s].
        marg = w[1:, 1:] - w[:-1, :-1]
        est = np.empty(n)
        est[perm] = marg.mean(axis=1)
        return est

    return _sample_until(unit, n, (n + 1) ** 2, rng, stop, "stratified")


# ---------------------------------------------------------------------------- KernelSHAP


def kernel_shapley(
    game: Game,
    rng: np.random.Generator,
    stop: StoppingCriterion | None = None,
    pairs_per_unit: int = 1,
) -> ShapleyResult:
    """KernelSHAP with paired (antithetic) sampling and the exact kernel moment matrix.

    Coalitions are drawn from the Shapley kernel (size ``s`` with probability proportional to
    ``1 / (s (n - s))``, then uniformly), each with its complement. With ``A = E[z z^T]`` known in
    closed form (``A = alpha I + c 11^T``), the constrained least-squares solution is linear in
    ``b = E[z (v(z) - v(empty))]``: ``phi = (b - mean(b)) / alpha + (v(N) - v(empty)) / n``
    (Covert and Lee, 2021). That linearity gives each unit's own estimate and hence honest
    standard errors. Count samples with ``MaxEvaluations`` to match "KernelSHAP at k samples".
    """
    n = game.n_players
    stop = stop or default_stop()
    v_full, v_empty = grand_and_empty(game)
    sizes = np.arange(1, n)
    q = 1.0 / (sizes * (n - sizes))
    q /= q.sum()
    c = float(np.sum(q * sizes * (sizes - 1))) / (n * (n - 1))
    alpha = 0.5 - c

    def unit(r: np.random.Generator) -> FloatArray:
        s = r.choice(sizes, size=pairs_per_unit, p=q)
        order = np.argsort(r.random((pairs_per_unit, n)), axis=1)
        masks = np.zeros((pairs_per_unit, n), dtype=bool)
        np.put_along_axis(masks, order, np.arange(n)[None, :] < s[:, None], axis=1)
        both = np.concatenate([masks, ~masks])
        gains = game.values(both) - v_empty
        b = (both * gains[:, None]).sum(axis=0) / both.shape[0]
        return np.asarray((b - b.mean()) / alpha + (v_full - v_empty) / n)

    return _sample_until(unit, n, 2 * pairs_per_unit, rng, stop, "kernelshap")


# ---------------------------------------------------------------------------- dispatch

METHODS = ("exact", "permutation", "stratified", "kernelshap", "size_strata")


def estimate_shapley(
    game: Game,
    method: str,
    rng: np.random.Generator,
    *,
    rel_error: float = 0.01,
    n_samples: int | None = None,
    max_evaluations: int = 2_000_000_000,
) -> ShapleyResult:
    """Estimate by name. ``n_samples`` fixes the budget in coalition evaluations (the way
    KernelSHAP budgets are quoted); otherwise sampling stops at ``rel_error`` (`size_strata`
    has no evaluation budget: it scales its draws until it reports ``rel_error``)."""
    if method == "exact":
        return exact_shapley(game)
    stop = MaxEvaluations(n_samples) if n_samples else default_stop(rel_error, max_evaluations)
    if method == "permutation":
        return permutation_shapley(game, rng, stop)
    if method == "stratified":
        return stratified_shapley(game, rng, stop)
    if method == "size_strata":
        # The centroid game's own structure (`large.py`): for crowds of thousands and more.
        if not isinstance(game, CentroidGame):
            raise ValueError("size_strata needs the centroid game")
        if game.n_players < EXACT_BELOW:
            return exact_shapley(game)
        return size_strata_until(game, rng, rel_error)
    if method == "kernelshap":
        # A fixed budget is cut into 50 units, so the standard error rests on 50 replicates.
        pairs = 1 if not n_samples else max(1, n_samples // 2 // 50)
        return kernel_shapley(game, rng, stop, pairs_per_unit=pairs)
    raise ValueError(f"unknown Shapley method {method!r}; choose from {METHODS}")
