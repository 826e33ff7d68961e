"""Stopping criteria for sampling estimators, combinable with ``|`` (either) and ``&`` (both).

An estimator checks its criterion after every batch with the running result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from crowdsft.engine.shapley.result import ShapleyResult


class StoppingCriterion(ABC):
    """Decides, from the running result, whether sampling may stop."""

    @abstractmethod
    def __call__(self, result: ShapleyResult) -> bool: ...

    def __or__(self, other: StoppingCriterion) -> StoppingCriterion:
        return _Either(self, other)

    def __and__(self, other: StoppingCriterion) -> StoppingCriterion:
        return _Both(self, other)


@dataclass(frozen=True)
class _Either(StoppingCriterion):
    a: StoppingCriterion
    b: StoppingCriterion

    def __call__(self, result: ShapleyResult) -> bool:
        return self.a(result) or self.b(result)


@dataclass(frozen=True)
class _Both(StoppingCriterion):
    a: StoppingCriterion
    b: StoppingCriterion

    def __call__(self, result: ShapleyResult) -> bool:
        return self.a(result) and self.b(result)


@dataclass(frozen=True)
class MaxSamples(StoppingCriterion):
    """Stop after this many independent sampling units (estimator-specific unit)."""

    n: int

    def __call__(self, result: ShapleyResult) -> bool:
        return result.n_samples >= self.n


@dataclass(frozen=True)
class MaxEvaluations(StoppingCriterion):
    """Stop after this many coalition evaluations: a budget that is comparable across methods."""

    n: int

    def __call__(self, result: ShapleyResult) -> bool:
        return result.n_evaluations >= self.n


@dataclass(frozen=True)
class RelativeError(StoppingCriterion):
    """Stop once the reported relative error is at most ``target``.

    ``min_samples`` guards against a standard error estimated from too few units.
    """

    target: float
    min_samples: int = 16

    def __call__(self, result: ShapleyResult) -> bool:
        return result.n_samples >= self.min_samples and result.relative_error <= self.target
