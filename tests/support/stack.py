"""Test helpers for the real local stack: start it, and run services as real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from infra import localstack as infra_localstack

REPO = Path(__file__).resolve().parents[2]


def localstack() -> ModuleType:
    return infra_localstack


@contextmanager
def private_stack(run_dir: Path, name: str, storage: str | None = None) -> Iterator[dict[str, str]]:
    """A broker and a store of one's own, with a fresh database name: tests that kill them, or
    share nothing with another module, start one each. `CROWDSFT_ENV_FILE` is emptied so that
    services started with this env never read a developer's `.run/env`."""
    stack = localstack()
    env = stack.up(run_dir, storage=storage)
    try:
        database = f"{name}_{uuid.uuid4().hex[:8]}"
        yield {**env, "CROWDSFT_MONGO_DB": database, "CROWDSFT_ENV_FILE": ""}
    finally:
        stack.down(run_dir, quiet=True)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


async def eventually(
    condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str, poll_s: float = 0.1
) -> None:
    """`wait_until` for a condition that reads the store or the broker."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class ServiceProcess:
    """A service started the way operators start it: `python -m services.<name>`."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path) -> None:
        self.module = module
        # Unbuffered, so the log shows what the service has done up to now.
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit, as in a crash."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def wait_http(url: str, service: ServiceProcess, timeout_s: float = 120) -> None:
    """Until `url` answers 200, failing at once (with its log) if the service died."""
    import httpx

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with httpx.AsyncClient(timeout=2) as http:
        while loop.time() < deadline:
            assert service.alive, service.log()[-3000:]
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {timeout_s:.0f} s")


def run_cli(
    env: dict[str, str], *args: str, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """`crowdsft ARGS` as a user runs it, in its own process with exactly `env`; it must succeed."""
    command = [sys.executable, "-c", "from crowdsft.cli import main; main()", *args]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout_s, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done
