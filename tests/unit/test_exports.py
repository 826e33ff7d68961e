"""Exported rows and cards: who is named and how, what each row says about its use, and the
lineage a model card shows."""

from __future__ import annotations

from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.dataset import (
    CampaignData,
    Refusal,
    StoredText,
    dataset_card,
    pseudonym,
    rows,
    usage_by_contribution,
)
from crowdsft.domain.ids import candidate_model_id
from crowdsft.domain.lineage import LineageEntry
from crowdsft.domain.model_card import adapter_keys, model_card
from crowdsft.domain.round import Round
from crowdsft.domain.shapley import ShapleyRecord
from tests.unit.test_round_aggregate import RID, T0, complete, decision

SPEC = CampaignSpec(campaign_id="c", name="Kind replies", target=[0.0], n_groups=2)


def decided() -> Round:
    return complete().decide(decision(accepted=True), T0)


def text(cid: str, who: str, copy_of: str | None = None) -> StoredText:
    return StoredText(cid, f"e-{cid}", who, "write a reddit comment.", f"text {cid}", 4, None,
                      copy_of)  # fmt: skip


def data() -> CampaignData:
    return CampaignData(
        spec=SPEC,
        texts=[
            text("a1", "a"),
            text("b1", "b"),
            text("b2", "b"),
            text("c1", "c"),
            text("x9", "c", copy_of="a1"),
        ],
        refusals=[Refusal("e-r", "a", "duplicate_content", "a copy of a1", "a1")],
        rounds=[decided()],
        points={"a": 3.0, "b": 1.0, "c": 2.0},
        shapley=ShapleyRecord(
            campaign_id="c",
            contributor_ids=["a", "b", "c"],
            values=[0.5, 0.2, 0.3],
            std_errors=[0.01, 0.02, 0.03],
            relative_error=0.01,
            method="stratified",
            fingerprint="f",
            as_of_round_index=3,
        ),
        credited={"a": "Ada"},
    )


def test_each_contribution_records_the_candidate_it_trained_and_whether_it_won() -> None:
    used = usage_by_contribution([decided()])
    winner, loser = candidate_model_id(RID, 0), candidate_model_id(RID, 1)
    # labels [0, 1, 0]: a and c in group 0 (the winner), b in group 1.
    assert {k: [(u.round_index, u.model_id, u.won) for u in v] for k, v in used.items()} == {
        "a1": [(3, winner, True)],
        "b1": [(3, loser, False)],
        "b2": [(3, loser, False)],
        "c1": [(3, winner, True)],
    }


def test_rows_are_trl_shaped_and_pseudonymous_by_default() -> None:
    table = rows(data(), ["accepted"], key=b"k")
    assert [r["contribution_id"] for r in table] == ["a1", "b1", "b2", "c1"]
    first = table[0]
    assert first["messages"] == [
        {"role": "user", "content": "write a reddit comment."},
        {"role": "assistant", "content": "text a1"},
    ]
    assert (first["prompt"], first["completion"]) == ("write a reddit comment.", "text a1")
    assert first["contributor"] == pseudonym("a", b"k") != pseudonym("a", b"other")
    assert (first["points"], first["shapley"], first["shapley_std_error"]) == (3.0, 0.5, 0.01)
    assert all(r["contributor"] != "a" for r in table)


def test_flagged_and_rejected_rows_only_when_asked_and_real_ids_only_without_a_key() -> None:
    table = rows(data(), ["accepted", "flagged", "rejected"], key=None)
    by_status = {s: [r for r in table if r["status"] == s] for s in ("flagged", "rejected")}
    [flagged], [rejected] = by_status["flagged"], by_status["rejected"]
    assert (flagged["reason"], flagged["duplicate_of"], flagged["used_in"]) == (
        "near_duplicate", "a1", [],
    )  # fmt: skip
    assert rejected["completion"] is None and rejected["messages"] == []
    assert (rejected["reason"], rejected["contributor"]) == ("duplicate_content", "a")


def test_the_card_counts_rows_and_credits_only_those_who_opted_in() -> None:
    table = rows(data(), ["accepted", "flagged"], key=b"k")
    card = dataset_card(data(), table, "data/train.parquet", "cc-by-4.0", pseudonymised=True)
    assert card.startswith("---\nlicense: cc-by-4.0\n")
    assert "| accepted | 4 |" in card and "| flagged (near-copies, trained nothing) | 1 |" in card
    assert "- Ada" in card and "rounds decided / won | 1 / 1" in card
    assert "stratified estimate" in card


def test_a_model_card_shows_the_lineage_and_its_adapters() -> None:
    base = LineageEntry(model_id="c:base", campaign_id="c", artifact_ref="base:tiny")
    won = LineageEntry(
        model_id="c:r00000:g1", campaign_id="c", round_index=0, group_index=1,
        parent_model_id="c:base", contributor_ids=["a", "b"], contribution_ids=["a1", "b1"],
        artifact_ref="artifact:c/r00000/g1", metrics={"distance": 0.5, "heldout_distance": 0.6},
        hyperparameters={"llm": {"sft": {"lora_r": 16}}},
    )  # fmt: skip
    assert adapter_keys([base, won]) == ("c/r00000/g1",)
    card = model_card(SPEC, "tiny", [base, won], merged=True, credited={"a": "Ada"})
    assert "| 0 | `c:r00000:g1` | 0.5000 | 0.6000 | - | 2 |" in card
    assert "- round 0: `a1`, `b1`" in card and "credited by name (opted in): Ada" in card
    assert '"lora_r": 16' in card and "library_name: transformers" in card
