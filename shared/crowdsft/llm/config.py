"""What an LLM campaign fixes: base model, `phi`, prompts, LoRA and sampling settings.

Pure pydantic, no torch: a campaign is validated (and refused) where the heavy libraries are
not installed, and the same models travel as plain dicts inside training requests.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BaseModelName = Literal["smollm2-135m-instruct", "tiny"]
PhiName = Literal["emotion", "minilm"]
# The weights samples are drawn with. `auto`: float16 on a CPU and bfloat16 on a GPU.
# `float16` (CPU only) keeps float16 copies of the weights and sums in float32: about a
# quarter faster than float32 per decode step here, and its next-token distributions differ
# from float32's by 2.2e-6 nats per token (KL; bfloat16 weights: 8.3e-5), with a fixed model's
# mean distance unchanged (bench/results/lora.json), so it is the CPU default. `int8` (CPU only:
# per-channel weights, 7-bit dynamic activations) is faster still but far off (1.0 nats per
# token; +2.8 to +6.5 standard errors in a fixed model's mean distance), so it stays opt-in.
# Training always runs in float32 (bfloat16 autocast on a GPU).
Precision = Literal["auto", "float32", "float16", "int8", "bfloat16"]
CPU_ONLY: frozenset[str] = frozenset({"float16", "int8"})


def resolved(precision: Precision, device: str) -> Precision:
    """The precision `auto` stands for on a device ("cpu", "cuda", "cuda:0", ...)."""
    if precision == "auto":
        return "float16" if device == "cpu" else "bfloat16"
    if precision in CPU_ONLY and device != "cpu":
        raise ValueError(f"{precision} sampling runs on a CPU; use bfloat16 on a GPU")
    return precision


# How a lora campaign values its contributors (docs/valuation.md). `geometric`: the centroid
# game in phi space. `in_run`: each text's first-order effect on the reference answers' loss,
# measured while its candidate trains (the gradient dot product of first-order in-run data
# Shapley), scaled so the values add up to the change training made. `in_run_adam`: the same
# along Adam's preconditioned step (farther from the real game on the bench). `auto`: `in_run`
# when the campaign has reference answers, else `geometric`.
Valuation = Literal["auto", "geometric", "in_run", "in_run_adam"]
MEASURED_VALUATIONS: frozenset[str] = frozenset({"in_run", "in_run_adam"})

# Dimension of each `phi`: 27 GoEmotions emotions + neutral, and MiniLM's sentence vector.
PHI_DIMS: dict[str, int] = {"emotion": 28, "minilm": 384}

PAPER_PROMPT = "write a reddit comment."
SEED_MAX = 2**63 - 1  # MongoDB's largest integer: a seed is stored with the campaign
HELDOUT_PROMPTS = (
    "write a short reddit comment.",
    "reply to a reddit thread with a comment.",
)


class SftHyperparameters(BaseModel):
    """LoRA fine-tuning; loss on the response tokens only, each example weighted."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    lora_r: int = Field(16, ge=1, le=256)
    lora_alpha: int = Field(32, ge=1, le=4_096)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    epochs: int = Field(3, ge=1, le=100)
    learning_rate: float = Field(5e-4, gt=0, le=1)
    batch_size: int = Field(8, ge=1, le=4_096)
    max_length: int = Field(
        128, ge=8, le=32_768, description="Tokens per example, prompt included."
    )
    seed: int = Field(0, ge=0, le=SEED_MAX)


class SamplingConfig(BaseModel):
    """How a model's outputs are drawn for evaluation (K samples per prompt)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    samples: int = Field(50, ge=1, le=10_000)
    max_new_tokens: int = Field(48, ge=1, le=1_024)
    temperature: float = Field(1.0, gt=0, le=100)
    # transformers' `generate` applied top-k 50 before top-p unless told otherwise; every
    # earlier measurement used it, so it is the default here, said out loud (0: off).
    top_k: int = Field(50, ge=0, le=1_000_000)
    top_p: float = Field(0.95, gt=0, le=1)
    batch_size: int = Field(50, ge=1, le=10_000)
    seed: int = Field(0, ge=0, le=SEED_MAX)
    precision: Precision = "auto"


class LlmSpec(BaseModel):
    """A `lora` campaign's model side. Selection scores on `eval_prompts`; the judge re-scores
    the winner on `heldout_prompts`, which no candidate was picked on."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    base_model: BaseModelName = "smollm2-135m-instruct"
    phi: PhiName = "emotion"
    eval_prompts: list[str] = Field(default_factory=lambda: [PAPER_PROMPT], min_length=1)
    heldout_prompts: list[str] = Field(default_factory=lambda: list(HELDOUT_PROMPTS), min_length=1)
    sft: SftHyperparameters = SftHyperparameters()
    sampling: SamplingConfig = SamplingConfig()
    heldout_sampling: SamplingConfig = SamplingConfig(seed=1)
