"""Seeded samples of a model's answers to prompts: what `phi` then places in its space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crowdsft.llm.config import SamplingConfig, resolved
from crowdsft.llm_runtime.decoding import generate, uniforms
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
    """`cfg.samples` answers per prompt, seeded, at most `cfg.batch_size` answers at a time."""
    return sample_sets(model, tokenizer, [(prompts, cfg)])[0]


def _shared(cfg: SamplingConfig) -> tuple[object, ...]:
    """What answers must agree on to be decoded together (the seed and counts need not)."""
    return (cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.top_p, cfg.batch_size,
            cfg.precision)  # fmt: skip


def sample_sets(
    model: Any, tokenizer: Any, sets: Sequence[tuple[Sequence[str], SamplingConfig]]
) -> list[Samples]:
    """Several sets of samples (say the selection prompts and the held-out ones), decoded as
    one stream of answers where their settings agree, so neither set's tail runs half empty.
    Each set draws from its own seeded generator: a set's answers are the same whether it is
    decoded alone or beside another.

    An answer is one turn: it ends at the first special token, not only at eos. A tuned model
    sometimes opens a new turn (`<|im_start|>assistant ...`) instead of closing its own, and
    that text is not its answer (found in the first GPU runs; see docs/llm.md).
    """
    groups: dict[tuple[object, ...], list[int]] = {}
    for index, (_, cfg) in enumerate(sets):
        groups.setdefault(_shared(cfg), []).append(index)
    results: dict[int, Samples] = {}
    for members in groups.values():
        decoded = _decode_together(model, tokenizer, [sets[i] for i in members])
        results.update(zip(members, decoded, strict=True))
    return [results[i] for i in range(len(sets))]


def _decode_together(
    model: Any, tokenizer: Any, sets: Sequence[tuple[Sequence[str], SamplingConfig]]
) -> list[Samples]:
    import torch

    device = next(model.parameters()).device
    first = sets[0][1]
    # The sampler a worker hands over is already int8 or bfloat16 where those were asked
    # for; float16 weights are a layout the decoder makes itself.
    half = resolved(first.precision, device.type) == "float16"
    stop_ids = sorted(set(tokenizer.all_special_ids))
    chats = [chat_prompt(tokenizer, p) for prompts, _ in sets for p in prompts]
    counts = [cfg.samples for prompts, cfg in sets for _ in prompts]
    draws = torch.cat([
        uniforms(torch.Generator(device=device).manual_seed(cfg.seed),
                 len(prompts) * cfg.samples, cfg.max_new_tokens)
        for prompts, cfg in sets
    ])  # fmt: skip
    model.eval()
    done = generate(model, tokenizer, chats, counts, first.max_new_tokens, first.temperature,
                    first.top_k, first.top_p, draws, stop_ids,
                    width=first.batch_size, half_weights=half)  # fmt: skip
    texts = [tokenizer.decode(t, skip_special_tokens=True).strip() for t in done.tokens]
    out, start = [], 0
    for prompts, cfg in sets:
        stop = start + len(prompts) * cfg.samples
        share = sum(len(t) for t in done.tokens[start:stop])
        # Tokens are counted per set; the seconds are shared out by tokens.
        seconds = done.seconds * share / done.new_tokens if done.new_tokens else done.seconds
        asked = [p for p in prompts for _ in range(cfg.samples)]
        out.append(Samples(texts[start:stop], asked, share, seconds))
        start = stop
    return out
