"""Shapley engine, split by role: games, estimators, stopping criteria, results."""

from crowdsft.engine.shapley.estimators import (
    METHODS,
    estimate_shapley,
    exact_shapley,
    kernel_shapley,
    permutation_shapley,
    stratified_shapley,
)
from crowdsft.engine.shapley.game import CentroidGame, FunctionGame, Game, TableGame
from crowdsft.engine.shapley.result import ShapleyResult, relative_error
from crowdsft.engine.shapley.stopping import (
    MaxEvaluations,
    MaxSamples,
    RelativeError,
    StoppingCriterion,
)

__all__ = [
    "METHODS",
    "CentroidGame",
    "FunctionGame",
    "Game",
    "MaxEvaluations",
    "MaxSamples",
    "RelativeError",
    "ShapleyResult",
    "StoppingCriterion",
    "TableGame",
    "estimate_shapley",
    "exact_shapley",
    "kernel_shapley",
    "permutation_shapley",
    "relative_error",
    "stratified_shapley",
]
