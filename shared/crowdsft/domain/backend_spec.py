"""What a campaign fixes about its training backend, told apart by `kind`.

Each backend's spec type subclasses `BackendSpec`; `crowdsft.domain.backends.register` indexes
it here by its kind, so `CampaignSpec.backend` is validated against what is registered.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from crowdsft.engine.registry import Registry


class CampaignFacts(Protocol):
    """What a backend's hooks may read of their campaign."""

    @property
    def campaign_id(self) -> str: ...

    @property
    def target(self) -> list[float]: ...

    @property
    def delta(self) -> float: ...

    @property
    def reference_answers(self) -> list[str]: ...


class BackendSpec(BaseModel):
    """Subclasses name their `kind` as a Literal with that default."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    kind: str

    @property
    def initial_model(self) -> list[float] | None:
        """A starting point fixed by the campaign; None: drawn from the seed."""
        return None

    def check(self, campaign: CampaignFacts) -> None:
        """Refuse, at creation, a campaign this backend could not run (ValueError)."""

    def lineage_hyperparameters(self, campaign: CampaignFacts) -> dict[str, Any]:
        """What the lineage records as each candidate's training settings."""
        return {}

    def valuation_of(self, campaign: CampaignFacts) -> str:
        """What the Shapley service values: the centroid game in the campaign's space, unless
        the backend measures the game its rounds really play."""
        return "geometric"

    def root_artifact_ref(self, campaign_id: str) -> str:
        """The lineage's reference for the campaign's starting model."""
        raise NotImplementedError


SPEC_TYPES: Registry[type[BackendSpec]] = Registry("backend")


def parse_backend_spec(value: Any) -> BackendSpec:
    """A spec from its JSON form (`{"kind": ...}`, or just the kind's name)."""
    if isinstance(value, BackendSpec):
        return value
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise ValueError(f'a backend is {{"kind": one of {sorted(SPEC_TYPES)}, ...}}')
    return SPEC_TYPES.lookup(value["kind"]).model_validate(value)
