"""The decode loop: the model's own logits over a preallocated cache, exact nucleus draws, and
answers that match transformers' greedy generation on padded batches of different prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("peft")

import torch

from crowdsft.llm_runtime import decoding
from crowdsft.llm_runtime.models import load_model
from crowdsft.llm_runtime.sft import chat_prompt

PROMPTS = ["write a reddit comment.", "reply to a reddit thread with a comment, please."]


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> Any:
    return load_model(tiny_checkpoint).eval()


def test_prefill_and_steps_give_the_models_own_logits(model: Any, tokenizer: Any) -> None:
    tokenizer.padding_side = "left"
    batch = tokenizer([chat_prompt(tokenizer, p) for p in PROMPTS], return_tensors="pt",
                      padding=True, add_special_tokens=False)  # fmt: skip
    ids, mask = batch["input_ids"], batch["attention_mask"]
    extra = torch.tensor([[11, 12, 13], [21, 22, 23]])
    full_ids = torch.cat([ids, extra], 1)
    full_mask = torch.cat([mask, torch.ones_like(extra)], 1)
    positions = (full_mask.cumsum(1) - 1).clamp(min=0)
    with torch.inference_mode():
        expected = model(full_ids, attention_mask=full_mask, position_ids=positions).logits
        width = ids.shape[1]
        cache = decoding.KVBuffer(model, 2, width + 3, "cpu", torch.float32)
        key_mask = torch.zeros(2, width + 3, dtype=torch.bool)
        key_mask[:, :width] = mask.bool()
        weights = decoding.weights_of(model)
        got = [decoding.forward(weights, ids, positions[:, :width], cache, 0, key_mask)]
        for step in range(3):
            key_mask[:, width + step] = True
            slot = slice(width + step, width + step + 1)
            got.append(decoding.forward(weights, full_ids[:, slot], positions[:, slot], cache,
                                        width + step, key_mask))  # fmt: skip
    for step, logits in enumerate(got):
        torch.testing.assert_close(logits, expected[:, width - 1 + step], atol=2e-5, rtol=1e-4)


def test_draws_stay_inside_the_nucleus_even_when_it_is_wide() -> None:
    generator = torch.Generator().manual_seed(0)
    vocab = 1000
    peaked = torch.full((1, vocab), -20.0)
    peaked[0, :3] = torch.tensor([5.0, 4.0, 1.0])  # top-p 0.9 keeps the first two
    flat = torch.zeros(1, vocab)  # the nucleus is 900 wide: beyond the top 256
    logits = torch.cat([peaked.repeat(200, 1), flat.repeat(200, 1)])
    drawn = decoding.draw(logits, 1.0, 0, 0.9, torch.rand(400, generator=generator))
    assert set(drawn[:200].tolist()) == {0, 1}
    assert len(set(drawn[200:].tolist())) > 150 and max(drawn[200:].tolist()) < vocab
    # Top-k first, as transformers' warpers: of a flat row only the first k can come out.
    capped = decoding.draw(flat.repeat(300, 1), 1.0, 50, 0.9, torch.rand(300, generator=generator))
    assert len(set(capped.tolist())) <= 50


def test_answers_equal_greedy_generation_with_finished_rows_leaving(
    model: Any, tokenizer: Any
) -> None:
    stops = sorted(set(tokenizer.all_special_ids))
    chats = [chat_prompt(tokenizer, p) for p in PROMPTS]
    generator = torch.Generator().manual_seed(0)
    # A near-zero temperature makes every draw the argmax: comparable with greedy decoding.
    draws = decoding.uniforms(generator, 5, 12)
    done = decoding.generate(model, tokenizer, chats, [3, 2], 12, 1e-4, 50, 0.95, draws, stops)
    assert len(done.tokens) == 5 and done.new_tokens == sum(len(t) for t in done.tokens)
    tokenizer.padding_side = "left"
    for row, chat in enumerate([chats[0]] * 3 + [chats[1]] * 2):
        ids = tokenizer(chat, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            greedy = model.generate(ids, do_sample=False, max_new_tokens=12, eos_token_id=stops,
                                    pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        answer = [t for t in greedy[0, ids.shape[1] :].tolist() if t not in stops]
        assert done.tokens[row] == answer


def test_an_answer_is_the_same_whatever_shares_its_batch(model: Any, tokenizer: Any) -> None:
    """Each answer draws from its own uniforms, so decoding all at once, or a few at a time
    with finished rows refilled from the waiting answers, gives the same answers."""
    stops = sorted(set(tokenizer.all_special_ids))
    chats = [chat_prompt(tokenizer, p) for p in PROMPTS]
    draws = decoding.uniforms(torch.Generator().manual_seed(3), 7, 10)
    runs = [
        decoding.generate(
            model, tokenizer, chats, [4, 3], 10, 1.0, 50, 0.95, draws, stops, width=width
        )
        for width in (None, 2, 3)
    ]
    assert runs[0].tokens == runs[1].tokens == runs[2].tokens
    assert len({tuple(t) for t in runs[0].tokens}) > 1  # sampled, not all alike
    # Two at a time takes more steps for the same answers.
    assert runs[1].steps > runs[0].steps


def test_refilled_rows_still_equal_greedy_generation(model: Any, tokenizer: Any) -> None:
    stops = sorted(set(tokenizer.all_special_ids))
    chats = [chat_prompt(tokenizer, p) for p in PROMPTS]
    draws = decoding.uniforms(torch.Generator().manual_seed(0), 3, 9)
    done = decoding.generate(model, tokenizer, chats, [1, 2], 9, 1e-4, 50, 0.95, draws, stops,
                             width=1)  # fmt: skip
    tokenizer.padding_side = "left"
    for row, chat in enumerate([chats[0], chats[1], chats[1]]):
        ids = tokenizer(chat, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            greedy = model.generate(ids, do_sample=False, max_new_tokens=9, eos_token_id=stops,
                                    pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        assert done.tokens[row] == [t for t in greedy[0, ids.shape[1] :].tolist() if t not in stops]


def test_float16_weights_give_nearly_the_same_logits(model: Any, tokenizer: Any) -> None:
    tokenizer.padding_side = "left"
    batch = tokenizer([chat_prompt(tokenizer, p) for p in PROMPTS], return_tensors="pt",
                      padding=True, add_special_tokens=False)  # fmt: skip
    ids, mask = batch["input_ids"], batch["attention_mask"]
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    logits = []
    with torch.inference_mode():
        for half in (False, True):
            cache = decoding.KVBuffer(model, 2, ids.shape[1], "cpu", torch.float32)
            weights = decoding.weights_of(model, half)
            logits.append(decoding.forward(weights, ids, positions, cache, 0, mask.bool()))
    assert not torch.equal(logits[0], logits[1])  # float16 weights really were used
    torch.testing.assert_close(logits[1], logits[0], atol=2e-3, rtol=2e-3)


def test_a_changed_model_gets_a_new_layout(model: Any) -> None:
    import copy

    twin = copy.deepcopy(model)
    first = decoding.weights_of(twin)
    assert decoding.weights_of(twin) is first
    with torch.no_grad():
        twin.lm_head.weight.mul_(2)
    assert decoding.weights_of(twin) is not first


def test_a_layout_derived_from_the_base_equals_a_fresh_one(model: Any, tokenizer: Any) -> None:
    """A merged LoRA changes a few projections: the derived layout rebuilds those and shares
    the rest with the base's, and decodes exactly as a layout built from scratch."""
    import copy

    candidate = copy.deepcopy(model)
    with torch.no_grad():
        candidate.model.layers[0].self_attn.q_proj.weight.add_(0.05)
        candidate.model.layers[1].mlp.down_proj.weight.mul_(1.5)
    for half in (False, True):
        decoding.weights_of(model, half)
    decoding.derive_weights(candidate, model)
    derived = decoding.weights_of(candidate)
    base = decoding.weights_of(model)
    assert derived.head is base.head and derived.layers[0].gate_up is base.layers[0].gate_up
    assert derived.layers[0].qkv is not base.layers[0].qkv
    assert derived.layers[1].down_proj is not base.layers[1].down_proj
    fresh = decoding.Weights(candidate)
    tokenizer.padding_side = "left"
    batch = tokenizer([chat_prompt(tokenizer, p) for p in PROMPTS], return_tensors="pt",
                      padding=True, add_special_tokens=False)  # fmt: skip
    ids, mask = batch["input_ids"], batch["attention_mask"]
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    logits = []
    with torch.inference_mode():
        for w in (derived, fresh, decoding.weights_of(candidate, True)):
            cache = decoding.KVBuffer(model, 2, ids.shape[1], "cpu", torch.float32)
            logits.append(decoding.forward(w, ids, positions, cache, 0, mask.bool()))
    assert torch.equal(logits[0], logits[1])
    torch.testing.assert_close(logits[2], logits[1], atol=2e-3, rtol=2e-3)
