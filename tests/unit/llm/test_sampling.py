"""Seeded, batched sampling of a model's answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("peft")

from crowdsft.llm.config import SamplingConfig
from crowdsft.llm_runtime.models import load_model
from crowdsft.llm_runtime.sampling import sample

PROMPTS = ["write a reddit comment.", "reply to a reddit thread with a comment."]


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> Any:
    return load_model(tiny_checkpoint)


def test_sample_returns_samples_per_prompt(model: Any, tokenizer: Any) -> None:
    cfg = SamplingConfig(samples=3, max_new_tokens=6, batch_size=4, seed=0)
    out = sample(model, tokenizer, PROMPTS, cfg)
    assert len(out.texts) == cfg.samples * len(PROMPTS)
    assert out.prompts == [PROMPTS[0]] * 3 + [PROMPTS[1]] * 3
    assert all(isinstance(t, str) and t == t.strip() for t in out.texts)
    assert 0 < out.new_tokens <= len(out.texts) * cfg.max_new_tokens
    assert out.seconds > 0
    assert out.tokens_per_s == pytest.approx(out.new_tokens / out.seconds)
    # A random model's answers are not all alike.
    assert len(set(out.texts)) > 1


def test_sample_is_reproducible_for_a_seed(model: Any, tokenizer: Any) -> None:
    cfg = SamplingConfig(samples=2, max_new_tokens=8, batch_size=8, seed=7)
    first = sample(model, tokenizer, PROMPTS, cfg)
    again = sample(model, tokenizer, PROMPTS, cfg)
    assert again.texts == first.texts
    assert again.new_tokens == first.new_tokens
    other = sample(model, tokenizer, PROMPTS, cfg.model_copy(update={"seed": 8}))
    assert other.texts != first.texts


def test_a_set_gives_the_same_answers_alone_or_decoded_beside_another(
    model: Any, tokenizer: Any
) -> None:
    from crowdsft.llm_runtime.sampling import sample_sets

    chosen = SamplingConfig(samples=3, max_new_tokens=8, batch_size=2, seed=4)
    judged = chosen.model_copy(update={"seed": 5, "samples": 2})
    alone = sample(model, tokenizer, PROMPTS[:1], chosen)
    pooled, beside = sample_sets(model, tokenizer, [(PROMPTS[:1], chosen), (PROMPTS, judged)])
    assert pooled.texts == alone.texts
    assert beside.prompts == [PROMPTS[0]] * 2 + [PROMPTS[1]] * 2
    assert beside.texts == sample(model, tokenizer, PROMPTS, judged).texts
    # Sets whose settings differ are decoded apart, each as asked.
    longer = judged.model_copy(update={"max_new_tokens": 3})
    _, short = sample_sets(model, tokenizer, [(PROMPTS[:1], chosen), (PROMPTS, longer)])
    assert len(short.texts) == 4 and 0 < short.new_tokens <= 3 * 4
