"""The crowd as a round sees it: contributions, and each contributor's place as a point.

In a `vector` campaign (the paper's crowd simulation run as a service) a contribution's
response is a JSON list of numbers with the campaign's dimension; anything else is not data for
that backend and is left out (and counted), never guessed at. Backends that measure their
contributors during training (LLMs) take every contribution as text and place nobody here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from crowdsft.contracts import FeedbackSubmitted, new_event_id, utc_now

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Contribution:
    """A stored demonstration, as the round steps read it (its id is its content hash)."""

    contribution_id: str
    contributor_id: str
    prompt: str
    response: str


@dataclass(frozen=True)
class CrowdSnapshot:
    """Contributors (sorted ids), their contributions and, where known, their points."""

    contributor_ids: list[str]
    contribution_ids: list[list[str]]
    users: FloatArray | None  # None: placed later, by the backend's measurement
    ignored: int = 0


def parse_vector(text: str, dim: int) -> FloatArray | None:
    try:
        values = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(values, list) or len(values) != dim:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    return np.asarray(values, dtype=np.float64)


def vector_text(vector: Iterable[float]) -> str:
    """The response a contributor submits for a point (full float precision)."""
    return json.dumps([float(x) for x in vector])


def crowd_snapshot(contributions: Iterable[Contribution], dim: int) -> CrowdSnapshot:
    """Each contributor's point is the mean of their valid contributions (sorted by id)."""
    points: dict[str, list[tuple[str, FloatArray]]] = {}
    ignored = 0
    for item in contributions:
        vector = parse_vector(item.response, dim)
        if vector is None:
            ignored += 1
            continue
        points.setdefault(item.contributor_id, []).append((item.contribution_id, vector))
    ids = sorted(points)
    rows = [sorted(points[c], key=lambda pair: pair[0]) for c in ids]
    users = (
        np.asarray([np.mean([v for _, v in row], axis=0) for row in rows])
        if rows
        else np.zeros((0, dim))
    )
    return CrowdSnapshot(ids, [[cid for cid, _ in row] for row in rows], users, ignored)


def text_snapshot(contributions: Iterable[Contribution]) -> CrowdSnapshot:
    """An LLM campaign's crowd: every contribution is training text and none is a point; the
    training workers place each contributor in phi space later."""
    rows: dict[str, list[str]] = {}
    for item in contributions:
        rows.setdefault(item.contributor_id, []).append(item.contribution_id)
    ids = sorted(rows)
    return CrowdSnapshot(ids, [sorted(rows[c]) for c in ids], None, 0)


def point_submissions(
    campaign_id: str, contributor_ids: list[str], users: FloatArray, producer: str
) -> list[FeedbackSubmitted]:
    """Each contributor submits their point to a vector campaign, one feedback event each."""
    return [
        FeedbackSubmitted(
            event_id=new_event_id(),
            producer=producer,
            campaign_id=campaign_id,
            contributor_id=contributor_id,
            prompt="my preference point",
            response=vector_text(row),
            client_timestamp=utc_now(),
        )
        for contributor_id, row in zip(contributor_ids, users, strict=True)
    ]
