"""What a campaign fixes (target, tournament, backend, policy) and where its rounds stand.

Pure: validated against the engine's registries and the backend registry, so a campaign that
could not run is refused when it is created, not in the middle of a round.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    SerializeAsAny,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from crowdsft.contracts.envelope import ID_PATTERN, MAX_STORED_INT
from crowdsft.domain.backend_spec import SPEC_TYPES, BackendSpec, parse_backend_spec
from crowdsft.engine.evaluation import EVALUATIONS
from crowdsft.engine.experiment import run_streams
from crowdsft.engine.grouping import GROUPINGS
from crowdsft.engine.points import POINT_RULES
from crowdsft.engine.registry import Registry

MODEL_LOW, MODEL_HIGH = 0.0, 5.0  # the method's uniform start for the vector model

ENGINE_REGISTRIES: dict[str, Registry[Any]] = {
    "grouping": GROUPINGS,
    "evaluation": EVALUATIONS,
    "points_rule": POINT_RULES,
}


class _RegisteredBackends:
    """JSON Schema of `backend`: one of the registered backends' specs, told by `kind`."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        variants = [
            handler(SPEC_TYPES[kind].__pydantic_core_schema__) for kind in sorted(SPEC_TYPES)
        ]
        return {"oneOf": variants, "description": "The training backend, named by `kind`."}


AnyBackendSpec = Annotated[SerializeAsAny[BackendSpec], _RegisteredBackends]


@dataclass(frozen=True)
class CrowdVersion:
    """How often a campaign's crowd changed, and how many contributions it was told were
    accepted (replays count again: an upper bound, never less than what is stored)."""

    version: int
    accepted: int


class RoundPolicy(BaseModel):
    """`manual`: each round starts on `crowdsft round start`. `auto`: the first round starts
    once `min_contributions` accepted contributions wait, each next one when the last is scored."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    mode: Literal["manual", "auto"] = "manual"
    min_contributions: int = Field(1, ge=1, le=MAX_STORED_INT)
    max_rounds: int = Field(30, ge=1, le=100_000)


class CampaignSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    campaign_id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    target: list[float] = Field(min_length=1, description="The ideal point phi(M_ideal).")
    reference_answers: list[str] = Field(
        default_factory=list,
        max_length=1_000,
        description="Answers the target was built from (their mean phi), shown to contributors.",
    )
    n_groups: int = Field(4, ge=1, le=64)
    grouping: str = "random"
    evaluation: str = "l2"
    points_rule: str = "rank"
    delta: float = Field(0.1, gt=0, le=1)
    judge_error: float = Field(0.05, ge=0, le=1)
    backend: AnyBackendSpec = Field(
        default_factory=lambda: parse_backend_spec("vector"),
        description='The training backend: {"kind": "vector"} (the default) or another.',
    )
    policy: RoundPolicy = RoundPolicy()
    seed: int = Field(0, ge=0, le=MAX_STORED_INT)
    shapley_every: int = Field(1, ge=1, le=100_000, description="Recompute Shapley every k rounds.")
    shapley_rel_error: float = Field(0.01, gt=0, le=1)

    @field_validator("grouping", "evaluation", "points_rule")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        """Refused at creation, with the names that exist, rather than mid-round."""
        assert info.field_name is not None
        ENGINE_REGISTRIES[info.field_name].lookup(name)
        return name

    @field_validator("backend", mode="before")
    @classmethod
    def _known_backend(cls, value: Any) -> BackendSpec:
        return parse_backend_spec(value)

    @model_validator(mode="after")
    def _backend_can_run(self) -> CampaignSpec:
        self.backend.check(self)
        return self

    @property
    def valuation(self) -> str:
        """The game its Shapley values are of (`geometric`, `in_run`, `in_run_adam`)."""
        return self.backend.valuation_of(self)


class CampaignState(BaseModel):
    """Where selection stands: the current model, the next round and the random stream."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    next_round: int = Field(ge=0)
    model_id: str
    rng_state: str
    open_round: int | None = None


def streams(seed: int) -> tuple[np.random.SeedSequence, ...]:
    """(crowd, dynamics, Shapley) streams: those of run 0 of `crowdsft simulate --seed`."""
    return run_streams(seed, 1)[0]


def initial_state(spec: CampaignSpec) -> tuple[list[float], str]:
    """The starting model and the dynamics stream's state, drawn as the engine's `simulate`
    draws them: the services replay the engine step by step. The draw is made whatever the
    backend, so one seed gives one stream."""
    rng = np.random.default_rng(streams(spec.seed)[1])
    fixed = spec.backend.initial_model
    if fixed is not None:
        model = np.asarray(fixed, dtype=np.float64)
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
