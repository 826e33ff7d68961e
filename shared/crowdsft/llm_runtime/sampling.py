"""Batched sampling of a model's answers to prompts: what `phi` then places in its space."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crowdsft.llm.config import SamplingConfig
from crowdsft.llm_runtime.sft import chat_prompt


@dataclass(frozen=True)
class Samples:
    texts: list[str]
    prompts: list[str]
    new_tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def sample(model: Any, tokenizer: Any, prompts: Sequence[str], cfg: SamplingConfig) -> Samples:
    """`cfg.samples` answers per prompt, seeded, generated in left-padded batches."""
    import torch

    device = next(model.parameters()).device
    asked = [p for p in prompts for _ in range(cfg.samples)]
    # An answer is one turn: it ends at the first special token, not only at eos. A tuned
    # model sometimes opens a new turn (`<|im_start|>assistant ...`) instead of closing its
    # own, and that text is not its answer (found in the first GPU runs; see docs/llm.md).
    stop_ids = sorted(set(tokenizer.all_special_ids))
    tokenizer.padding_side = "left"
    torch.manual_seed(cfg.seed)
    texts: list[str] = []
    new_tokens = 0
    started = time.perf_counter()
    model.eval()
    for start in range(0, len(asked), cfg.batch_size):
        chats = [chat_prompt(tokenizer, p) for p in asked[start : start + cfg.batch_size]]
        batch = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.no_grad():
            out = model.generate(
                **batch,
                do_sample=True,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                max_new_tokens=cfg.max_new_tokens,
                eos_token_id=stop_ids,
                pad_token_id=tokenizer.pad_token_id,
            )
        generated = out[:, batch["input_ids"].shape[1] :]
        new_tokens += int((generated != tokenizer.pad_token_id).sum())
        texts.extend(tokenizer.batch_decode(generated, skip_special_tokens=True))
    seconds = time.perf_counter() - started
    return Samples([t.strip() for t in texts], asked, new_tokens, seconds)
