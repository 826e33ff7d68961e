"""The demo's round loop: a crowd campaign run by the services, checked against the engine.

The crowd (the demo's registered contributors) each submit a preference point through the
Kafka producer; selection, training, scoring and shapley run 30 rounds on their own under
the campaign's auto policy; the result is compared with the in-process engine run of the
same seed, and drawn.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.progress import Progress

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import started_broker
from crowdsft.adapters.ledger_store import LedgerStore
from crowdsft.adapters.round_store import RoundStore
from crowdsft.adapters.shapley_store import ShapleyStore
from crowdsft.domain.campaign import CampaignSpec, RoundPolicy
from crowdsft.domain.crowd import point_submissions
from crowdsft.domain.round import Round
from crowdsft.domain.steps import engine_run, synthetic_crowd
from crowdsft.engine.crowd import Crowd
from crowdsft.settings import Settings


async def submit_points(
    settings: Settings, spec: CampaignSpec, ids: list[str], crowd: Crowd
) -> None:
    """Through the Kafka producer, as the CLI would."""
    events = point_submissions(spec.campaign_id, ids, crowd.users, producer="demo-cli")
    async with started_broker(settings, "crowdsft-demo") as broker:
        await FeedbackProducer(broker).submit(events)


async def wait_rounds(db: mongo.Database, spec: CampaignSpec, console: Console) -> float:
    last = spec.policy.max_rounds - 1
    started = time.perf_counter()
    with Progress(console=console) as progress:
        task = progress.add_task("rounds", total=spec.policy.max_rounds)
        while time.perf_counter() - started < 600:
            state = await CampaignStore(db).state(spec.campaign_id)
            progress.update(task, completed=state.next_round if state else 0)
            shapley = await ShapleyStore(db).get(spec.campaign_id)
            if shapley is not None and shapley.as_of_round_index == last:
                return time.perf_counter() - started
            await asyncio.sleep(0.2)
    raise RuntimeError(f"campaign {spec.campaign_id} did not finish; see .run/logs")


def model_distances(rounds: list[Round], start: float) -> list[float]:
    """Distance to the target after each round: the winner's if the model moved."""
    distances = [start]
    for done in rounds:
        decision = done.decision
        winner = decision.winner_model_id if decision is not None else None
        moved = (
            [c.distance for c in decision.candidates if c.model_id == winner] if decision else []
        )
        distances.append(moved[0] if moved else distances[-1])
    return distances


def plot(out: Path, services: list[float], engine: list[float], points: Any, values: Any,
         pearson: float) -> Path:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(services, label="services", linewidth=2)
    left.plot(engine, "--", label="in-process engine", linewidth=1)
    left.axhline(5.0, color="grey", linewidth=0.8, linestyle=":")
    left.set_xlabel("round")
    left.set_ylabel("L2 distance to target")
    left.set_title("Model distance over rounds")
    left.legend()
    right.scatter(values, points, s=12)
    right.set_xlabel("Shapley value")
    right.set_ylabel("final points")
    right.set_title(f"Points vs Shapley (Pearson {pearson:.3f})")
    fig.tight_layout()
    path = out / "rounds.png"
    fig.savefig(path, dpi=110)
    return path


async def run_campaign(
    db: mongo.Database,
    settings: Settings,
    ids: list[str],
    balances: str,
    seed: int,
    rounds: int,
    out: Path,
    console: Console,
) -> dict[str, Any]:
    ids = sorted(ids)
    crowd = synthetic_crowd(len(ids), seed)
    spec = CampaignSpec(
        campaign_id=f"crowd-{time.strftime('%H%M%S')}",
        name="make demo: crowd simulation as services",
        target=[float(x) for x in crowd.expert],
        points_rule="shapley",
        policy=RoundPolicy(mode="auto", min_contributions=len(ids), max_rounds=rounds),
        seed=seed,
    )
    await CampaignStore(db).create_with_spec(spec)
    await submit_points(settings, spec, ids, crowd)
    seconds = await wait_rounds(db, spec, console)

    engine = engine_run(spec, crowd)
    points = await LedgerStore(db).points(spec.campaign_id, ids)
    shapley = await ShapleyStore(db).get(spec.campaign_id)
    assert shapley is not None
    fairness = shapley.fairness[rounds - 1]
    history = await RoundStore(db).of_campaign(spec.campaign_id)
    distances = model_distances(history, float(engine.distances[0]))
    png = plot(
        out,
        distances,
        list(engine.distances),
        points,
        shapley.values,
        fairness.pearson or float("nan"),
    )
    async with httpx.AsyncClient(base_url=balances) as client:
        reply = await client.get(
            "/v1/leaderboard", params={"campaign": spec.campaign_id, "limit": 10}
        )
        reply.raise_for_status()
    return {
        "campaign_id": spec.campaign_id,
        "rounds": rounds,
        "seconds": round(seconds, 2),
        "final_distance": distances[-1],
        "engine_final_distance": float(engine.distances[-1]),
        "max_points_difference_vs_engine": float(np.max(np.abs(points - engine.points))),
        "pearson": fairness.pearson,
        "spearman": fairness.spearman,
        "shapley_relative_error": shapley.relative_error,
        "leaderboard": reply.json(),
        "plot": str(png),
    }


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value
