"""Grouping invariants: a partition into near-equal groups, plus each strategy's own promise."""

import numpy as np
import pytest

from crowdsft.engine.grouping import GROUPINGS, get_grouping


@pytest.mark.parametrize("name", sorted(GROUPINGS))
@pytest.mark.parametrize(("n", "g"), [(10, 2), (25, 3), (100, 4), (11, 5)])
def test_partition_into_near_equal_groups(name: str, n: int, g: int) -> None:
    rng = np.random.default_rng(0)
    points = rng.integers(1, 20, n).astype(float)
    for t in range(5):
        labels = get_grouping(name)(points, g, t * 20, 100, rng)
        assert labels.shape == (n,)
        sizes = np.bincount(labels, minlength=g)
        assert sizes.size == g and sizes.sum() == n
        # The authors' dealing starts each half at group 0: up to one extra member per half.
        assert sizes.max() - sizes.min() <= (2 if name == "interleaved_paper" else 1)


def test_interleaved_groups_mix_top_and_bottom_half() -> None:
    rng = np.random.default_rng(1)
    points = rng.permutation(40).astype(float)
    labels = get_grouping("interleaved")(points, 4, 0, 100, rng)
    top = points >= np.median(points)
    for g in range(4):
        assert 0 < top[labels == g].sum() < (labels == g).sum()
        assert top[labels == g].sum() == 5


def test_epsilon_greedy_sorts_when_greedy() -> None:
    rng = np.random.default_rng(2)
    points = rng.permutation(40).astype(float)
    contiguous = 0
    for _ in range(200):
        labels = get_grouping("epsilon_greedy")(points, 4, 99, 100, rng)  # epsilon = 0.4
        by_points = labels[np.argsort(points)]
        contiguous += bool(np.all(np.diff(by_points) >= 0))
    # Greedy 60% of the time; a random split is essentially never sorted.
    assert 90 < contiguous < 150


def test_random_grouping_varies_and_is_seeded() -> None:
    points = np.ones(20)
    a = get_grouping("random")(points, 4, 0, 100, np.random.default_rng(3))
    b = get_grouping("random")(points, 4, 0, 100, np.random.default_rng(3))
    c = get_grouping("random")(points, 4, 0, 100, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_unknown_grouping() -> None:
    with pytest.raises(ValueError):
        get_grouping("nope")
