"""`make up` / `make down`: free ports, health, settings file, PIDs, safe to call twice."""

from __future__ import annotations

from pathlib import Path

from pymongo import MongoClient

from infra import localstack


def test_up_and_down_are_idempotent(tmp_path: Path) -> None:
    env = localstack.up(tmp_path)
    try:
        assert localstack.up(tmp_path) == env  # second call: already up, same settings
        assert localstack.read_env(tmp_path) == env
        assert env["CROWDSFT_KAFKA_BOOTSTRAP"].startswith("127.0.0.1:")
        client: MongoClient[dict[str, object]]
        with MongoClient(env["CROWDSFT_MONGO_URI"], serverSelectionTimeoutMS=5000) as client:
            hello = client.admin.command("hello")
            assert hello.get("setName")  # a replica set, so transactions work
        pids = [localstack.read_pid(tmp_path, name) for name in localstack.SERVICES]
        assert all(pid is not None and localstack.pid_alive(pid) for pid in pids)
    finally:
        localstack.down(tmp_path)
    assert not any(localstack.pid_alive(pid) for pid in pids if pid is not None)
    assert not (tmp_path / "env").exists()
    localstack.down(tmp_path)  # second call: nothing left to stop, no error
