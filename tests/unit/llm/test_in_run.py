"""In-run valuation: each example's first-order effect on the reference loss, while training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("peft")

import torch

from crowdsft.llm.config import SftHyperparameters
from crowdsft.llm_runtime.models import load_model
from crowdsft.llm_runtime.sft import Example, reference_loss, train_lora

PROMPT = "write a reddit comment."
ON_TARGET = ["so happy for you!", "congrats, well deserved.", "this made my day, thank you."]
OFF_TARGET = ["the tax deadline is in april, file early.", "error 404 page not found", "1 2 3 4 5"]
ANSWERS = ["so happy for you, congrats!", "love this, made my day!", "thank you, well deserved."]
REFERENCES = [Example(PROMPT, t) for t in ANSWERS]
EXAMPLES = [Example(PROMPT, t) for t in ON_TARGET + OFF_TARGET]
# A small step, as a campaign's: the first-order picture holds (at 2e-2 it overshoots 4x).
HP = SftHyperparameters(
    lora_r=8, lora_alpha=16, lora_dropout=0.05, epochs=3, learning_rate=5e-4, batch_size=3
)


def adapter(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_values_add_up_to_what_training_did_to_the_reference_loss(
    tiny_checkpoint: Path, tokenizer: Any
) -> None:
    base = reference_loss(load_model(tiny_checkpoint), tokenizer, REFERENCES, HP.max_length)
    tuned, report = train_lora(load_model(tiny_checkpoint), tokenizer, EXAMPLES, HP, REFERENCES)
    values = report.valuation
    assert values is not None and len(values.per_example) == len(EXAMPLES)
    assert values.loss_before == pytest.approx(base, rel=1e-6)
    assert values.loss_after == pytest.approx(
        reference_loss(tuned, tokenizer, REFERENCES, HP.max_length), rel=1e-6
    )
    assert values.actual > 0
    assert values.seconds > 0
    assert len(values.per_step) == report.steps
    # Along Adam's step the terms add up to the change (to first order); the plain gradient's
    # are on another scale (Adam's steps are far longer than lr times the gradient).
    _, adam = train_lora(load_model(tiny_checkpoint), tokenizer, EXAMPLES, HP, REFERENCES, True)
    assert adam.valuation is not None
    assert adam.valuation.actual == pytest.approx(values.actual, rel=1e-6)
    assert adam.valuation.predicted == pytest.approx(values.actual, rel=0.25)
    assert 0 < values.predicted < values.actual / 5


def test_on_target_examples_are_worth_more_than_off_target_ones(
    tiny_checkpoint: Path, tokenizer: Any
) -> None:
    _, report = train_lora(load_model(tiny_checkpoint), tokenizer, EXAMPLES, HP, REFERENCES)
    assert report.valuation is not None
    on, off = report.valuation.per_example[:3], report.valuation.per_example[3:]
    assert min(on) > max(off)
    assert sum(on) > 0


def test_valuing_does_not_change_the_training(tiny_checkpoint: Path, tokenizer: Any) -> None:
    torch.manual_seed(1)
    plain, plain_report = train_lora(load_model(tiny_checkpoint), tokenizer, EXAMPLES, HP)
    valued, valued_report = train_lora(
        load_model(tiny_checkpoint), tokenizer, EXAMPLES, HP, REFERENCES
    )
    assert plain_report.valuation is None
    assert valued_report.first_loss == plain_report.first_loss
    assert valued_report.last_loss == plain_report.last_loss
    expected, got = adapter(plain), adapter(valued)
    assert expected.keys() == got.keys()
    for name, weights in expected.items():
        torch.testing.assert_close(got[name], weights, rtol=0, atol=0)
