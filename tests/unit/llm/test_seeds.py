"""The seed design's statistics: the t-interval on numbers worked by hand, every branch of the
pre-registered decision rule, and the pairing of seeds across emotions."""

from __future__ import annotations

import math

import pytest

from crowdsft.llm.seeds import (
    ARMS,
    Interval,
    decide,
    mean_over_emotions,
    paper_figure,
    paper_figure_over,
    t_interval,
)


def test_t_interval_worked_by_hand() -> None:
    # mean 3, sample sd sqrt(2.5) = 1.5811, se 0.70711; t(0.975, 4 df) = 2.77645 (tables)
    # half-width 2.77645 x 0.70711 = 1.96324
    interval = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert interval.n == 5
    assert interval.mean == pytest.approx(3.0)
    assert interval.low == pytest.approx(1.03676, abs=1e-5)
    assert interval.high == pytest.approx(4.96324, abs=1e-5)


def test_t_interval_of_ten_reductions_by_hand() -> None:
    # mean 0.10, deviations +-0.05 alternating: sd = sqrt(10 x 0.0025 / 9) = 0.052705,
    # se 0.016667; t(0.975, 9 df) = 2.26216; half-width 0.037703
    values = [0.05, 0.15] * 5
    interval = t_interval(values)
    assert interval.mean == pytest.approx(0.10)
    assert (interval.low, interval.high) == pytest.approx((0.062297, 0.137703), abs=1e-6)


def test_t_interval_needs_two_values_for_bounds() -> None:
    one = t_interval([0.3])
    assert (one.n, one.mean) == (1, 0.3) and math.isnan(one.low) and math.isnan(one.high)
    none = t_interval([])
    assert none.n == 0 and math.isnan(none.mean)


def interval(low: float, high: float, n: int = 10) -> Interval:
    return Interval(n, (low + high) / 2, low, high)


@pytest.mark.parametrize(
    ("low", "high", "paper", "positive", "label"),
    [
        # the upper end below the paper's +55%: refuted, though the effect is positive
        (0.10, 0.40, "refuted", True, "refuted; positive effect shown"),
        (-0.60, -0.10, "refuted", False, "refuted; no positive effect shown"),
        # the interval contains +55%
        (0.30, 0.70, "supported", True, "supported; positive effect shown"),
        (-0.20, 0.60, "supported", False, "supported; no positive effect shown"),
        # the interval lies above it
        (0.60, 0.80, "supported", True, "supported; positive effect shown"),
        # the upper end exactly at the figure contains it
        (0.20, 0.55, "supported", True, "supported; positive effect shown"),
    ],
)
def test_decision_rule_against_the_papers_figure(
    low: float, high: float, paper: str, positive: bool, label: str
) -> None:
    verdict = decide(interval(low, high), paper_figure("neutral"))
    assert (verdict.paper, verdict.positive_effect, verdict.label) == (paper, positive, label)


def test_without_a_paper_figure_only_the_effect_is_decided() -> None:
    assert paper_figure("nervousness") is None
    shown = decide(interval(0.01, 0.20), None)
    assert (shown.paper, shown.positive_effect, shown.label) == (
        None,
        True,
        "positive effect shown",
    )
    for low, high in ((0.0, 0.2), (-0.3, 0.2), (-0.5, -0.1)):
        verdict = decide(interval(low, high), None)
        assert (verdict.paper, verdict.positive_effect) == (None, False)
        assert verdict.label == "undecided (no paper figure)"


def test_fewer_than_ten_seeds_decide_nothing() -> None:
    # an interval that would refute with ten seeds
    verdict = decide(interval(0.10, 0.20, n=9), 0.55)
    assert (verdict.paper, verdict.positive_effect) == (None, False)
    assert verdict.label == "undecided: fewer than 10 seeds"
    assert decide(interval(0.10, 0.20, n=10), 0.55).paper == "refuted"


def test_the_papers_mean_applies_only_over_all_28_emotions() -> None:
    assert paper_figure_over([f"e{i}" for i in range(28)]) == pytest.approx(0.285)
    assert paper_figure_over(["neutral", "nervousness", "disappointment"]) is None


def test_mean_over_emotions_pairs_seeds_every_emotion_has() -> None:
    by_emotion = {
        "neutral": {1: 0.2, 2: -0.4, 3: 0.1},
        "nervousness": {1: 0.0, 3: 0.5},  # seed 2 not run yet
    }
    assert mean_over_emotions(by_emotion) == pytest.approx({1: 0.1, 3: 0.3})
    assert mean_over_emotions({}) == {}


def test_the_three_arms_of_the_design() -> None:
    assert {name: (arm.selection, arm.gate) for name, arm in ARMS.items()} == {
        "paper-anchor": ("anchor", False),
        "paper-target": ("target", False),
        "gate": ("target", True),
    }
