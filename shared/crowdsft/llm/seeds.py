"""The LLM experiment's pre-registered seed design (docs/llm.md, "What a conclusive answer
needs"): its arms, the paper's figures, the 95% t-interval and the decision rule.

Pure: no files and no models, so the rule that decides the paper's claim is tested on numbers
worked by hand, apart from the hours of fine-tuning that feed it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

MIN_SEEDS = 10  # per emotion, fixed before the runs
ALL_EMOTIONS = 28  # GoEmotions' labels, neutral included

# The paper's reductions (1 - multi / single-100) this repository records (docs/llm.md): the
# best emotion's and the mean over all 28. Its per-emotion figures for the others are not
# stored here, so no verdict on the paper's figure is given for them.
PAPER_REDUCTION: Mapping[str, float] = {"neutral": 0.55}
PAPER_MEAN_OVER_ALL_EMOTIONS = 0.285


@dataclass(frozen=True)
class Arm:
    """One protocol of the design, run on the same seeds as the others."""

    selection: Literal["target", "anchor"]
    gate: bool


ARMS: Mapping[str, Arm] = {
    "paper-anchor": Arm(selection="anchor", gate=False),  # the authors' selection reference
    "paper-target": Arm(selection="target", gate=False),  # the same, picked by our target
    "gate": Arm(selection="target", gate=True),  # our design: move only to a closer winner
}


@dataclass(frozen=True)
class Interval:
    """A mean with its two-sided t-interval; the bounds are NaN below two values."""

    n: int
    mean: float
    low: float
    high: float


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Student's t-interval for the mean of independent values (here: one per seed)."""
    data = np.asarray(values, dtype=np.float64)
    n = int(data.size)
    if n == 0:
        return Interval(0, math.nan, math.nan, math.nan)
    mean = float(data.mean())
    if n == 1:
        return Interval(1, mean, math.nan, math.nan)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * float(data.std(ddof=1)) / n**0.5
    return Interval(n, mean, mean - half, mean + half)


PaperVerdict = Literal["refuted", "supported"]


@dataclass(frozen=True)
class Verdict:
    """The pre-registered rule's answer: on the paper's figure (None: too few seeds, or no
    figure to test), and whether a positive effect is shown either way."""

    paper: PaperVerdict | None
    positive_effect: bool
    label: str


def decide(interval: Interval, paper_figure: float | None, min_seeds: int = MIN_SEEDS) -> Verdict:
    """Refuted if the interval's upper end is below the paper's figure, supported if the
    interval contains it or lies above it; a positive effect is shown if the lower end is
    above 0; anything else is undecided."""
    if interval.n < max(min_seeds, 2):
        return Verdict(None, False, f"undecided: fewer than {min_seeds} seeds")
    positive = interval.low > 0
    effect = "positive effect shown" if positive else "no positive effect shown"
    if paper_figure is None:
        return Verdict(None, positive, effect if positive else "undecided (no paper figure)")
    paper: PaperVerdict = "refuted" if interval.high < paper_figure else "supported"
    return Verdict(paper, positive, f"{paper}; {effect}")


def paper_figure(emotion: str) -> float | None:
    return PAPER_REDUCTION.get(emotion)


def paper_figure_over(emotions: Collection[str]) -> float | None:
    """The paper's mean is over all 28 emotions: a subset's mean has no figure to test."""
    return PAPER_MEAN_OVER_ALL_EMOTIONS if len(set(emotions)) == ALL_EMOTIONS else None


def mean_over_emotions(by_emotion: Mapping[str, Mapping[int, float]]) -> dict[int, float]:
    """Per seed, the mean over emotions, for the seeds every emotion has. A seed runs every
    emotion, so the seeds (not emotion x seed cells) are the independent draws."""
    if not by_emotion:
        return {}
    shared = set.intersection(*(set(seeds) for seeds in by_emotion.values()))
    return {
        seed: float(np.mean([values[seed] for values in by_emotion.values()]))
        for seed in sorted(shared)
    }
