"""Concurrent chat requests share decode steps: requests for the same model and sampling
settings that arrive within a few milliseconds of each other are decoded as one batch (a step
at batch 32 costs little more than at batch 1 on these CPUs), each streaming its own text.

A seeded request shares a batch only with requests of the same seed (one generator draws a
batch's tokens), so a seed sent alone gives the same answer every time.

One generation runs at a time, in a worker thread (torch releases the GIL; its own threads
use the cores), so the event loop keeps answering while a batch decodes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from crowdsft.llm_runtime.decoding import generate, uniforms

log = structlog.get_logger()
FinishReason = Literal["stop", "length"]
GREEDY_TEMPERATURE = 1e-4  # temperature 0 asks for the most likely token: this is that draw


@dataclass(frozen=True)
class Piece:
    """New text of an answer, or its end (with the reason and the tokens it took)."""

    text: str = ""
    finish_reason: FinishReason | None = None
    completion_tokens: int = 0


@dataclass(frozen=True)
class Loaded:
    model_id: str
    model: Any
    tokenizer: Any


@dataclass
class ChatJob:
    loaded: Loaded
    chat: str
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    seed: int | None
    pieces: asyncio.Queue[Piece] = field(default_factory=asyncio.Queue)
    tokens: list[int] = field(default_factory=list)
    sent: str = ""
    finished: bool = False

    def batch_key(self) -> tuple[str, float, float, int | None]:
        return (self.loaded.model_id, self.temperature, self.top_p, self.seed)


class ChatBatcher:
    def __init__(self, batch_wait_ms: int, max_batch: int = 64) -> None:
        self._wait_s = batch_wait_ms / 1000
        self._max_batch = max_batch
        self._queue: asyncio.Queue[ChatJob] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chat-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def answer(self, job: ChatJob) -> AsyncIterator[Piece]:
        """The job's pieces as they are decoded, the last one with its finish reason."""
        await self._queue.put(job)
        while True:
            piece = await job.pieces.get()
            yield piece
            if piece.finish_reason is not None:
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            deadline = loop.time() + self._wait_s
            while len(jobs) < self._max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    jobs.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            batches: dict[tuple[str, float, float, int | None], list[ChatJob]] = {}
            for job in jobs:
                batches.setdefault(job.batch_key(), []).append(job)
            for batch in batches.values():
                try:
                    await asyncio.to_thread(decode, batch, loop)
                except Exception as exc:  # a failed batch ends its requests, never the loop
                    log.exception("chat batch failed", error=str(exc)[:200])
                    for job in batch:
                        if not job.finished:
                            job.pieces.put_nowait(Piece(finish_reason="stop"))


def decode(batch: list[ChatJob], loop: asyncio.AbstractEventLoop) -> None:
    """One generation for the batch; each answer's text is sent as it grows."""
    import torch

    first = batch[0]
    model, tokenizer = first.loaded.model, first.loaded.tokenizer
    device = next(model.parameters()).device
    seed = first.seed if first.seed is not None else time.time_ns()
    generator = torch.Generator(device=device).manual_seed(seed)
    ended: set[int] = set()

    def send(job: ChatJob, piece: Piece) -> None:
        loop.call_soon_threadsafe(job.pieces.put_nowait, piece)

    def finish(index: int, reason: FinishReason) -> None:
        job = batch[index]
        ended.add(index)
        job.finished = True
        send(job, Piece(finish_reason=reason, completion_tokens=len(job.tokens)))

    def on_step(rows: list[int], tokens: list[int], done: list[bool]) -> set[int]:
        stop_now: set[int] = set()
        for row, token, over in zip(rows, tokens, done, strict=True):
            if row in ended:
                continue
            job = batch[row]
            if over:  # a stop token: the answer is complete
                finish(row, "stop")
                continue
            job.tokens.append(token)
            text = tokenizer.decode(job.tokens, skip_special_tokens=True)
            cut = min((i for i in (text.find(s) for s in job.stop) if i >= 0), default=-1)
            if cut >= 0:
                text = text[:cut]
            if text.startswith(job.sent) and len(text) > len(job.sent):
                send(job, Piece(text=text[len(job.sent) :]))
                job.sent = text
            if cut >= 0:
                finish(row, "stop")
                stop_now.add(row)
            elif len(job.tokens) >= job.max_tokens:
                finish(row, "length")
                stop_now.add(row)
        return stop_now

    longest = max(job.max_tokens for job in batch)
    generate(
        model,
        tokenizer,
        [job.chat for job in batch],
        [1] * len(batch),
        longest,
        max(first.temperature, GREEDY_TEMPERATURE),
        0,
        first.top_p,
        uniforms(generator, len(batch), longest),
        sorted(set(tokenizer.all_special_ids)),
        on_step,
    )
    for index in range(len(batch)):
        if index not in ended:
            finish(index, "length")
