"""The numpy side of `phi`: the paper's mean distance and each contributor's position."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsft.llm_runtime.jobs import member_positions
from crowdsft.llm_runtime.phi import mean_distance


def test_mean_distance_is_mean_of_row_l2_distances() -> None:
    target = np.array([1.0, 1.0])
    vectors = np.array([[4.0, 5.0], [1.0, 1.0], [1.0, -1.0]])
    assert mean_distance(vectors, target) == pytest.approx((5.0 + 0.0 + 2.0) / 3)


def test_mean_distance_is_not_distance_of_the_mean() -> None:
    """Outputs spread around the target are far from it even though their mean is on it."""
    target = np.zeros(3)
    vectors = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    assert mean_distance(vectors, target) == pytest.approx(1.0)
    assert mean_distance(vectors.mean(axis=0, keepdims=True), target) == 0.0


def test_member_positions_average_each_contributors_rows() -> None:
    vectors = np.array([[0.0, 2.0], [4.0, 0.0], [2.0, 2.0], [1.0, 1.0], [6.0, 3.0]])
    contributors = ["bob", "alice", "bob", "carol", "alice"]
    positions = member_positions(vectors, contributors)
    assert positions == {"bob": [1.0, 2.0], "alice": [5.0, 1.5], "carol": [1.0, 1.0]}
    assert all(isinstance(x, float) for row in positions.values() for x in row)


def test_member_positions_of_one_contributor_is_the_overall_mean() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(7, 5))
    [(who, position)] = member_positions(vectors, ["dora"] * 7).items()
    assert who == "dora"
    np.testing.assert_allclose(position, vectors.mean(axis=0))
