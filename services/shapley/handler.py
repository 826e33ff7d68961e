"""Shapley: keeps each campaign's Shapley values current and measures how fair the points are.

The centroid game's values depend only on the crowd and the target, so they are estimated
again only when the crowd changed; the fairness figures (Pearson and Spearman of balances vs
Shapley values) are recomputed every `shapley_every` rounds from the points after that round.
"""

from __future__ import annotations

import asyncio

import numpy as np
import structlog

from crowdsft.contracts import (
    PointsAwarded,
    ShapleyComputed,
    derive_event_id,
    utc_now,
)
from crowdsft.domain.campaign import CampaignSpec, streams
from crowdsft.domain.ports import Campaigns, Measurements, Publish, Rounds, ShapleyValues
from crowdsft.domain.round import Round, RoundStatus
from crowdsft.domain.shapley import (
    Fairness,
    ShapleyRecord,
    crowd_fingerprint,
    measured_values,
    models_fingerprint,
)
from crowdsft.engine.crowd import Crowd
from crowdsft.engine.experiment import ShapleySettings, shapley_of_crowd
from crowdsft.engine.shapley.result import relative_norm
from crowdsft.engine.stats import pearson, spearman
from crowdsft.llm.config import MEASURED_VALUATIONS

PRODUCER = "shapley"
# Sampling estimators cost O(n^2) per unit; from this many contributors on, the estimator built
# on the centroid game's structure takes over (seconds at 100,000; bench/results/shapley.json).
# With its matrix-product paths (l2, dot) it is as accurate as the sampling reference from a
# few hundred contributors on (n = 1,000, l2: 0.46% from the reference, in 0.06 s against the
# reference's 52 s); l1 has no such path and keeps the sampling estimators longer.
LARGE_CROWD = {"l2": 500, "dot": 500}
LARGE_CROWD_OTHERWISE = 2_000


def method_for(n_contributors: int, evaluation: str = "l2") -> str:
    large = LARGE_CROWD.get(evaluation, LARGE_CROWD_OTHERWISE)
    return "size_strata" if n_contributors >= large else "stratified"


log = structlog.get_logger(PRODUCER)


class ShapleyHandler:
    def __init__(
        self,
        campaigns: Campaigns,
        rounds: Rounds,
        store: ShapleyValues,
        publish: Publish,
        measurements: Measurements,
    ) -> None:
        self._campaigns = campaigns
        self._rounds = rounds
        self._store = store
        self._publish = publish
        self._measurements = measurements

    async def on_points_awarded(self, event: PointsAwarded) -> None:
        spec = await self._campaigns.spec(event.campaign_id)
        if spec is None:
            return
        last = event.round_index + 1 >= spec.policy.max_rounds
        if (event.round_index + 1) % spec.shapley_every != 0 and not last:
            return
        stored = await self._store.get(spec.campaign_id)
        if stored is not None and stored.as_of_round_index >= event.round_index:
            return  # a replay, or a round already covered: nothing may move backwards
        scored = await self._rounds.get(event.campaign_id, event.round_index)
        if scored is None or scored.status is not RoundStatus.SCORED:
            raise LookupError(f"round {event.round_id} is not scored in the store yet")
        if spec.valuation in MEASURED_VALUATIONS:
            record = await self._measured_values(spec, scored)
        else:
            # In a thread: a large crowd's estimate takes seconds the heartbeats need.
            record = await asyncio.to_thread(self._values, spec, scored, stored)
        # Points right after this round, from the round itself: the figures do not depend on
        # how far scoring has got by the time this runs.
        points, shapley = scored.points_after(), np.asarray(record.values)
        fairness = Fairness(pearson=pearson(points, shapley), spearman=spearman(points, shapley))
        earlier = stored.fairness if stored is not None else {}
        record = record.model_copy(
            update={
                "as_of_round_index": event.round_index,
                "fairness": {**earlier, event.round_index: fairness},
                "updated_at": utc_now(),
            }
        )
        await self._store.save(record)
        await self._publish([(spec.campaign_id, computed(record, fairness))])
        log.info("shapley computed", campaign_id=spec.campaign_id, **fairness.model_dump())

    async def _measured_values(self, spec: CampaignSpec, scored: Round) -> ShapleyRecord:
        """The in-run values of every candidate trained up to this round, summed."""
        trained: list[str] = []
        for index in range(scored.round_index + 1):
            played = scored if index == scored.round_index else await self._rounds.get(
                spec.campaign_id, index
            )  # fmt: skip
            if played is None or played.decision is None:
                raise LookupError(f"round {index} of {spec.campaign_id} is not decided yet")
            trained += [c.model_id for c in played.decision.candidates]
        found = await self._measurements.get(trained)
        missing = [m for m in trained if m not in found]
        if missing:
            raise LookupError(f"no measurement of the candidates {missing} yet")
        values, errors = measured_values(scored.contributor_ids, [found[m] for m in trained])
        return ShapleyRecord(
            campaign_id=spec.campaign_id,
            contributor_ids=scored.contributor_ids,
            values=values,
            std_errors=errors,
            relative_error=relative_norm(np.asarray(errors), np.asarray(values)),
            method="in_run_sum",
            valuation=spec.valuation,
            fingerprint=models_fingerprint(spec.campaign_id, trained),
            as_of_round_index=scored.round_index,
        )

    @staticmethod
    def _values(spec: CampaignSpec, scored: Round, stored: ShapleyRecord | None) -> ShapleyRecord:
        fingerprint = crowd_fingerprint(scored, spec)
        if stored is not None and stored.fingerprint == fingerprint:
            return stored
        crowd = Crowd(users=np.asarray(scored.positions), expert=np.asarray(spec.target))
        method = method_for(len(crowd.users), spec.evaluation)
        settings = ShapleySettings(method, spec.shapley_rel_error)
        rng = np.random.default_rng(streams(spec.seed)[2])
        result = shapley_of_crowd(crowd, spec.evaluation, settings, rng)
        return ShapleyRecord(
            campaign_id=spec.campaign_id,
            contributor_ids=scored.contributor_ids,
            values=[float(v) for v in result.values],
            std_errors=[float(e) for e in result.stderr],
            relative_error=float(result.relative_error),
            method=settings.method,
            fingerprint=fingerprint,
            as_of_round_index=scored.round_index,
        )


def computed(record: ShapleyRecord, fairness: Fairness) -> ShapleyComputed:
    return ShapleyComputed(
        event_id=derive_event_id("shapley.computed", record.campaign_id, record.as_of_round_index),
        producer=PRODUCER,
        campaign_id=record.campaign_id,
        as_of_round_index=record.as_of_round_index,
        method=record.method,
        valuation=record.valuation,
        contributors=len(record.contributor_ids),
        relative_error=record.relative_error,
        pearson=_finite(fairness.pearson),
        spearman=_finite(fairness.spearman),
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and np.isfinite(value) else None
