"""Runs the LLM work (training, evaluation) as Ray tasks and awaits them from asyncio.

Connects to the cluster at `address`, or starts a local one. A task asks for a GPU only when
the cluster has one: on a CPU-only cluster a `num_gpus=1` task would wait forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

A = TypeVar("A")
R = TypeVar("R")


class RayRunner:
    def __init__(
        self,
        address: str | None = None,
        local_cpus: int | None = None,
        cpus_per_task: float = 1,
        gpus_per_task: float = 1,
    ) -> None:
        self._address = address
        self._local_cpus = local_cpus
        self._cpus_per_task = cpus_per_task
        # A 135M model uses a sliver of a GPU: a fraction lets several groups share one.
        self._gpus_per_task = gpus_per_task
        self._remotes: dict[Callable[..., Any], Any] = {}
        self._gpu: bool | None = None
        self._starting = asyncio.Lock()

    def start(self) -> None:
        import ray

        if ray.is_initialized():
            return
        if self._address:
            ray.init(address=self._address, logging_level="WARNING")
        else:
            ray.init(num_cpus=self._local_cpus, include_dashboard=False, logging_level="WARNING")

    @property
    def gpu(self) -> bool:
        import ray

        if self._gpu is None:
            self.start()
            self._gpu = ray.cluster_resources().get("GPU", 0) >= 1
        return self._gpu

    def task_options(self) -> dict[str, float]:
        if self.gpu:
            return {"num_gpus": self._gpus_per_task, "num_cpus": self._cpus_per_task}
        return {"num_cpus": self._cpus_per_task}

    async def run(self, fn: Callable[[A], R], arg: A) -> R:
        """Submit `fn(arg)` as a task; the event loop stays free while it runs."""
        import ray

        async with self._starting:
            if self._gpu is None:
                # Starting a local cluster takes seconds: off the loop, so consumers keep
                # heartbeating meanwhile.
                await asyncio.to_thread(lambda: self.gpu)
        if fn not in self._remotes:
            self._remotes[fn] = ray.remote(fn)
        ref = self._remotes[fn].options(**self.task_options()).remote(arg)
        result: R = await asyncio.wrap_future(ref.future())
        return result

    def stop(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
