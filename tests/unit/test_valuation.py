"""A campaign's valuation: which game its Shapley values are of, and how in-run values add up."""

from __future__ import annotations

import pytest

from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.lora_backend import LoraBackendSpec
from crowdsft.domain.measurement import Measurement
from crowdsft.domain.shapley import measured_values, models_fingerprint
from crowdsft.llm_runtime.in_run import InRunValues
from crowdsft.llm_runtime.jobs import member_values

TARGET = [0.0] * 28
ANSWERS = ["so happy for you!", "congrats, well deserved."]


def lora(valuation: str = "auto", answers: list[str] | None = None) -> CampaignSpec:
    return CampaignSpec(
        campaign_id="c",
        target=TARGET,
        reference_answers=answers or [],
        backend=LoraBackendSpec(valuation=valuation),  # type: ignore[arg-type]
    )


def test_a_lora_campaign_with_reference_answers_values_in_run_by_default() -> None:
    assert lora(answers=ANSWERS).valuation == "in_run"
    assert lora().valuation == "geometric"  # nothing to measure the texts against
    assert lora("in_run_adam", ANSWERS).valuation == "in_run_adam"
    assert lora("geometric", ANSWERS).valuation == "geometric"
    assert CampaignSpec(campaign_id="v", target=[1.0, 2.0]).valuation == "geometric"


@pytest.mark.parametrize("valuation", ["in_run", "in_run_adam"])
def test_a_measured_valuation_without_reference_answers_is_refused(valuation: str) -> None:
    with pytest.raises(ValueError, match="reference_answers"):
        lora(valuation)


def test_unknown_valuations_are_refused() -> None:
    with pytest.raises(ValueError):
        lora("banzhaf", ANSWERS)


def candidate(model_id: str, values: dict[str, float], errors: dict[str, float]) -> Measurement:
    return Measurement(
        model_id=model_id,
        campaign_id="c",
        artifact_ref="artifact:x",
        position=[0.0],
        member_values=values,
        member_value_errors=errors,
    )


def test_measured_values_add_up_over_every_candidate_a_contributor_trained() -> None:
    rounds = [
        candidate("r0-g0", {"a": 0.5, "b": -0.25}, {"a": 0.1, "b": 0.05}),
        candidate("r0-g1", {"c": 0.125}, {"c": 0.0}),
        candidate("r1-g0", {"a": 0.25, "c": 1.0, "gone": 9.0}, {"a": 0.1, "c": 0.2}),
    ]
    values, errors = measured_values(["a", "b", "c", "new"], rounds)
    assert values == [0.75, -0.25, 1.125, 0.0]
    # separate runs' errors add in quadrature
    assert errors == pytest.approx([0.1 * 2**0.5, 0.05, 0.2, 0.0])


def test_fingerprints_change_with_the_models_measured() -> None:
    assert models_fingerprint("c", ["m1"]) == models_fingerprint("c", ["m1"])
    assert models_fingerprint("c", ["m1"]) != models_fingerprint("c", ["m1", "m2"])
    assert models_fingerprint("c", ["m1"]) != models_fingerprint("d", ["m1"])


def test_member_values_add_up_to_what_training_did_with_a_bootstrap_over_steps() -> None:
    # three steps, four examples by a, b, a, c; the terms predict 0.5, training did 1.0
    run = InRunValues(
        per_step=[[0.25, 0.0, 0.0, 0.0], [0.0, 0.25, -0.25, 0.0], [0.0, 0.25, 0.0, 0.0]],
        loss_before=3.0,
        loss_after=2.0,
        seconds=1.0,
    )
    assert run.per_example == [0.25, 0.5, -0.25, 0.0]
    assert run.predicted == 0.5 and run.actual == 1.0 and run.scale() == 2.0
    values, errors = member_values(run, ["a", "b", "a", "c"])
    assert values == {"a": 0.0, "b": 1.0, "c": 0.0}  # efficiency: they add up to 1.0
    # per-step sums: a 0.25, -0.25, 0 (sd 0.25); b 0, 0.25, 0.25 (sd 0.25 / sqrt(3)); each
    # times sqrt(3 steps) and the scale, 2
    assert errors == pytest.approx({"a": 2 * 3**0.5 * 0.25, "b": 2 * 0.25, "c": 0.0})


def test_a_scale_never_turns_a_ranking_over() -> None:
    against = InRunValues(per_step=[[0.5, -0.25]], loss_before=2.0, loss_after=2.5, seconds=0.1)
    assert against.scale() == 1.0  # predicted a fall, training made a rise: left as measured
    nothing = InRunValues(per_step=[[0.0]], loss_before=2.0, loss_after=1.0, seconds=0.1)
    assert nothing.scale() == 1.0
