"""Seeded samples of a model's answers to prompts: what `phi` then places in its space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crowdsft.llm.config import SamplingConfig
from crowdsft.llm_runtime.decoding import generate
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
    """`cfg.samples` answers per prompt, seeded, at most `cfg.batch_size` answers at a time.

    An answer is one turn: it ends at the first special token, not only at eos. A tuned model
    sometimes opens a new turn (`<|im_start|>assistant ...`) instead of closing its own, and
    that text is not its answer (found in the first GPU runs; see docs/llm.md).
    """
    import torch

    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    stop_ids = sorted(set(tokenizer.all_special_ids))
    asked = [p for p in prompts for _ in range(cfg.samples)]
    texts: list[str] = []
    new_tokens, seconds = 0, 0.0
    model.eval()
    for start in range(0, len(asked), cfg.batch_size):
        chunk = asked[start : start + cfg.batch_size]
        distinct = list(dict.fromkeys(chunk))
        done = generate(
            model,
            tokenizer,
            [chat_prompt(tokenizer, p) for p in distinct],
            [chunk.count(p) for p in distinct],
            cfg.max_new_tokens,
            cfg.temperature,
            cfg.top_k,
            cfg.top_p,
            generator,
            stop_ids,
        )
        new_tokens += done.new_tokens
        seconds += done.seconds
        texts += [tokenizer.decode(t, skip_special_tokens=True).strip() for t in done.tokens]
    return Samples(texts, asked, new_tokens, seconds)
