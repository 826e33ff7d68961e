"""LLM campaign configuration: pydantic settings and the lora checks in `CampaignSpec`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.lora_backend import LoraBackendSpec
from crowdsft.domain.vector_backend import VectorBackendSpec
from crowdsft.llm.config import (
    HELDOUT_PROMPTS,
    PAPER_PROMPT,
    PHI_DIMS,
    LlmSpec,
    SamplingConfig,
    SftHyperparameters,
)
from crowdsft.llm_runtime.experiment import LlmExperimentConfig


def lora_spec(**overrides: Any) -> CampaignSpec:
    fields: dict[str, Any] = {
        "campaign_id": "llm-camp",
        "target": [0.0] * PHI_DIMS["emotion"],
        "llm": {"phi": "emotion"},
    }
    fields.update(overrides)
    backend = {"kind": "lora", "llm": fields.pop("llm")}
    return CampaignSpec.model_validate(fields | {"backend": backend})


def test_llm_spec_defaults_select_on_paper_prompt_and_judge_on_heldout() -> None:
    spec = LlmSpec()
    assert spec.eval_prompts == [PAPER_PROMPT]
    assert spec.heldout_prompts == list(HELDOUT_PROMPTS)
    assert not set(spec.eval_prompts) & set(spec.heldout_prompts)
    # The judge's draws must not be the selection's draws.
    assert spec.heldout_sampling.seed != spec.sampling.seed


def test_llm_spec_travels_as_a_plain_dict() -> None:
    spec = LlmSpec(
        base_model="tiny",
        phi="minilm",
        eval_prompts=["a", "b"],
        sft=SftHyperparameters(lora_r=4, target_modules=("q_proj",), epochs=2),
        sampling=SamplingConfig(samples=3, max_new_tokens=5),
    )
    dumped = spec.model_dump(mode="json")
    assert isinstance(dumped["sft"]["target_modules"], list)
    again = LlmSpec.model_validate(dumped)
    assert again == spec
    assert again.sft.target_modules == ("q_proj",)


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (LlmSpec, {"base_model": "gpt-5"}),
        (LlmSpec, {"phi": "sentiment"}),
        (LlmSpec, {"eval_prompts": []}),
        (LlmSpec, {"heldout_prompts": []}),
        (LlmSpec, {"unknown": 1}),
        (SftHyperparameters, {"lora_r": 0}),
        (SftHyperparameters, {"lora_dropout": 1.0}),
        (SftHyperparameters, {"learning_rate": 0}),
        (SftHyperparameters, {"max_length": 4}),
        (SftHyperparameters, {"epochs": 0}),
        (SamplingConfig, {"samples": 0}),
        (SamplingConfig, {"temperature": 0}),
        (SamplingConfig, {"top_p": 1.5}),
        (SamplingConfig, {"max_new_tokens": 0}),
    ],
)
def test_out_of_range_settings_are_refused(model: type[Any], fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(fields)


def test_settings_are_frozen() -> None:
    sft = SftHyperparameters()
    with pytest.raises(ValidationError):
        sft.lora_r = 8


@pytest.mark.parametrize("phi", sorted(PHI_DIMS))
def test_lora_campaign_with_matching_target_dimension_is_accepted(phi: str) -> None:
    spec = lora_spec(target=[0.5] * PHI_DIMS[phi], llm={"phi": phi, "base_model": "tiny"})
    assert isinstance(spec.backend, LoraBackendSpec)
    assert spec.backend.llm.phi == phi
    assert spec.backend.llm.base_model == "tiny"


@pytest.mark.parametrize(
    ("phi", "dim"),
    [("emotion", PHI_DIMS["minilm"]), ("minilm", PHI_DIMS["emotion"]), ("emotion", 3)],
)
def test_lora_target_must_live_in_phi_space(phi: str, dim: int) -> None:
    with pytest.raises(ValidationError, match=f"phi '{phi}' has {PHI_DIMS[phi]} dimensions"):
        lora_spec(target=[0.0] * dim, llm={"phi": phi})


def test_lora_campaign_needs_llm() -> None:
    with pytest.raises(ValidationError, match=r"backend\.llm"):
        lora_spec(llm=None)


def test_vector_campaign_refuses_llm() -> None:
    with pytest.raises(ValidationError, match=r"backend\.llm\n  Extra inputs are not permitted"):
        CampaignSpec(campaign_id="vec", target=[1.0, 2.0],
                     backend={"kind": "vector", "llm": LlmSpec().model_dump()})  # fmt: skip
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        CampaignSpec.model_validate({"campaign_id": "vec", "target": [1.0], "llm": {}})
    spec = CampaignSpec(campaign_id="vec", target=[1.0, 2.0])
    assert spec.backend.kind == "vector"
    assert isinstance(spec.backend, VectorBackendSpec)


def test_backend_by_name_and_unknown_backends() -> None:
    by_name = CampaignSpec.model_validate(
        {"campaign_id": "v", "target": [1.0], "backend": "vector"}
    )
    assert by_name == CampaignSpec(campaign_id="v", target=[1.0])
    with pytest.raises(ValidationError, match=r"unknown backend 'magic'; choose from \['lora'"):
        CampaignSpec.model_validate({"campaign_id": "v", "target": [1.0], "backend": "magic"})


def test_lora_campaign_round_trips_through_json() -> None:
    spec = lora_spec(llm={"phi": "minilm", "base_model": "tiny"}, target=[0.1] * 384)
    again = CampaignSpec.model_validate_json(spec.model_dump_json())
    assert again == spec


def test_an_experiment_seed_varies_the_fine_tuning_and_the_sampling() -> None:
    spec = LlmExperimentConfig(emotion="neutral", out_dir=Path("out"), seed=7).llm_spec()
    assert spec.sft.seed == 7 and spec.sampling.seed == 7
