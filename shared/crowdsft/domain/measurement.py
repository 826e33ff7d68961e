"""Where a model stands, as its backend measured it: what selection ranks and scoring uses.

One record per model, written once by whoever made the model (training, or the campaign's
creation for a vector campaign's starting point) and read by selection at the decision, so
the two never agree on a dict's keys by convention.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Measurement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str
    campaign_id: str
    round_id: str | None = None
    artifact_ref: str
    position: list[float] = Field(description="The model's point: a vector, or mean phi.")
    distance: float | None = Field(
        None,
        description="Measured distance to the target on the selection prompts; None when the "
        "campaign's evaluation computes the score from `position`.",
    )
    heldout_distance: float | None = Field(
        None, description="The judge's distance on held-out prompts (measured backends)."
    )
    member_positions: dict[str, list[float]] = Field(
        default_factory=dict, description="Each contributor's point, measured from their data."
    )
    member_values: dict[str, float] = Field(
        default_factory=dict,
        description="Each member's in-run value: how much their texts lowered the reference "
        "answers' loss while this model trained (campaigns with a measured valuation).",
    )
    member_value_errors: dict[str, float] = Field(
        default_factory=dict,
        description="Their standard errors: a bootstrap over the training steps.",
    )
    metrics: dict[str, float] = Field(default_factory=dict)
    samples: list[str] = Field(default_factory=list, description="A few of the model's outputs.")
    device: str | None = None
