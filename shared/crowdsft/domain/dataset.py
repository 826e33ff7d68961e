"""A campaign's data as a dataset people can take away: rows TRL trains on directly, each
with where it came from, what happened to it and what its contributor earned.

Pure: the adapters gather the stored documents, this decides what a row says, and who is
named. Contributors appear under a keyed hash unless the operator asks for real ids; the card
credits by name only those who opted in.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.round import Round
from crowdsft.domain.shapley import ShapleyRecord

Status = Literal["accepted", "flagged", "rejected"]
STATUSES: tuple[Status, ...] = ("accepted", "flagged", "rejected")
PSEUDONYM_PREFIX = "anon-"


def pseudonym(contributor_id: str, key: bytes) -> str:
    """Stable for one key, unlinkable to the id without it (HMAC-SHA256, 64 bits shown)."""
    digest = hmac.new(key, contributor_id.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:16]


@dataclass(frozen=True)
class Usage:
    """A round that trained on a contribution: its group's candidate and whether it won."""

    round_index: int
    model_id: str
    won: bool


@dataclass(frozen=True)
class StoredText:
    """A stored contribution as the store holds it (accepted, or flagged as a near-copy)."""

    contribution_id: str
    submission_event_id: str
    contributor_id: str
    prompt: str
    response: str
    rating: int | None
    correction: str | None
    near_copy_of: str | None = None


@dataclass(frozen=True)
class Refusal:
    """A submission intake refused: kept as a reason, never as text."""

    submission_event_id: str | None
    contributor_id: str | None
    reason: str
    detail: str
    duplicate_of: str | None


@dataclass(frozen=True)
class CampaignData:
    spec: CampaignSpec
    texts: Sequence[StoredText]
    refusals: Sequence[Refusal]
    rounds: Sequence[Round]
    points: Mapping[str, float]  # contributor id -> points in this campaign
    shapley: ShapleyRecord | None
    credited: Mapping[str, str] = field(default_factory=dict)  # opted-in id -> display name


def usage_by_contribution(rounds: Iterable[Round]) -> dict[str, list[Usage]]:
    """Which candidate each contribution trained, round by round (decided rounds only)."""
    used: dict[str, list[Usage]] = {}
    for decided in rounds:
        if decided.decision is None:
            continue
        models = {c.group_index: c.model_id for c in decided.decision.candidates}
        winner = decided.decision.winner_model_id
        for member, contribution_ids in enumerate(decided.opening.contribution_ids):
            model_id = models[decided.opening.labels[member]]
            for contribution_id in contribution_ids:
                usage = Usage(decided.round_index, model_id, model_id == winner)
                used.setdefault(contribution_id, []).append(usage)
    return used


def rows(data: CampaignData, statuses: Sequence[Status], key: bytes | None) -> list[dict[str, Any]]:
    """One row per contribution (and per refusal, if asked); `key` None names contributors
    by their real ids (the operator's choice), else by their pseudonym."""
    used = usage_by_contribution(data.rounds)
    shapley = _shapley_by_contributor(data.shapley)

    def who(contributor_id: str | None) -> str | None:
        if contributor_id is None or key is None:
            return contributor_id
        return pseudonym(contributor_id, key)

    def earned(contributor_id: str | None) -> dict[str, float | None]:
        value, error = shapley.get(contributor_id or "", (None, None))
        return {
            "points": data.points.get(contributor_id or "", 0.0),
            "shapley": value,
            "shapley_std_error": error,
        }

    out: list[dict[str, Any]] = []
    for text in sorted(data.texts, key=lambda t: t.contribution_id):
        status: Status = "flagged" if text.near_copy_of else "accepted"
        if status not in statuses:
            continue
        out.append({
            "contribution_id": text.contribution_id,
            "submission_event_id": text.submission_event_id,
            "contributor": who(text.contributor_id),
            "messages": [
                {"role": "user", "content": text.prompt},
                {"role": "assistant", "content": text.response},
            ],
            "prompt": text.prompt,
            "completion": text.response,
            "rating": text.rating,
            "correction": text.correction,
            "status": status,
            "reason": "near_duplicate" if text.near_copy_of else None,
            "duplicate_of": text.near_copy_of,
            "used_in": [vars(u) for u in used.get(text.contribution_id, [])],
            **earned(text.contributor_id),
        })  # fmt: skip
    if "rejected" in statuses:
        for refusal in sorted(data.refusals, key=lambda r: r.submission_event_id or ""):
            out.append({
                "contribution_id": None,
                "submission_event_id": refusal.submission_event_id,
                "contributor": who(refusal.contributor_id),
                "messages": [],
                "prompt": None,
                "completion": None,
                "rating": None,
                "correction": None,
                "status": "rejected",
                "reason": refusal.reason,
                "duplicate_of": refusal.duplicate_of,
                "used_in": [],
                **earned(refusal.contributor_id),
            })  # fmt: skip
    return out


def _shapley_by_contributor(record: ShapleyRecord | None) -> dict[str, tuple[float, float]]:
    if record is None:
        return {}
    return {
        cid: (value, error)
        for cid, value, error in zip(
            record.contributor_ids, record.values, record.std_errors, strict=True
        )
    }


def dataset_card(data: CampaignData, table: Sequence[Mapping[str, Any]], data_file: str,
                 license_id: str, pseudonymised: bool) -> str:  # fmt: skip
    """README.md for the export: what it holds, how it was paid for, who is credited."""
    spec = data.spec
    counts = {s: sum(1 for r in table if r["status"] == s) for s in STATUSES}
    contributors = {r["contributor"] for r in table if r["contributor"] is not None}
    used = sum(1 for r in table if r["used_in"])
    rounds = [r for r in data.rounds if r.decision is not None]
    won = sum(1 for r in rounds if r.decision is not None and r.decision.winner_model_id)
    shapley = data.shapley
    shapley_line = (
        f"{shapley.method} estimate to a relative error of {shapley.relative_error:g} as of "
        f"round {shapley.as_of_round_index}, with each value's standard error"
        if shapley is not None
        else "not computed yet"
    )
    credited = sorted(data.credited.values())
    credits = "\n".join(f"- {name}" for name in credited) or "- (nobody opted in to be named)"
    names = "keyed pseudonyms (`anon-...`)" if pseudonymised else "their real ids"
    return f"""---
license: {license_id}
task_categories:
- text-generation
configs:
- config_name: default
  data_files: {data_file}
---
# {spec.name or spec.campaign_id}: crowd demonstrations

Exported by crowdsft from campaign `{spec.campaign_id}`.

| | |
|---|---|
| rows | {len(table)} |
| accepted | {counts["accepted"]} |
| flagged (near-copies, trained nothing) | {counts["flagged"]} |
| rejected (no text kept) | {counts["rejected"]} |
| contributors | {len(contributors)} |
| rows that trained a candidate | {used} |
| rounds decided / won | {len(rounds)} / {won} |

Each row has `messages` (user, assistant) and `prompt`/`completion`, so TRL's `SFTTrainer`
trains on it directly; keep `status == "accepted"` for what the campaign trained on.
Contributors appear as {names}.

## How contributors were paid

Each round dealt the crowd into {spec.n_groups} groups ({spec.grouping}); each group's data
trained one candidate, the candidates were ranked by their `{spec.evaluation}` distance to the
campaign's target, and each member earned points by the `{spec.points_rule}` rule (delta
{spec.delta:g}). `points` is a contributor's total in this campaign; `shapley` is their Shapley
value in the campaign's game ({shapley_line}), the fair share the points approximate.
`used_in` lists, per round, the candidate a row trained and whether it won.

## Credited contributors

{credits}
"""
