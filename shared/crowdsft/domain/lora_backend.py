"""The `lora` backend: a group's demonstrations fine-tune a LoRA adapter of a real LLM.

Nobody is placed before training: the training workers sample each candidate (and the base),
embed the samples and the contributors' texts with `phi`, and store where each stands. The
tournament then ranks the measured distances to the target, and scoring and Shapley see the
round in `phi` space exactly as the vector backend's rounds are seen in theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from crowdsft.domain.backend_spec import BackendSpec, CampaignFacts
from crowdsft.domain.backends import Backend, register
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.crowd import Contribution, CrowdSnapshot, text_snapshot
from crowdsft.domain.ids import base_artifact_ref
from crowdsft.domain.measurement import Measurement
from crowdsft.domain.round import Decision, Round
from crowdsft.domain.steps import decision_of, judge_measured
from crowdsft.llm.config import MEASURED_VALUATIONS, PHI_DIMS, LlmSpec, Valuation


class LoraBackendSpec(BackendSpec):
    kind: Literal["lora"] = "lora"
    llm: LlmSpec = LlmSpec()
    valuation: Valuation = "auto"

    def check(self, campaign: CampaignFacts) -> None:
        """The target lives in the campaign's `phi` space; a measured valuation needs the
        reference answers whose loss it follows."""
        dim = PHI_DIMS[self.llm.phi]
        if len(campaign.target) != dim:
            raise ValueError(
                f"phi {self.llm.phi!r} has {dim} dimensions; target has {len(campaign.target)}"
            )
        if self.valuation in MEASURED_VALUATIONS and not campaign.reference_answers:
            raise ValueError(f"valuation {self.valuation!r} needs the campaign's reference_answers")

    def valuation_of(self, campaign: CampaignFacts) -> str:
        if self.valuation == "auto":
            return "in_run" if campaign.reference_answers else "geometric"
        return self.valuation

    def lineage_hyperparameters(self, campaign: CampaignFacts) -> dict[str, Any]:
        return {"llm": self.llm.model_dump(mode="json")}

    def root_artifact_ref(self, campaign_id: str) -> str:
        return base_artifact_ref(self.llm.base_model)


class MeasuredPlacement:
    """Placement for backends whose training measures each model's distance to the target."""

    def snapshot(self, spec: CampaignSpec, contributions: Sequence[Contribution]) -> CrowdSnapshot:
        return text_snapshot(contributions)

    def root(self, spec: CampaignSpec, initial_model: list[float]) -> None:
        return None  # measured by the first training request, like every candidate after it

    def decide(
        self,
        spec: CampaignSpec,
        round_: Round,
        base: Measurement,
        candidates: Sequence[Measurement],
    ) -> Decision:
        """Rank on the measured distances (the lower, the better)."""
        if base.distance is None or any(c.distance is None for c in candidates):
            raise ValueError(f"{round_.round_id}: a measured backend's models need distances")
        distances = np.asarray([c.distance for c in candidates], dtype=np.float64)
        outcome, rng_after = judge_measured(
            spec, -distances, -base.distance, round_.opening.rng_state
        )
        positions = {who: p for c in candidates for who, p in c.member_positions.items()}
        missing = [who for who in round_.contributor_ids if who not in positions]
        if missing:
            raise ValueError(f"{round_.round_id}: no measured position for {missing}")
        members = [positions[who] for who in round_.contributor_ids]
        return decision_of(
            outcome, rng_after, base, candidates, distances, measured=True, positions=members
        )


LORA = register(
    Backend(
        name="lora",
        spec_type=LoraBackendSpec,
        placement=MeasuredPlacement(),
        trainer="services.training.lora:LoraTrainer",
    )
)
