"""A Ray task's units of work, run in-process: train a candidate, evaluate a model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("peft")
pytest.importorskip("sentence_transformers")

from crowdsft.domain.ids import model_key
from crowdsft.llm.config import LlmSpec, SamplingConfig, SftHyperparameters
from crowdsft.llm_runtime.jobs import (
    EvaluateJob,
    ModelRef,
    TrainJob,
    TrainResult,
    Workspace,
    combined,
    evaluate_model,
    member_positions,
    train_candidate,
)
from crowdsft.llm_runtime.phi import load_phi, mean_distance
from crowdsft.llm_runtime.sft import Example

PROMPT = "write a reddit comment."
RESPONSES = [
    ("alice", "so happy for you!"),
    ("bob", "this is the worst thing i have read today."),
    ("alice", "congrats, well deserved!"),
    ("carol", "the tax deadline is in april."),
]
KEY = model_key("llm-camp:r00001:g0")


def tiny_llm() -> dict[str, Any]:
    sampling = SamplingConfig(samples=2, max_new_tokens=8, batch_size=8)
    spec = LlmSpec(
        base_model="tiny",
        phi="minilm",
        sft=SftHyperparameters(
            lora_r=4, lora_alpha=8, lora_dropout=0.0, epochs=1, learning_rate=1e-2, max_length=48
        ),
        sampling=sampling,
        heldout_sampling=sampling.model_copy(update={"seed": 1}),
    )
    return spec.model_dump(mode="json")


@pytest.fixture(scope="module")
def target() -> list[float]:
    return [float(x) for x in load_phi("minilm").embed(["so happy for you, congrats!"])[0]]


def train_job(workspace: Workspace, target: list[float], responses: list[tuple[str, str]]) -> Any:
    return TrainJob(
        model=ModelRef("tiny"),
        adapter_key=KEY,
        examples=[Example(PROMPT, text) for _, text in responses],
        contributors=[who for who, _ in responses],
        llm=tiny_llm(),
        target=target,
        workspace=workspace,
    )


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, target: list[float]
) -> tuple[Workspace, TrainResult]:
    workspace = Workspace(artifact_root=str(tmp_path_factory.mktemp("artifacts")))
    return workspace, train_candidate(train_job(workspace, target, RESPONSES))


def test_train_candidate_stores_the_adapter_and_reports(
    trained: tuple[Workspace, TrainResult],
) -> None:
    workspace, result = trained
    store = workspace.store()
    assert result.adapter_key == KEY
    assert store.exists(KEY)
    assert store.path(KEY) == Path(workspace.artifact_root).resolve() / KEY
    files = {p.name for p in store.path(KEY).iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    assert result.examples == len(RESPONSES)
    assert result.steps == 1  # 4 examples, one batch, one epoch
    assert result.device == "cpu" or result.device.startswith("cuda")
    assert math.isfinite(result.first_loss)
    assert math.isfinite(result.last_loss)


def test_member_positions_place_each_contributor_at_their_mean_phi(
    trained: tuple[Workspace, TrainResult],
) -> None:
    _, result = trained
    vectors = load_phi("minilm").embed([text for _, text in RESPONSES])
    assert set(result.member_positions) == {"alice", "bob", "carol"}
    np.testing.assert_allclose(
        result.member_positions["alice"], (vectors[0] + vectors[2]) / 2, atol=1e-5
    )
    np.testing.assert_allclose(result.member_positions["bob"], vectors[1], atol=1e-5)
    np.testing.assert_allclose(result.member_positions["carol"], vectors[3], atol=1e-5)
    expected = member_positions(vectors, [who for who, _ in RESPONSES])
    for who, position in result.member_positions.items():
        np.testing.assert_allclose(position, expected[who], atol=1e-5)


def test_candidate_evaluation_is_the_distance_of_its_samples(
    trained: tuple[Workspace, TrainResult], target: list[float]
) -> None:
    _, result = trained
    evaluation = result.evaluation
    assert len(evaluation.samples) == 2  # 2 samples x 1 evaluation prompt
    vectors = load_phi("minilm").embed(evaluation.samples)
    goal = np.asarray(target)
    assert evaluation.distance == pytest.approx(mean_distance(vectors, goal), abs=1e-5)
    np.testing.assert_allclose(evaluation.position, vectors.mean(axis=0), atol=1e-5)
    assert len(evaluation.position) == 384
    assert math.isfinite(evaluation.heldout_distance)
    assert evaluation.heldout_distance > 0
    assert 0 < evaluation.new_tokens <= (2 + 2 * 2) * 8  # eval + held-out prompts
    assert evaluation.generation_seconds > 0


def test_evaluating_the_stored_adapter_reproduces_the_candidates_score(
    trained: tuple[Workspace, TrainResult], target: list[float]
) -> None:
    """The judge loads the candidate by its key (merged) and sees what training measured."""
    workspace, result = trained
    evaluation = evaluate_model(
        EvaluateJob(ModelRef("tiny", (KEY,)), tiny_llm(), target, workspace)
    )
    assert evaluation.samples == result.evaluation.samples
    assert evaluation.distance == pytest.approx(result.evaluation.distance, abs=1e-5)
    assert evaluation.heldout_distance == pytest.approx(
        result.evaluation.heldout_distance, abs=1e-5
    )


def test_evaluate_base_model_without_heldout(
    trained: tuple[Workspace, TrainResult], target: list[float]
) -> None:
    workspace, _ = trained
    job = EvaluateJob(ModelRef("tiny"), tiny_llm(), target, workspace, heldout=False)
    evaluation = evaluate_model(job)
    assert math.isnan(evaluation.heldout_distance)
    vectors = load_phi("minilm").embed(evaluation.samples)
    assert evaluation.distance == pytest.approx(
        mean_distance(vectors, np.asarray(target)), abs=1e-5
    )
    assert 0 < evaluation.new_tokens <= 2 * 8


def test_a_second_reference_is_measured_on_the_same_samples(
    trained: tuple[Workspace, TrainResult], target: list[float]
) -> None:
    workspace, _ = trained
    anchor = [0.0] * len(target)
    plain = evaluate_model(EvaluateJob(ModelRef("tiny"), tiny_llm(), target, workspace, False))
    job = EvaluateJob(ModelRef("tiny"), tiny_llm(), target, workspace, False, reference=anchor)
    evaluation = evaluate_model(job)
    assert math.isnan(plain.reference_distance)
    assert evaluation.samples == plain.samples and evaluation.distance == plain.distance
    vectors = load_phi("minilm").embed(evaluation.samples)
    assert evaluation.reference_distance == pytest.approx(
        mean_distance(vectors, np.zeros(len(target))), abs=1e-5
    )


def test_a_models_two_sets_measured_apart_are_its_evaluation_at_once(
    trained: tuple[Workspace, TrainResult], target: list[float]
) -> None:
    """How training measures a base on two workers: the same answers, the same figures."""
    workspace, result = trained
    model = ModelRef("tiny", (KEY,))
    at_once = evaluate_model(EvaluateJob(model, tiny_llm(), target, workspace))
    selection = evaluate_model(EvaluateJob(model, tiny_llm(), target, workspace, heldout=False))
    heldout = evaluate_model(EvaluateJob(model, tiny_llm(), target, workspace, selection=False))
    assert math.isnan(heldout.distance) and heldout.position == [] and heldout.samples == []
    assert math.isnan(selection.heldout_distance)
    apart = combined(selection, heldout)
    assert apart.samples == at_once.samples and apart.new_tokens == at_once.new_tokens
    assert apart.distance == pytest.approx(at_once.distance, abs=1e-6)
    assert apart.heldout_distance == pytest.approx(at_once.heldout_distance, abs=1e-6)
    assert apart.position == pytest.approx(at_once.position, abs=1e-6)
    assert at_once.distance == pytest.approx(result.evaluation.distance, abs=1e-5)


def test_a_replayed_training_keeps_the_first_adapter(
    trained: tuple[Workspace, TrainResult], target: list[float]
) -> None:
    workspace, _ = trained
    folder = workspace.store().path(KEY)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    other = [("dave", "i disagree with every word of this."), ("erin", "meh.")]
    result = train_candidate(train_job(workspace, target, other))
    assert result.adapter_key == KEY
    assert set(result.member_positions) == {"dave", "erin"}
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert after == before
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no staging left
