"""Rounds per second through the whole pipeline, with one and with two training processes.

Private Tansu + SecantusDB; intake, selection, training (x1 or x2), scoring and shapley as
their own processes; a vector campaign of 100 contributors x 4 groups (the paper's main
setting) runs 30 rounds under the auto policy. Timed from the first round opened to the last
round's Shapley figures. Writes bench/results/rounds.json.

    .venv/bin/python bench/rounds.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crowdsft.adapters import mongo  # noqa: E402
from crowdsft.adapters.kafka import ensure_topics  # noqa: E402
from crowdsft.engine.simulation import SimulationConfig  # noqa: E402
from crowdsft.settings import settings_from  # noqa: E402
from tests.integration.campaign_runs import (  # noqa: E402
    assert_matches_engine,
    launch,
    reference,
    spec_for,
    start_services,
    wait_finished,
)
from tests.support.stack import localstack, wait_until  # noqa: E402

TARGET_ROUNDS_PER_S = 2.0


async def run(rounds: int, training: int, run_dir: Path) -> dict[str, object]:
    env = {**localstack().up(run_dir), "CROWDSFT_MONGO_DB": "bench", "CROWDSFT_ENV_FILE": ""}
    settings = settings_from(env)
    config = SimulationConfig(n_users=100, n_groups=4, n_rounds=rounds)
    ref = reference(config, seed=1)
    spec = spec_for("bench", config, ref.crowd, 1)
    async with mongo.opened(settings) as db:
        await ensure_topics(settings)
        services = start_services(env, run_dir, training=training)
        try:
            for service in services.values():
                wait_until(lambda s=service: "started successfully" in s.log(), 60, "service start")
            await launch(db, settings, spec, ref.crowd)
            while await db[mongo.ROUNDS].find_one({"round_index": 0}) is None:
                await asyncio.sleep(0.01)
            started = time.perf_counter()
            await wait_finished(db, spec, services, timeout_s=600)
            elapsed = time.perf_counter() - started
            await assert_matches_engine(db, spec, ref)
        finally:
            for service in services.values():
                service.stop()
            localstack().down(run_dir, quiet=True)
    return {
        "training_processes": training,
        "rounds": rounds,
        "seconds": round(elapsed, 3),
        "rounds_per_second": round(rounds / elapsed, 2),
        "matches_engine": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "rounds.json")
    args = parser.parse_args()
    runs = []
    for training in (1, 2):
        with tempfile.TemporaryDirectory(prefix="crowdsft-rounds-") as tmp:
            runs.append(asyncio.run(run(args.rounds, training, Path(tmp))))
    slowest = min(float(r["rounds_per_second"]) for r in runs)  # type: ignore[arg-type]
    result = {
        "setting": "vector backend, 100 contributors x 4 groups, auto policy, one campaign",
        "runs": runs,
        "target_rounds_per_second": TARGET_ROUNDS_PER_S,
        "meets_target": slowest >= TARGET_ROUNDS_PER_S,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
