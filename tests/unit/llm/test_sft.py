"""LoRA SFT: response-only labels, per-example weights, and a loop that learns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("peft")

import torch

from crowdsft.llm.config import SftHyperparameters
from crowdsft.llm_runtime.models import load_model
from crowdsft.llm_runtime.sft import (
    IGNORE,
    Example,
    _pad,
    _weighted_loss,
    chat_prompt,
    encode,
    train_lora,
)

EXAMPLES = [
    Example("write a reddit comment.", "so happy for you!"),
    Example("write a reddit comment.", "congrats, well deserved."),
    Example("write a reddit comment.", "this made my day, thank you."),
    Example("write a reddit comment.", "love this so much!"),
]
FAST = SftHyperparameters(
    lora_r=8, lora_alpha=16, lora_dropout=0.0, epochs=4, learning_rate=2e-2, batch_size=4
)


def test_encode_masks_the_prompt_and_keeps_response_and_eos(tokenizer: Any) -> None:
    example = Example("write a reddit comment.", "so happy for you!")
    ids, labels = encode(tokenizer, example, max_length=128)
    head = tokenizer(chat_prompt(tokenizer, example.prompt), add_special_tokens=False)
    n_head = len(head["input_ids"])
    assert 0 < n_head < len(ids) == len(labels)
    assert ids[:n_head] == head["input_ids"]
    assert labels[:n_head] == [IGNORE] * n_head
    assert labels[n_head:] == ids[n_head:]
    assert labels[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(labels[n_head:-1]) == example.response
    assert example.prompt in tokenizer.decode(ids[:n_head])
    assert IGNORE not in labels[n_head:]


def test_encode_truncates_ids_and_labels_together(tokenizer: Any) -> None:
    example = Example("write a reddit comment.", "word " * 50)
    full_ids, full_labels = encode(tokenizer, example, max_length=10_000)
    ids, labels = encode(tokenizer, example, max_length=len(full_ids) - 7)
    assert len(ids) == len(labels) == len(full_ids) - 7
    assert ids == full_ids[: len(ids)]
    assert labels == full_labels[: len(labels)]


def test_pad_right_pads_with_ignored_labels() -> None:
    ids, labels, mask = _pad([([5, 6, 7], [IGNORE, 6, 7]), ([8], [8])], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert labels.tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Reference: mean next-token cross entropy over each row's labelled positions."""
    losses = []
    for row in range(labels.size(0)):
        terms = [
            -torch.log_softmax(logits[row, t - 1], -1)[labels[row, t]]
            for t in range(1, labels.size(1))
            if labels[row, t] != IGNORE
        ]
        losses.append(float(torch.stack(terms).mean()))
    return losses


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=gen)
    labels = torch.randint(0, 11, (3, 6), generator=gen)
    labels[:, :2] = IGNORE  # prompt
    labels[1, 4:] = IGNORE  # a shorter example (padding)
    return logits, labels


def test_weighted_loss_is_the_weighted_mean_of_per_example_means(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    logits, labels = batch
    ref = per_example_loss(logits, labels)
    equal = _weighted_loss(logits, labels, torch.ones(3))
    assert float(equal) == pytest.approx(sum(ref) / 3, rel=1e-5)
    weighted = _weighted_loss(logits, labels, torch.tensor([1.0, 2.0, 5.0]))
    assert float(weighted) == pytest.approx((ref[0] + 2 * ref[1] + 5 * ref[2]) / 8, rel=1e-5)
    # only the ratio of weights matters
    scaled = _weighted_loss(logits, labels, torch.tensor([10.0, 20.0, 50.0]))
    assert float(scaled) == pytest.approx(float(weighted), rel=1e-6)


def test_zero_weight_example_does_not_affect_the_loss(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    logits, labels = batch
    weights = torch.tensor([1.0, 0.0, 3.0])
    before = _weighted_loss(logits, labels, weights)
    changed = logits.clone()
    changed[1] = torch.randn(changed[1].shape) * 100
    after = _weighted_loss(changed, labels, weights)
    assert float(after) == pytest.approx(float(before), rel=1e-6)
    ref = per_example_loss(logits, labels)
    assert float(before) == pytest.approx((ref[0] + 3 * ref[2]) / 4, rel=1e-5)
    # and its gradient is zero
    leaf = changed.clone().requires_grad_(True)
    _weighted_loss(leaf, labels, weights).backward()
    assert leaf.grad is not None
    assert torch.count_nonzero(leaf.grad[1]) == 0
    assert torch.count_nonzero(leaf.grad[0]) > 0


def test_masked_positions_do_not_affect_the_loss(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    logits, labels = batch
    before = _weighted_loss(logits, labels, torch.ones(3))
    changed = logits.clone()
    changed[:, 0] += 50 * torch.randn(changed[:, 0].shape)  # predicts position 1: masked
    changed[1, 4:] += 50 * torch.randn(changed[1, 4:].shape)  # predicts padding of row 1
    changed[:, -1] += 50 * torch.randn(changed[:, -1].shape)  # predicts past the end
    assert float(_weighted_loss(changed, labels, torch.ones(3))) == pytest.approx(
        float(before), rel=1e-6
    )


def test_loss_is_next_token_prediction(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Logits at t that put all mass on the label at t+1 give a loss of (almost) zero."""
    _, labels = batch
    perfect = torch.zeros(3, 6, 11)
    for row in range(3):
        for t in range(1, 6):
            if labels[row, t] != IGNORE:
                perfect[row, t - 1, labels[row, t]] = 100.0
    assert float(_weighted_loss(perfect, labels, torch.ones(3))) < 1e-6


def mean_loss(model: Any, tokenizer: Any, examples: list[Example]) -> float:
    rows = [encode(tokenizer, e, 128) for e in examples]
    ids, labels, mask = _pad(rows, tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    return float(_weighted_loss(logits, labels, torch.ones(len(examples))))


def test_train_lora_lowers_the_loss(tiny_checkpoint: Path, tokenizer: Any) -> None:
    model = load_model(tiny_checkpoint)
    base_q = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    before = mean_loss(model, tokenizer, EXAMPLES)

    tuned, report = train_lora(model, tokenizer, EXAMPLES, FAST)

    after = mean_loss(tuned, tokenizer, EXAMPLES)
    # A random 2-layer model of width 64 starts near ln(vocab) ~ 10.8 and its tied, frozen
    # output embeddings cap how far an attention adapter can go: a few tenths in 4 steps.
    assert after < before - 0.15
    assert report.last_loss < report.first_loss - 0.15
    assert report.first_loss == pytest.approx(before, rel=1e-4)  # no dropout: same loss
    assert report.steps == FAST.epochs  # one batch of 4 per epoch
    assert report.examples == len(EXAMPLES) * FAST.epochs
    assert report.seconds > 0
    assert report.examples_per_s == pytest.approx(report.examples / report.seconds)
    # only the adapter trained: the base weights are untouched
    trainable = {n for n, p in tuned.named_parameters() if p.requires_grad}
    assert trainable
    assert all("lora_" in n for n in trainable)
    q = tuned.base_model.model.model.layers[0].self_attn.q_proj
    torch.testing.assert_close(q.base_layer.weight, base_q)
    assert not tuned.training


def test_train_lora_ignores_zero_weight_examples(tiny_checkpoint: Path, tokenizer: Any) -> None:
    """Whatever a weight-0 example says, the adapter trained beside it is the same."""
    hp = FAST.model_copy(update={"epochs": 2})
    keep = Example("write a reddit comment.", "so happy for you!", weight=1.0)
    runs = []
    for other in ("awful, just awful.", "the tax deadline is in april, file early."):
        model = load_model(tiny_checkpoint)
        tuned, _ = train_lora(model, tokenizer, [keep, Example("x", other, weight=0.0)], hp)
        runs.append({n: p.detach().clone() for n, p in tuned.named_parameters() if "lora_" in n})
    control_model = load_model(tiny_checkpoint)
    tuned, _ = train_lora(
        control_model, tokenizer, [keep, Example("x", "awful, just awful.", weight=1.0)], hp
    )
    control = {n: p.detach() for n, p in tuned.named_parameters() if "lora_" in n}
    assert runs[0].keys() == runs[1].keys() == control.keys()
    for name in runs[0]:
        torch.testing.assert_close(runs[0][name], runs[1][name], atol=1e-5, rtol=1e-4)
    assert any(not torch.allclose(runs[0][n], control[n], atol=1e-4) for n in control)


def test_train_lora_refuses_no_examples(tiny_checkpoint: Path, tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="no examples"):
        train_lora(load_model(tiny_checkpoint), tokenizer, [], FAST)


def test_logits_from_the_response_on_give_the_same_loss(
    tiny_checkpoint: Path, tokenizer: Any
) -> None:
    """Training computes the head only from the last prompt position on: the same loss."""
    model = load_model(tiny_checkpoint)
    rows = [
        encode(tokenizer, Example("write a reddit comment.", "so happy for you!"), 64),
        encode(tokenizer, Example("write a longer reddit comment.", "meh."), 64),
    ]
    ids, labels, mask = _pad(rows, tokenizer.pad_token_id)
    weights = torch.tensor([1.0, 2.0])
    first = int((labels != -100).int().argmax(1).min()) - 1
    with torch.no_grad():
        full = _weighted_loss(model(input_ids=ids, attention_mask=mask).logits, labels, weights)
        kept = model(input_ids=ids, attention_mask=mask,
                     logits_to_keep=torch.arange(first, ids.shape[1])).logits  # fmt: skip
        part = _weighted_loss(kept, labels[:, first:], weights)
    torch.testing.assert_close(part, full, atol=1e-5, rtol=1e-5)


def test_a_shared_prompt_read_once_gives_the_same_loss_and_gradients(
    tiny_checkpoint: Path, tokenizer: Any
) -> None:
    """The tokens every example starts with are read once and their keys and values shared:
    the same loss, and the same gradients flow back through them, as reading each example
    whole. Examples with different prompts share only the chat template's system turn."""
    from peft import LoraConfig, get_peft_model

    from crowdsft.llm_runtime.sft import _common_prefix, _response_logits

    torch.manual_seed(0)
    model = get_peft_model(
        load_model(tiny_checkpoint),
        LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]),
    )
    # LoRA starts as the identity (B = 0): move B so the adapter changes the shared positions.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.1)
    examples = [*EXAMPLES[:3], Example("write a longer reddit comment.", "meh.")]
    ids, labels, mask = _pad([encode(tokenizer, e, 64) for e in examples], tokenizer.pad_token_id)
    weights = torch.tensor([1.0, 2.0, 1.0, 0.5])
    shared = _common_prefix(ids)
    assert 0 < shared < int((labels[0] != IGNORE).int().argmax())
    first = int((labels != IGNORE).int().argmax(1).min()) - 1
    losses, grads = [], []
    for whole in (True, False):
        model.zero_grad()
        if whole:
            logits = model(input_ids=ids, attention_mask=mask).logits[:, first:]
        else:
            logits, at = _response_logits(model, ids, labels, mask)
            assert at == first and logits.shape[1] == ids.shape[1] - first
        loss = _weighted_loss(logits, labels[:, first:], weights)
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=1e-5)
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4)
