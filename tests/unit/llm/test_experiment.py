"""The experiment's runner with its model jobs replaced: which jobs it asks for, and with which
sampling. No model is trained, so this runs in milliseconds; the real jobs are
`test_jobs.py`'s and the integration test's."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdsft.llm_runtime import experiment
from crowdsft.llm_runtime.experiment import LlmExperimentConfig, SharedModels, run_llm_experiment
from crowdsft.llm_runtime.jobs import EvaluateJob, Evaluation, TrainJob, TrainResult

RESCORED = ("rescored-single-4", "rescored-multi")


class RecordedJobs:
    """Stands in for the lora jobs: every model scores by its name, every job's sampling kept."""

    def __init__(self) -> None:
        self.evaluations: list[dict[str, Any]] = []  # the sampling of each plain evaluation
        self.trainings: list[dict[str, Any]] = []

    def evaluation(self, seed: int) -> Evaluation:
        return Evaluation(
            distance=0.5 - 0.001 * (seed % 100),
            position=[0.0],
            heldout_distance=float("nan"),
            new_tokens=1,
            generation_seconds=0.0,
        )

    def evaluate_model(self, job: EvaluateJob) -> Evaluation:
        self.evaluations.append(job.llm["sampling"])
        return self.evaluation(job.llm["sampling"]["seed"])

    def train_candidate(self, job: TrainJob) -> TrainResult:
        self.trainings.append(job.llm["sampling"])
        evaluation = self.evaluation(len(self.trainings))
        return TrainResult(
            job.adapter_key, len(job.examples), 1, 0.0, 0.0, 0.0, 0.0, evaluation, {}, "cpu"
        )


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> RecordedJobs:
    recorded = RecordedJobs()
    monkeypatch.setattr(experiment, "evaluate_model", recorded.evaluate_model)
    monkeypatch.setattr(experiment, "train_candidate", recorded.train_candidate)
    monkeypatch.setattr(experiment, "pick_device", lambda: "cpu")
    return recorded


def run(tmp_path: Path, **overrides: Any) -> experiment.LlmExperimentResult:
    rng = np.random.default_rng(0)
    pool_phi = rng.random((30, 4))
    cfg = LlmExperimentConfig(
        emotion="joy",
        out_dir=tmp_path,
        base_model="tiny",
        neighbours=12,
        singles=(4,),
        parts=(3, 2),
        candidates=2,
        samples=4,
        seed=7,
        rescore=True,
        **overrides,
    )
    return run_llm_experiment(cfg, [f"comment {i}" for i in range(30)], pool_phi, 0)


def test_rescoring_draws_the_asked_number_of_fresh_samples(
    tmp_path: Path, jobs: RecordedJobs
) -> None:
    result = run(tmp_path, rescore_samples=200)

    assert [o.label for o in result.outcomes if o.kind == "rescored"] == list(RESCORED)
    # base first, then the two finalists; every model picked on 4 samples of seed 7
    base, *rescoring = jobs.evaluations
    assert len(rescoring) == 2
    for sampling in rescoring:
        assert (sampling["samples"], sampling["seed"], sampling["batch_size"]) == (200, 1007, 50)
    for sampling in [base, *jobs.trainings]:
        assert (sampling["samples"], sampling["seed"], sampling["batch_size"]) == (4, 7, 4)
    assert len(jobs.trainings) == 1 + 2 * 2  # one single, two generations of two candidates


def test_rescoring_draws_as_many_as_selection_unless_told(
    tmp_path: Path, jobs: RecordedJobs
) -> None:
    run(tmp_path)

    _, *rescoring = jobs.evaluations
    assert [(s["samples"], s["seed"]) for s in rescoring] == [(4, 1007), (4, 1007)]


def test_rescoring_samples_are_validated_like_any_sampling() -> None:
    cfg = LlmExperimentConfig(emotion="joy", out_dir=Path("."), rescore=True, rescore_samples=0)
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        cfg.rescoring_spec()


class ContentJobs:
    """Stands in for the lora jobs with results that depend on the model alone (its adapter
    chain), as the real jobs' do: what sharing models across arms must not change."""

    def __init__(self) -> None:
        self.trained: list[str] = []
        self.evaluated = 0

    @staticmethod
    def score(name: str, salt: str) -> float:
        digest = hashlib.sha256((salt + name).encode()).digest()
        return 0.3 + 0.4 * digest[0] / 255

    def evaluation(self, name: str) -> Evaluation:
        return Evaluation(
            distance=self.score(name, "target"),
            position=[0.0],
            heldout_distance=float("nan"),
            new_tokens=1,
            generation_seconds=0.0,
            reference_distance=self.score(name, "anchor"),
        )

    def evaluate_model(self, job: EvaluateJob) -> Evaluation:
        self.evaluated += 1
        return self.evaluation(f"{job.llm['sampling']['seed']}:{'/'.join(job.model.adapters)}")

    def train_candidate(self, job: TrainJob) -> TrainResult:
        self.trained.append(job.adapter_key)
        evaluation = self.evaluation("/".join((*job.model.adapters, job.adapter_key)))
        return TrainResult(
            job.adapter_key, len(job.examples), 1, 0.0, 0.0, 0.0, 0.0, evaluation, {}, "cpu"
        )


ARM_SETTINGS = {
    "paper-anchor": {"selection": "anchor", "gate": False},
    "paper-target": {"selection": "target", "gate": False},
    "gate": {"selection": "target", "gate": True},
}


def arm_run(tmp_path: Path, arm: str, shared: SharedModels | None, seed: int = 7) -> Any:
    cfg = LlmExperimentConfig(
        emotion="joy", out_dir=tmp_path, base_model="tiny", neighbours=12, singles=(4, 8),
        parts=(3, 2, 2), candidates=3, samples=4, seed=seed, rescore=True,
        **ARM_SETTINGS[arm],
    )  # fmt: skip
    pool_phi = np.random.default_rng(0).random((30, 4))
    texts = [f"comment {i}" for i in range(30)]
    return run_llm_experiment(cfg, texts, pool_phi, 0, shared=shared)


def test_arms_sharing_models_get_what_each_gets_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run_with(jobs: ContentJobs, arm: str, shared: SharedModels | None) -> Any:
        monkeypatch.setattr(experiment, "evaluate_model", jobs.evaluate_model)
        monkeypatch.setattr(experiment, "train_candidate", jobs.train_candidate)
        monkeypatch.setattr(experiment, "pick_device", lambda: "cpu")
        return arm_run(tmp_path, arm, shared)

    alone_jobs, shared_jobs = ContentJobs(), ContentJobs()
    shared = SharedModels(tmp_path / "shared")
    for arm in ARM_SETTINGS:
        alone = run_with(alone_jobs, arm, None)
        together = run_with(shared_jobs, arm, shared)
        assert together.outcomes == alone.outcomes, arm
    # Each arm alone: 1 base + 2 singles + 9 candidates + 2 re-scored models, trained or measured.
    assert len(alone_jobs.trained) == 3 * 11 and alone_jobs.evaluated == 3 * 3
    # Shared: the singles and generation 1 once; later generations once per distinct parent.
    assert len(shared_jobs.trained) == len(set(shared_jobs.trained)) <= 3 * 11 - 2 * 5
    assert shared_jobs.evaluated < alone_jobs.evaluated


def test_models_are_not_shared_between_seeds(tmp_path: Path, jobs: RecordedJobs) -> None:
    shared = SharedModels(tmp_path)
    arm_run(tmp_path, "gate", shared, seed=1)
    with pytest.raises(ValueError, match="one emotion and seed"):
        arm_run(tmp_path, "gate", shared, seed=2)
