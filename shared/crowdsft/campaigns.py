"""What a campaign fixes: its target, the tournament's settings, the backend and the policy.

Pure: validated against the engine's registries, so a campaign that could not run is refused
when it is created, not in the middle of a round.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from crowdsft.contracts.envelope import ID_PATTERN
from crowdsft.engine.evaluation import EVALUATIONS
from crowdsft.engine.experiment import run_streams
from crowdsft.engine.grouping import GROUPINGS
from crowdsft.engine.points import POINT_RULES
from crowdsft.engine.registry import Registry
from crowdsft.llm.config import PHI_DIMS, LlmSpec

BACKENDS = ("vector", "lora")
MODEL_LOW, MODEL_HIGH = 0.0, 5.0  # the method's uniform start for the vector model


ENGINE_REGISTRIES: dict[str, Registry[Any]] = {
    "grouping": GROUPINGS,
    "evaluation": EVALUATIONS,
    "points_rule": POINT_RULES,
}


class RoundPolicy(BaseModel):
    """`manual`: each round starts on `crowdsft round start`. `auto`: the first round starts
    once `min_contributions` accepted contributions wait, each next one when the last is scored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["manual", "auto"] = "manual"
    min_contributions: int = Field(1, ge=1)
    max_rounds: int = Field(30, ge=1, le=100_000)


class CampaignSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    campaign_id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    target: list[float] = Field(min_length=1, description="The ideal point phi(M_ideal).")
    n_groups: int = Field(4, ge=1, le=64)
    grouping: str = "random"
    evaluation: str = "l2"
    points_rule: str = "rank"
    delta: float = Field(0.1, gt=0, le=1)
    judge_error: float = Field(0.05, ge=0, le=1)
    backend: str = "vector"
    policy: RoundPolicy = RoundPolicy()
    seed: int = Field(0, ge=0)
    initial_model: list[float] | None = None
    shapley_every: int = Field(1, ge=1, description="Recompute Shapley every k rounds.")
    shapley_rel_error: float = Field(0.01, gt=0, le=1)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    llm: LlmSpec | None = Field(None, description="The model side of a `lora` campaign.")

    @field_validator("grouping", "evaluation", "points_rule")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        """Refused at creation, with the names that exist, rather than mid-round."""
        assert info.field_name is not None
        ENGINE_REGISTRIES[info.field_name].lookup(name)
        return name

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}; choose from {list(BACKENDS)}")
        return name

    @model_validator(mode="after")
    def _model_fits_target(self) -> CampaignSpec:
        if self.initial_model is not None and len(self.initial_model) != len(self.target):
            raise ValueError("initial_model and target must have the same dimension")
        return self

    @model_validator(mode="after")
    def _llm_fits_backend(self) -> CampaignSpec:
        """A `lora` campaign's target lives in its `phi` space; a `vector` one has no model."""
        if self.backend != "lora":
            if self.llm is not None:
                raise ValueError(f"`llm` is for the lora backend, not {self.backend!r}")
            return self
        if self.llm is None:
            raise ValueError("the lora backend needs `llm` (base model, phi, prompts)")
        dim = PHI_DIMS[self.llm.phi]
        if len(self.target) != dim:
            raise ValueError(
                f"phi {self.llm.phi!r} has {dim} dimensions; target has {len(self.target)}"
            )
        return self


def streams(seed: int) -> tuple[np.random.SeedSequence, ...]:
    """(crowd, dynamics, Shapley) streams: those of run 0 of `crowdsft simulate --seed`."""
    return run_streams(seed, 1)[0]


def initial_state(spec: CampaignSpec) -> tuple[list[float], str]:
    """The starting model and the dynamics stream's state, drawn as the engine's `simulate`
    draws them: the services replay the engine step by step."""
    rng = np.random.default_rng(streams(spec.seed)[1])
    if spec.initial_model is not None:
        model = np.asarray(spec.initial_model, dtype=np.float64)
    else:
        model = rng.uniform(MODEL_LOW, MODEL_HIGH, len(spec.target))
    return [float(x) for x in model], dump_rng(rng)


def dump_rng(rng: np.random.Generator) -> str:
    """JSON text: PCG64's 128-bit integers do not fit MongoDB's 64-bit numbers."""
    return json.dumps(rng.bit_generator.state)


def load_rng(state: str) -> np.random.Generator:
    generator = np.random.PCG64()
    generator.state = json.loads(state)
    return np.random.Generator(generator)
