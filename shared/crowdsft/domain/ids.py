"""Every id scheme in one place: rounds, models, ledger keys and artifact references.

Ids are derived, never drawn: the same round, group or contributor gives the same id in every
process, so a replayed event finds its own work and a unique index refuses a second copy.
"""

from __future__ import annotations

INITIAL_ROUND_ID = "initial"  # the ledger's round key of a contributor's starting point
VECTOR_ARTIFACT_PREFIX = "artifacts:"
ROOT_ARTIFACT_PREFIX = "models:"
BASE_ARTIFACT_PREFIX = "base:"
ARTIFACT_REF_PREFIX = "artifact:"


def round_id(campaign_id: str, round_index: int) -> str:
    return f"{campaign_id}:r{round_index:05d}"


def root_model_id(campaign_id: str) -> str:
    """The campaign's starting model: the base of round 0."""
    return f"{campaign_id}:base"


def candidate_model_id(round_id: str, group_index: int) -> str:
    """One group's candidate of one round: training derives it, selection checks it."""
    return f"{round_id}:g{group_index}"


def vector_artifact_ref(model_id: str) -> str:
    """A vector candidate is its own artifact: a document in the measurements collection."""
    return VECTOR_ARTIFACT_PREFIX + model_id


def root_artifact_ref(campaign_id: str) -> str:
    """A vector campaign's starting point, drawn when the campaign was created."""
    return ROOT_ARTIFACT_PREFIX + root_model_id(campaign_id)


def base_artifact_ref(base_model: str) -> str:
    """An LLM campaign's root: the named base checkpoint itself."""
    return BASE_ARTIFACT_PREFIX + base_model


def model_key(model_id: str, kind: str = "adapter") -> str:
    """`camp:r00003:g1` -> `camp/r00003/g1/adapter`. Ids may hold `::` or `:.:`; such parts
    become `~0` / `~1` (ids never contain `~`, so no two ids share a key)."""
    parts = [p if p not in ("", ".", "..") else f"~{len(p)}" for p in model_id.split(":")]
    return "/".join([*parts, kind])


def ref_of(key: str) -> str:
    """A reference to a folder in the artifact store, as the lineage records it."""
    return ARTIFACT_REF_PREFIX + key


def key_of(ref: str) -> str:
    if not ref.startswith(ARTIFACT_REF_PREFIX):
        raise ValueError(f"not an artifact reference: {ref!r}")
    return ref.removeprefix(ARTIFACT_REF_PREFIX)
