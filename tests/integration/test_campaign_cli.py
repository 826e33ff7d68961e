"""`crowdsft campaign create/show` and `crowdsft round start` against the real stack.

The main paths run as real processes, side by side (each pays the CLI's ~2 s start-up);
further refusals run in-process through Typer's runner, with the same environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from aiokafka import AIOKafkaConsumer
from typer.testing import CliRunner

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.cli import app
from crowdsft.cli import commands as _registers  # noqa: F401
from crowdsft.contracts import derive_event_id
from crowdsft.contracts.topics import ROUND_START
from crowdsft.domain.campaign import CampaignSpec, RoundPolicy
from tests.support.kafka_io import read_topic
from tests.support.stack import REPO

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-c", "from crowdsft.cli import main; main()"]
VEC = CampaignSpec(
    campaign_id="vec",
    name="Vectors",
    target=[1.0, 2.0, 3.0],
    n_groups=3,
    grouping="random",
    evaluation="l2",
    points_rule="rank",
    delta=0.2,
    judge_error=0.0,
    policy=RoundPolicy(mode="auto", min_contributions=5, max_rounds=4),
    seed=3,
    shapley_every=2,
    shapley_rel_error=0.05,
)


def run_all(env: dict[str, str], *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Start every command, then wait for each: (returncode, stdout, stderr) in order."""
    procs = [
        subprocess.Popen(
            CLI + args,
            cwd=REPO,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    done = []
    for args, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


def in_process(env: dict[str, str], args: list[str]) -> tuple[int, str]:
    """Exit code and stderr. Sync on purpose: commands call asyncio.run themselves."""
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.stderr


async def record_keys(bootstrap: str, topic: str, count: int) -> list[bytes | None]:
    """The keys of the first `count` records (read_topic returns values only)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        keys: list[bytes | None] = []
        while len(keys) < count:
            batches = await consumer.getmany(timeout_ms=10_000)
            assert batches, f"fewer than {count} records on {topic}"
            keys += [record.key for records in batches.values() for record in records]
        return keys
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
def created(
    stack_env: dict[str, str], db: mongo.Database, tmp_path_factory: pytest.TempPathFactory
) -> list[subprocess.CompletedProcess[str]]:
    """`vec` with every round setting, `csv` with its target from a file, `fb` feedback-only."""
    target_file = tmp_path_factory.mktemp("targets") / "target.csv"
    target_file.write_text("\n0.5, -1.5 ,2\n9,9,9\n")
    return run_all(
        stack_env,
        ["campaign", "create", "--id", "vec", "--name", "Vectors", "--target", "1, 2,3",
         "--groups", "3", "--grouping", "random", "--evaluation", "l2", "--points", "rank",
         "--delta", "0.2", "--judge-error", "0", "--backend", "vector", "--policy", "auto",
         "--min-contributions", "5", "--rounds", "4", "--seed", "3", "--shapley-every", "2",
         "--shapley-rel-error", "0.05"],
        ["campaign", "create", "--id", "csv", "--target-file", str(target_file)],
        ["campaign", "create", "--id", "fb", "--name", "Feedback"],
    )  # fmt: skip


async def test_create_stores_the_spec(
    created: list[subprocess.CompletedProcess[str]], db: mongo.Database
) -> None:
    for result in created:
        assert result.returncode == 0, result.stderr
    assert "vec created (runs rounds)" in created[0].stdout
    assert "fb created (feedback only)" in created[2].stdout
    store = CampaignStore(db)
    assert await store.spec("vec") == VEC
    assert await store.spec("csv") == CampaignSpec(campaign_id="csv", target=[0.5, -1.5, 2.0])
    assert await store.spec("fb") is None and await store.known({"fb"}) == {"fb"}
    state = await store.state("vec")
    assert state is not None and (state.next_round, state.model_id) == (0, "vec:base")


def test_created_twice_is_harmless(
    stack_env: dict[str, str], created: list[subprocess.CompletedProcess[str]]
) -> None:
    args = ["campaign", "create", "--id", "vec", "--target", "7"]
    result = CliRunner().invoke(app, args, env=stack_env)
    assert result.exit_code == 0 and "vec already exists" in result.stdout


async def test_invalid_settings_exit_1_and_create_nothing(
    stack_env: dict[str, str], db: mongo.Database
) -> None:
    [process] = run_all(stack_env, ["campaign", "create", "--id", "bad0", "--target", "1,2",
                                    "--groups", "0", "--seed", "-1"])  # fmt: skip
    assert process.returncode == 1, (process.stdout, process.stderr)
    assert "campaign not created" in process.stderr
    assert "n_groups" in process.stderr and "seed" in process.stderr
    refused = {
        "bad1": (["--target", "1,x"], "not a comma-separated row of numbers"),
        "bad2": (["--target", "1", "--grouping", "nope"], "grouping"),
        "bad3": (["--groups", "3"], "round settings need --target"),
        "bad4": (["--target", "1", "--policy", "sometimes"], "policy.mode"),
        "bad5": (["--target", "1", "--target-file", __file__], "not both"),
    }
    for campaign_id, (options, message) in refused.items():
        code, err = in_process(stack_env, ["campaign", "create", "--id", campaign_id, *options])
        assert code == 1 and "campaign not created" in err and message in err, (options, err)
    ids = ["bad0", *refused]
    assert await db[mongo.CAMPAIGNS].count_documents({"_id": {"$in": ids}}) == 0


async def test_show_prints_spec_and_state(
    stack_env: dict[str, str], created: list[subprocess.CompletedProcess[str]]
) -> None:
    [vec] = run_all(stack_env, ["campaign", "show", "--id", "vec"])
    assert vec.returncode == 0, vec.stderr
    shown = json.loads(vec.stdout)
    assert shown["campaign_id"] == "vec" and shown["name"] == "Vectors"
    assert shown["spec"] == VEC.model_dump(mode="json")
    assert shown["state"] == {"next_round": 0, "model_id": "vec:base", "open_round": None}


def test_show_feedback_only_and_unknown(
    stack_env: dict[str, str], created: list[subprocess.CompletedProcess[str]]
) -> None:
    result = CliRunner().invoke(app, ["campaign", "show", "--id", "fb"], env=stack_env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) | {"created_at": None} == {
        "campaign_id": "fb", "name": "Feedback", "created_at": None, "spec": None, "state": None
    }  # fmt: skip
    code, err = in_process(stack_env, ["campaign", "show", "--id", "nope"])
    assert code == 1 and "no campaign 'nope'" in err


async def test_round_start_publishes_the_command(
    stack_env: dict[str, str], db: mongo.Database
) -> None:
    # Two rounds already ran: the default round is the campaign's next one, read from MongoDB.
    store = CampaignStore(db)
    assert await store.create_with_spec(CampaignSpec(campaign_id="run", target=[1.0]))
    state = await store.state("run")
    assert state is not None
    assert await store.advance("run", 0, state.model_copy(update={"next_round": 2}))
    default, explicit = run_all(
        stack_env,
        ["round", "start", "--campaign", "run"],
        ["round", "start", "--campaign", "run", "--round", "3"],
    )
    assert default.returncode == 0, default.stderr
    assert explicit.returncode == 0, explicit.stderr
    assert "not the next one (2)" in explicit.stderr
    bootstrap = stack_env["CROWDSFT_KAFKA_BOOTSTRAP"]
    events = await read_topic(bootstrap, ROUND_START)
    assert await record_keys(bootstrap, ROUND_START, 2) == [b"run", b"run"]
    by_round = {event["round_index"]: event for event in events}
    assert sorted(by_round) == [2, 3] and len(events) == 2
    for index, result in ((2, default), (3, explicit)):
        event = by_round[index]
        assert event["event_id"] == derive_event_id("round.start", "run", index)
        assert result.stdout.strip() == event["event_id"]
        assert event["event_type"] == "round.start"
        assert (event["campaign_id"], event["producer"]) == ("run", "cli")


@pytest.mark.parametrize("campaign_id", ["fb", "nope"])
def test_round_start_refuses_campaigns_without_rounds(
    stack_env: dict[str, str], created: list[subprocess.CompletedProcess[str]], campaign_id: str
) -> None:
    code, err = in_process(stack_env, ["round", "start", "--campaign", campaign_id])
    assert code == 1 and "runs no rounds" in err
