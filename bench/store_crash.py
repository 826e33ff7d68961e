"""How many acknowledged inserts a SIGKILLed store loses, with the default write concern and
with `w: majority, j: true` (what intake uses), side by side: each trial inserts batches of
100 while the store is killed mid-stream, restarts it on the same files and counts what
survived of what was acknowledged. Writes bench/results/store_crash.json."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.write_concern import WriteConcern

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from infra.localstack import free_port, wait_for_mongo, wait_for_port  # noqa: E402

TRIALS = 4
KILL_AFTER_S = 1.5


def start_store(port: int, path: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
            "--storage-path", str(path), "--log-level", "WARNING"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc.pid, "secantusdb")
    return proc


async def trial(concern: WriteConcern | None, path: Path) -> dict[str, int]:
    port = free_port()
    uri = f"mongodb://127.0.0.1:{port}/?retryWrites=false"
    store = start_store(port, path)
    wait_for_mongo(uri)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, serverSelectionTimeoutMS=2000)
    coll = client.bench.docs
    coll = coll.with_options(write_concern=concern) if concern else coll
    acknowledged = 0
    killed_at = time.monotonic() + KILL_AFTER_S
    batch = 0
    try:
        while True:
            if time.monotonic() > killed_at and store.poll() is None:
                os.kill(store.pid, signal.SIGKILL)
            docs = [{"_id": f"{batch}-{k}"} for k in range(100)]
            await coll.insert_many(docs, ordered=False)
            acknowledged += len(docs)
            batch += 1
    except Exception:
        pass
    await client.close()
    store.wait()
    store = start_store(port, path)
    wait_for_mongo(uri)
    check: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    stored = await check.bench.docs.count_documents({})
    await check.close()
    store.terminate()
    store.wait()
    return {"acknowledged": acknowledged, "stored": stored, "lost": max(0, acknowledged - stored)}


async def main() -> None:
    results: dict[str, list[dict[str, int]]] = {"default": [], "majority_journaled": []}
    for n in range(TRIALS):
        for name, concern in (
            ("default", None),
            ("majority_journaled", WriteConcern("majority", j=True)),
        ):
            with tempfile.TemporaryDirectory() as tmp:
                outcome = await trial(concern, Path(tmp))
            results[name].append(outcome)
            print(name, n, outcome, flush=True)
    summary = {
        name: {
            "trials": len(runs),
            "acknowledged": sum(r["acknowledged"] for r in runs),
            "lost": sum(r["lost"] for r in runs),
            "runs": runs,
        }
        for name, runs in results.items()
    }
    out = REPO / "bench" / "results" / "store_crash.json"
    out.write_text(json.dumps({"store": "SecantusDB 0.7.0b3", "kill_after_s": KILL_AFTER_S,
                               **summary}, indent=2) + "\n")  # fmt: skip
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
