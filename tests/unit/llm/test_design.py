"""The LLM experiment's design: target and neighbours, disjoint splits, the pool, the gate."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsft.llm.design import (
    check_design,
    emotion_target,
    reduction,
    remove_used,
    run_generations,
    split_generation,
)


def test_the_target_is_the_mean_of_the_anchors_nearest_comments() -> None:
    phi = np.array([
        [0.1, 0.0], [0.9, 0.0], [0.8, 0.1], [0.0, 0.9], [0.7, 0.0], [0.85, 0.05],
    ])  # fmt: skip
    chosen = emotion_target(phi, emotion=0, k=3)
    assert chosen.anchor == 1  # highest on emotion 0
    # distances from row 1: row 5 0.071, row 2 0.141, row 4 0.2, row 0 0.8, row 3 1.27
    assert chosen.neighbours.tolist() == [5, 2, 4]
    assert 1 not in chosen.neighbours  # the anchor is not its own neighbour
    np.testing.assert_allclose(chosen.target, phi[[5, 2, 4]].mean(axis=0))
    with pytest.raises(ValueError, match="6 neighbours asked of a pool of 6"):
        emotion_target(phi, 0, 6)


def test_equal_distances_keep_index_order() -> None:
    phi = np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0], [0.0, 0.0]])
    # the anchor is row 2; rows 1 and 3 tie at 2.0 from it and keep their index order
    assert emotion_target(phi, 0, 3).neighbours.tolist() == [0, 1, 3]


def test_a_generation_is_disjoint_parts_of_the_unused_pool() -> None:
    pool = list(range(10, 40))
    parts = split_generation(pool, 7, 4, np.random.default_rng(0))
    assert [len(p) for p in parts] == [7, 7, 7, 7]
    flat = [i for p in parts for i in p]
    assert len(set(flat)) == 28 and set(flat) <= set(pool)
    again = split_generation(pool, 7, 4, np.random.default_rng(0))
    assert again == parts  # the seed decides the shuffle
    assert split_generation(pool, 7, 4, np.random.default_rng(1)) != parts
    with pytest.raises(ValueError, match="4 x 8 examples asked of a pool of 30"):
        split_generation(pool, 8, 4, np.random.default_rng(0))


def test_only_the_winners_examples_leave_the_pool() -> None:
    assert remove_used([5, 3, 8, 1, 9], [8, 5]) == [3, 1, 9]  # order kept
    assert remove_used([1, 2], []) == [1, 2]


def test_the_reduction_is_relative_to_the_single_model() -> None:
    assert reduction(0.120, 0.269) == pytest.approx(0.5539, abs=1e-4)  # the paper's neutral
    assert reduction(0.3, 0.2) == pytest.approx(-0.5)  # worse than the single model
    assert reduction(0.2, 0.2) == 0.0


def test_design_sizes_the_pool_cannot_serve_are_refused() -> None:
    check_design(100, (33, 66, 100), (33, 22, 15), 3)  # the paper's: 99, 66+..., fits
    with pytest.raises(ValueError, match="single model on 120 of 100"):
        check_design(100, (120,), (10,), 3)
    with pytest.raises(ValueError, match="generation 2: 3 x 30 examples, 67 left"):
        check_design(100, (33,), (33, 30), 3)


class Scripted:
    """Distances set per (generation, candidate); records what each candidate was built on."""

    def __init__(self, distances: dict[tuple[int, int], float]) -> None:
        self.distances = distances
        self.calls: list[tuple[int, int, list[int], tuple[tuple[int, int], ...]]] = []

    def __call__(self, generation: int, c: int, rows: list[int],
                 parent: tuple[tuple[int, int], ...]) -> float:  # fmt: skip
        self.calls.append((generation, c, rows, parent))
        return self.distances[generation, c]


DISTANCES = {(1, 0): 0.5, (1, 1): 0.3, (1, 2): 0.4,  # gen 1: c1 best, closer than base 0.6
             (2, 0): 0.35, (2, 1): 0.45, (2, 2): 0.32,  # gen 2: c2 best, but worse than 0.3
             (3, 0): 0.2, (3, 1): 0.25, (3, 2): 0.28}  # gen 3: c0 best and closer  # fmt: skip


@pytest.mark.parametrize("gate", [False, True])
def test_each_generation_trains_on_the_winners_chain_and_takes_its_examples(gate: bool) -> None:
    measure = Scripted(DISTANCES)
    generations = run_generations(range(100), (33, 22, 15), 3, np.random.default_rng(4),
                                  measure, start_distance=0.6, gate=gate)  # fmt: skip
    assert [g.best for g in generations] == [1, 2, 0]
    used: set[int] = set()
    for generation in generations:
        flat = [i for p in generation.parts for i in p]
        assert len(set(flat)) == len(flat)  # disjoint within the generation
        assert not set(flat) & used  # and no winner's example is seen again
        used |= set(generation.parts[generation.best])
    parents = {(g, c): parent for g, c, _, parent in measure.calls}
    assert parents[1, 0] == ()
    assert parents[2, 1] == ((1, 1),)
    if gate:  # generation 2's best (0.32) is not closer than the model in hand (0.3)
        assert [g.won for g in generations] == [True, False, True]
        assert parents[3, 0] == ((1, 1),)
    else:  # the paper's protocol moves to every generation's best
        assert [g.won for g in generations] == [True, True, True]
        assert parents[3, 0] == ((1, 1), (2, 2))


def test_a_gated_tournament_keeps_the_base_when_nothing_is_closer() -> None:
    worse = {(g, c): 0.9 + 0.01 * c for g in (1, 2) for c in range(2)}
    generations = run_generations(range(20), (5, 5), 2, np.random.default_rng(0),
                                  Scripted(worse), start_distance=0.5, gate=True)  # fmt: skip
    assert [g.won for g in generations] == [False, False]
    # The losers' examples go back, but each generation's best leaves the pool even so.
    assert not set(generations[1].parts[0] + generations[1].parts[1]) & set(generations[0].parts[0])
