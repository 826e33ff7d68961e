"""int8 samplers: a candidate's, built from its base's by requantising only the adapted
projections, equals quantising the candidate whole, and the base is left untouched."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("peft")

import torch

from crowdsft.llm_runtime.models import load_model
from crowdsft.llm_runtime.quantise import adapted, quantise, requantise

TARGETS = ("q_proj", "v_proj")


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> Any:
    return load_model(tiny_checkpoint).eval()


def changed_copy(model: Any) -> Any:
    """The model with its adapted projections moved, as a merged LoRA moves them."""
    candidate = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name in adapted(candidate, TARGETS):
            weight = candidate.get_submodule(name).weight
            weight += 0.05 * torch.randn(weight.shape, generator=generator)
    return candidate


def test_requantised_candidate_equals_the_candidate_quantised_whole(model: Any) -> None:
    base = quantise(model)
    candidate = changed_copy(model)
    ids = torch.randint(0, 1000, (3, 9), generator=torch.Generator().manual_seed(1))
    shared = requantise(base, candidate, adapted(candidate, TARGETS))
    with torch.inference_mode():
        torch.testing.assert_close(shared(ids).logits, quantise(candidate)(ids).logits,
                                   rtol=0, atol=0)  # fmt: skip
        # The base's sampler is untouched: its own projections, its own answers.
        before = quantise(model)(ids).logits
        torch.testing.assert_close(base(ids).logits, before, rtol=0, atol=0)
    layer = base.model.layers[0]
    assert shared.model.layers[0].mlp is layer.mlp  # unchanged modules are shared
    assert shared.model.layers[0].self_attn.q_proj is not layer.self_attn.q_proj


def test_int8_logits_stay_close_to_float32(model: Any) -> None:
    ids = torch.randint(0, 1000, (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        exact, approx = model(ids).logits.flatten(), quantise(model)(ids).logits.flatten()
    assert torch.corrcoef(torch.stack([exact, approx]))[0, 1] > 0.999
    assert adapted(model, TARGETS) == [
        f"model.layers.{i}.self_attn.{t}" for i in range(2) for t in TARGETS
    ]
