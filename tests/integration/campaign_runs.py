"""Shared steps for running campaigns through the real services and checking the outcome."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import started_broker
from crowdsft.adapters.ledger_store import LedgerStore
from crowdsft.adapters.measurement_store import MeasurementStore
from crowdsft.adapters.mongo import Database
from crowdsft.adapters.shapley_store import ShapleyStore
from crowdsft.domain.campaign import CampaignSpec, RoundPolicy, streams
from crowdsft.domain.crowd import point_submissions
from crowdsft.domain.steps import synthetic_crowd
from crowdsft.engine.crowd import Crowd
from crowdsft.engine.experiment import ShapleySettings, shapley_of_crowd
from crowdsft.engine.simulation import SimulationConfig, Trajectory, simulate
from crowdsft.settings import Settings
from tests.support.stack import ServiceProcess

ROUND_SERVICES = ("intake", "selection", "training", "scoring", "shapley")


@dataclass(frozen=True)
class Reference:
    """The in-process engine's answer for the same seed: what the services must reproduce."""

    crowd: Crowd
    trajectory: Trajectory
    shapley: np.ndarray


def contributor_ids(n: int) -> list[str]:
    return [f"c{i:03d}" for i in range(n)]  # sorted order == the crowd's row order


def reference(config: SimulationConfig, seed: int, rel_error: float = 0.01) -> Reference:
    _, dynamics, shapley_stream = streams(seed)
    crowd = synthetic_crowd(config.n_users, seed)
    trajectory = simulate(config, crowd, np.random.default_rng(dynamics))
    settings = ShapleySettings("stratified", rel_error)
    values = shapley_of_crowd(
        crowd, config.evaluation, settings, np.random.default_rng(shapley_stream)
    )
    return Reference(crowd, trajectory, values.values)


def spec_for(campaign_id: str, config: SimulationConfig, crowd: Crowd, seed: int) -> CampaignSpec:
    return CampaignSpec(
        campaign_id=campaign_id,
        target=[float(x) for x in crowd.expert],
        n_groups=config.n_groups,
        grouping=config.grouping,
        evaluation=config.evaluation,
        points_rule=config.points_rule,
        delta=config.delta,
        judge_error=config.judge_error,
        policy=RoundPolicy(
            mode="auto", min_contributions=config.n_users, max_rounds=config.n_rounds
        ),
        seed=seed,
    )


async def launch(db: Database, settings: Settings, spec: CampaignSpec, crowd: Crowd) -> None:
    """Create the campaign, then each contributor submits their point through the producer."""
    await CampaignStore(db).create_with_spec(spec)
    ids = contributor_ids(crowd.n_users)
    events = point_submissions(spec.campaign_id, ids, crowd.users, producer="test")
    async with started_broker(settings, "test-crowd") as broker:
        await FeedbackProducer(broker).submit(events)


def start_service(name: str, env: dict[str, str], logs: Path) -> ServiceProcess:
    """`training-2` is a second replica of `services.training`, logging to its own file."""
    return ServiceProcess(f"services.{name.split('-')[0]}", env, logs / f"{name}.log").start()


def start_services(env: dict[str, str], logs: Path, training: int = 1) -> dict[str, ServiceProcess]:
    """The round services with `training` replicas of training (0: start it later)."""
    others = [name for name in ROUND_SERVICES if name != "training"]
    replicas = ["training", *(f"training-{n}" for n in range(2, training + 1))][:training]
    return {name: start_service(name, env, logs) for name in [*others, *replicas]}


async def wait_finished(db: Database, spec: CampaignSpec, services: dict[str, ServiceProcess],
                        timeout_s: float = 240) -> None:  # fmt: skip
    """Until the last round is scored and its Shapley figures are in."""
    last = spec.policy.max_rounds - 1
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shapley = await ShapleyStore(db).get(spec.campaign_id)
        if shapley is not None and shapley.as_of_round_index == last:
            return
        dead = [name for name, s in services.items() if not s.alive]
        assert not dead, f"{dead} died: " + "\n".join(services[n].log()[-3000:] for n in dead)
        await asyncio.sleep(0.2)
    logs = "\n".join(f"--- {n}\n{s.log()[-2000:]}" for n, s in services.items())
    raise AssertionError(f"campaign {spec.campaign_id} did not finish in {timeout_s} s\n{logs}")


async def assert_matches_engine(db: Database, spec: CampaignSpec, ref: Reference) -> None:
    ids = contributor_ids(ref.crowd.n_users)
    campaign = await CampaignStore(db).state(spec.campaign_id)
    assert campaign is not None and campaign.next_round == spec.policy.max_rounds
    [model] = await _vectors(db, campaign.model_id)
    np.testing.assert_allclose(model, ref.trajectory.model, rtol=0, atol=1e-9)
    points = await LedgerStore(db).points(spec.campaign_id, ids)
    np.testing.assert_allclose(points, ref.trajectory.points, rtol=0, atol=1e-9)
    shapley = await ShapleyStore(db).get(spec.campaign_id)
    assert shapley is not None and shapley.contributor_ids == ids
    np.testing.assert_allclose(shapley.values, ref.shapley, rtol=0, atol=1e-9)


async def _vectors(db: Database, model_id: str) -> np.ndarray:
    found = await MeasurementStore(db).get([model_id])
    return np.asarray([found[model_id].position])
