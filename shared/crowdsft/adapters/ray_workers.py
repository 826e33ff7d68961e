"""Resident workers on Ray: long-lived actors that keep their models loaded between requests.

Connects to the cluster at `address`, or starts a local one. Each worker asks for
`cpus_per_worker` CPUs and, when the cluster has GPUs, `gpus_per_worker` of one (a 135M model
uses a sliver of a GPU: a fraction lets several share one). A worker that dies is restarted by
Ray and the call that was running on it is sent again (jobs are idempotent); a call waits
for a free worker, so each worker runs one job at a time, and waiting calls are served by
priority (lower first), then in order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Any

import structlog

RETRIES = 3

log = structlog.get_logger("ray-workers")


class RayWorkers:
    def __init__(
        self,
        actor_class: type[Any],
        init_args: tuple[Any, ...],
        *,
        address: str | None = None,
        local_cpus: int | None = None,
        workers: int | None = None,
        cpus_per_worker: float = 1,
        gpus_per_worker: float = 1,
    ) -> None:
        self._actor_class = actor_class
        self._init_args = init_args
        self._address = address
        self._local_cpus = local_cpus
        self._workers = workers
        self._cpus = cpus_per_worker
        self._gpus = gpus_per_worker
        self._free: list[Any] | None = None
        self._waiting: list[tuple[int, int, asyncio.Future[Any]]] = []
        self._order = itertools.count()
        self._starting = asyncio.Lock()
        self.gpu = False

    def _start(self) -> list[Any]:
        import ray

        if not ray.is_initialized():
            if self._address:
                ray.init(address=self._address, logging_level="WARNING")
            else:
                ray.init(
                    num_cpus=self._local_cpus, include_dashboard=False, logging_level="WARNING"
                )
        resources = ray.cluster_resources()
        self.gpu = resources.get("GPU", 0) >= 1
        count = self._workers or max(1, int(resources.get("CPU", 1) // self._cpus))
        options: dict[str, Any] = {"num_cpus": self._cpus, "max_restarts": -1}
        if self.gpu:
            options["num_gpus"] = self._gpus
        remote = ray.remote(self._actor_class).options(**options)
        actors = [remote.remote(*self._init_args) for _ in range(count)]
        ray.get([actor.ready.remote() for actor in actors])
        log.info("workers up", workers=count, gpu=self.gpu)
        return actors

    async def start(self) -> None:
        """Start the cluster and the workers now (else on the first call); once only."""
        async with self._starting:
            if self._free is None:
                # Starting a cluster and loading workers takes seconds: off the event loop,
                # so the service's consumers keep heartbeating meanwhile.
                self._free = await asyncio.to_thread(self._start)

    async def _acquire(self, priority: int) -> Any:
        await self.start()
        assert self._free is not None
        if self._free and not self._waiting:
            return self._free.pop()
        turn: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), turn))
        try:
            return await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release(turn.result())  # handed a worker just as the caller gave up
            raise

    def _release(self, actor: Any) -> None:
        assert self._free is not None
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(actor)
                return
        self._free.append(actor)

    async def call(self, method: str, job: Any, priority: int = 0) -> Any:
        """`method(job)` on the next free worker; sent again if the worker died meanwhile."""
        from ray.exceptions import RayActorError

        actor = await self._acquire(priority)
        try:
            for attempt in range(1, RETRIES + 1):
                try:
                    ref = getattr(actor, method).remote(job)
                    return await asyncio.wrap_future(ref.future())
                except RayActorError as exc:
                    if attempt == RETRIES:
                        raise
                    log.warning(
                        "worker died; sending the job again",
                        method=method,
                        attempt=attempt,
                        error=str(exc)[:200],
                    )
        finally:
            self._release(actor)
        raise AssertionError("unreachable")

    def stop(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
