"""The authors' Shapley estimate, exactly as their code ran it (shap's KernelExplainer).

Kept outside the engine (which imports only numpy and scipy): it needs the optional `shap`
package, and it reports no error bound. Their setting keeps all N players
(``l1_reg="num_features(N)"``); shap's default keeps only 10, which is not what they ran.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray

from crowdsft.engine.shapley.game import Game

PAPER_SAMPLES = 10_000
SHAP_DEFAULT_L1_REG = "num_features(10)"  # what shap_values uses when l1_reg is not given


def paper_kernelshap(game: Game, seed: int, nsamples: int = PAPER_SAMPLES,
                     l1_reg: str | bool | None = None) -> NDArray[np.float64]:  # fmt: skip
    """Background: one all-zero row (the empty coalition); explained: the all-ones mask.
    `l1_reg` None is the authors' ``num_features(N)``; shap's own default keeps 10 players,
    False selects none away."""
    try:
        import shap
    except ImportError:
        raise RuntimeError(
            "the paper's estimator needs the shap package (pip install shap)"
        ) from None
    n = game.n_players
    explainer = shap.KernelExplainer(lambda x: game.values(x > 0.5), np.zeros((1, n)))
    np.random.seed(seed)  # shap draws its coalitions from numpy's global state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = explainer.shap_values(
            np.ones((1, n)), nsamples=nsamples,
            l1_reg=f"num_features({n})" if l1_reg is None else l1_reg,
            silent=True,
        )  # fmt: skip
    return np.asarray(values, dtype=np.float64).reshape(-1)


def paper_estimate(game: Game, run: int) -> NDArray[np.float64]:
    """The authors' KernelSHAP-10k seeded by the run: a module function, so worker processes
    can be handed it."""
    return paper_kernelshap(game, seed=run)
