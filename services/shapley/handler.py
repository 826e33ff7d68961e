"""Shapley: keeps each campaign's Shapley values current and measures how fair the points are.

The centroid game's values depend only on the crowd and the target, so they are estimated
again only when the crowd changed; the fairness figures (Pearson and Spearman of balances vs
Shapley values) are recomputed every `shapley_every` rounds from the points after that round.
"""

from __future__ import annotations

import hashlib

import numpy as np
import structlog

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.kafka import Publish
from crowdsft.adapters.mongo import Document
from crowdsft.adapters.round_store import RoundStore
from crowdsft.adapters.shapley_store import ShapleyStore
from crowdsft.campaigns import CampaignSpec, streams
from crowdsft.contracts import PointsAwarded, ShapleyComputed, ShapleyValue, derive_event_id
from crowdsft.contracts import topics as t
from crowdsft.engine.crowd import Crowd
from crowdsft.engine.experiment import ShapleySettings, shapley_of_crowd
from crowdsft.engine.stats import pearson, spearman

PRODUCER = "shapley"
METHOD = "stratified"
log = structlog.get_logger(PRODUCER)


def crowd_fingerprint(doc: Document, spec: CampaignSpec) -> str:
    text = repr((doc["contributor_ids"], doc["users"], spec.target, spec.evaluation, spec.seed))
    return hashlib.sha256(text.encode()).hexdigest()


class ShapleyHandler:
    def __init__(
        self,
        campaigns: CampaignStore,
        rounds: RoundStore,
        store: ShapleyStore,
        publish: Publish,
    ) -> None:
        self._campaigns = campaigns
        self._rounds = rounds
        self._store = store
        self._publish = publish

    async def on_points_awarded(self, event: PointsAwarded) -> None:
        spec = await self._campaigns.spec(event.campaign_id)
        if spec is None:
            return
        last = event.round_index + 1 >= spec.policy.max_rounds
        if (event.round_index + 1) % spec.shapley_every != 0 and not last:
            return
        stored = await self._store.get(spec.campaign_id)
        if stored is not None and stored["as_of_round_index"] >= event.round_index:
            return  # a replay, or a round already covered: nothing may move backwards
        doc = await self._rounds.get(event.campaign_id, event.round_index)
        if doc is None or doc["status"] != "scored":
            raise LookupError(f"round {event.round_id} is not scored in the store yet")
        values = await self._values(spec, doc, stored)
        # Points right after this round, from the round itself: the figures do not depend on
        # how far scoring has got by the time this runs.
        points = np.asarray(doc["points"]) + np.asarray(doc["awards"])
        shapley = np.asarray(values["values"])
        fairness = {"pearson": pearson(points, shapley), "spearman": spearman(points, shapley)}
        await self._store.save(spec.campaign_id, event.round_index, values, fairness)
        computed = ShapleyComputed(
            event_id=derive_event_id("shapley.computed", spec.campaign_id, event.round_index),
            producer=PRODUCER,
            campaign_id=spec.campaign_id,
            as_of_round_index=event.round_index,
            method=values["method"],
            values=[
                ShapleyValue(contributor_id=c, value=v, std_error=e)
                for c, v, e in zip(
                    values["contributor_ids"], values["values"], values["std_errors"], strict=True
                )
            ],
            relative_error=values["relative_error"],
            pearson=_finite(fairness["pearson"]),
            spearman=_finite(fairness["spearman"]),
        )
        await self._publish([(t.SHAPLEY_COMPUTED, spec.campaign_id, computed)])
        log.info("shapley computed", campaign_id=spec.campaign_id, **fairness)

    async def _values(self, spec: CampaignSpec, doc: Document, stored: Document | None) -> Document:
        fingerprint = crowd_fingerprint(doc, spec)
        if stored is not None and stored.get("fingerprint") == fingerprint:
            return {k: stored[k] for k in ("contributor_ids", "values", "std_errors",
                                           "relative_error", "method", "fingerprint")}  # fmt: skip
        crowd = Crowd(users=np.asarray(doc["users"]), expert=np.asarray(spec.target))
        settings = ShapleySettings(METHOD, spec.shapley_rel_error)
        rng = np.random.default_rng(streams(spec.seed)[2])
        result = shapley_of_crowd(crowd, spec.evaluation, settings, rng)
        return {
            "contributor_ids": doc["contributor_ids"],
            "values": [float(v) for v in result.values],
            "std_errors": [float(e) for e in result.stderr],
            "relative_error": float(result.relative_error),
            "method": METHOD,
            "fingerprint": fingerprint,
        }


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None
