"""Selection: opens rounds, collects the trained candidates, runs the tournament, decides.

Every step is written before it is announced and is safe to repeat: a round is opened once
(its `_id` is deterministic), decided once (a conditional update), and the campaign's state
moves by compare-and-set on its round counter. A replayed event therefore re-announces
what was already decided, with the same event ids, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import structlog

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contribution_store import ContributionStore
from crowdsft.adapters.kafka import Announcement, Publish
from crowdsft.adapters.ledger_store import LedgerStore
from crowdsft.adapters.mongo import Document
from crowdsft.adapters.round_store import (
    DECISION,
    OPENING,
    RoundStore,
    announced,
    round_id,
)
from crowdsft.campaigns import CampaignSpec
from crowdsft.contracts import (
    CandidateEvaluated,
    CandidateTrained,
    GroupAssignment,
    PointsAwarded,
    RoundDecided,
    RoundOpened,
    StartRoundRequested,
    TrainingRequested,
    derive_event_id,
)
from crowdsft.contracts import topics as t
from crowdsft.engine.evaluation import l2_distance
from crowdsft.rounds import group_assignments, group_crowd, judge, judge_measured
from crowdsft.vectors import crowd_snapshot, text_snapshot

PRODUCER = "selection"
log = structlog.get_logger(PRODUCER)


def groups_of(doc: Document) -> list[GroupAssignment]:
    return group_assignments(doc["contributor_ids"], doc["labels"])


def training_hyperparameters(spec: CampaignSpec) -> dict[str, Any]:
    """What a group's training is told, and what the lineage records for its candidate."""
    if spec.llm is not None:
        return {"llm": spec.llm.model_dump(mode="json"), **spec.hyperparameters}
    return {"delta": spec.delta, **spec.hyperparameters}


def _measured_metrics(doc: Document, group_index: int) -> dict[str, float]:
    """An LLM candidate's training metrics and the judge's held-out distance, if measured."""
    if "candidate_metrics" not in doc:
        return {}
    return {
        **doc["candidate_metrics"][group_index],
        "heldout_distance": doc["heldout_distances"][group_index],
        "base_distance": doc["base_distance"],
    }


class SelectionHandler:
    def __init__(
        self,
        campaigns: CampaignStore,
        rounds: RoundStore,
        contributions: ContributionStore,
        ledger: LedgerStore,
        publish: Publish,
    ) -> None:
        self._campaigns = campaigns
        self._rounds = rounds
        self._contributions = contributions
        self._ledger = ledger
        self._publish = publish

    # Opening a round.

    async def on_start_requested(self, command: StartRoundRequested) -> None:
        await self.open_round(command.campaign_id, command.round_index)

    async def on_points_awarded(self, event: PointsAwarded) -> None:
        """The last round is paid: under the auto policy the next one starts now."""
        spec = await self._campaigns.spec(event.campaign_id)
        if spec is None or spec.policy.mode != "auto":
            return
        if event.round_index + 1 < spec.policy.max_rounds:
            await self.open_round(event.campaign_id, event.round_index + 1)

    async def on_feedback_accepted(self, campaign_ids: set[str]) -> None:
        """Under the auto policy the first round starts once enough contributions wait."""
        for campaign_id in sorted(campaign_ids):
            spec = await self._campaigns.spec(campaign_id)
            state = await self._campaigns.state(campaign_id)
            if spec is None or state is None or spec.policy.mode != "auto":
                continue
            if state.next_round != 0 or state.open_round is not None:
                continue
            if await self._contributions.count(campaign_id) >= spec.policy.min_contributions:
                await self.open_round(campaign_id, 0)

    async def open_round(self, campaign_id: str, round_index: int) -> None:
        spec = await self._campaigns.spec(campaign_id)
        state = await self._campaigns.state(campaign_id)
        if spec is None or state is None:
            log.warning("no such round campaign", campaign_id=campaign_id)
            return
        if state.next_round != round_index or round_index >= spec.policy.max_rounds:
            return  # a stale or repeated command: that round is not the next one
        doc = await self._rounds.get(campaign_id, round_index)
        if doc is None:
            doc = await self._new_round(spec, round_index, state.model_id, state.rng_state)
            if doc is None:
                return
        elif announced(doc, OPENING):
            return
        await self._campaigns.mark_open(campaign_id, round_index, doc["rng_state"])
        await self._publish(self._opening(spec, doc))
        await self._rounds.mark_announced(doc["_id"], OPENING)

    async def _new_round(
        self, spec: CampaignSpec, round_index: int, model_id: str, rng_state: str
    ) -> Document | None:
        docs = await self._contributions.of_campaign(spec.campaign_id)
        measured = spec.backend == "lora"
        crowd = text_snapshot(docs) if measured else crowd_snapshot(docs, len(spec.target))
        if not crowd.contributor_ids:
            log.warning("no usable contributions yet", campaign_id=spec.campaign_id)
            return None
        points = await self._ledger.points(spec.campaign_id, crowd.contributor_ids)
        labels, rng_after = group_crowd(spec, points, round_index, rng_state)
        # An LLM's place in phi space is measured by training, and known at the decision.
        base = np.zeros(0) if measured else (await self._rounds.vectors([model_id]))[0]
        return await self._rounds.open(
            {
                "_id": round_id(spec.campaign_id, round_index),
                "campaign_id": spec.campaign_id,
                "round_index": round_index,
                "base_model_id": model_id,
                "base_model": [float(x) for x in base],
                "contributor_ids": crowd.contributor_ids,
                "contribution_ids": crowd.contribution_ids,
                "users": crowd.users.tolist(),
                "points": points.tolist(),
                "labels": [int(x) for x in labels],
                "n_groups": int(labels.max()) + 1,
                "rng_state": rng_after,
                "candidates": {},
            }
        )

    def _opening(self, spec: CampaignSpec, doc: Document) -> list[Announcement]:
        rid, campaign_id = doc["_id"], spec.campaign_id
        points = np.asarray(doc["points"])
        opened = RoundOpened(
            event_id=derive_event_id("round.opened", rid),
            producer=PRODUCER,
            campaign_id=campaign_id,
            round_id=rid,
            round_index=doc["round_index"],
            base_model_id=doc["base_model_id"],
            groups=groups_of(doc),
        )
        announcements: list[Announcement] = [(t.ROUND_OPENED, campaign_id, opened)]
        labels = np.asarray(doc["labels"])
        for group in opened.groups:
            rows = np.flatnonzero(labels == group.group_index)
            request = TrainingRequested(
                event_id=derive_event_id("training.requested", rid, group.group_index),
                producer=PRODUCER,
                campaign_id=campaign_id,
                round_id=rid,
                group_index=group.group_index,
                base_model_id=doc["base_model_id"],
                backend=spec.backend,
                contributor_ids=group.contributor_ids,
                contributor_weights=[float(points[i] ** 2) for i in rows],
                contribution_ids=[c for i in rows for c in doc["contribution_ids"][i]],
                hyperparameters=training_hyperparameters(spec),
            )
            # Keyed per group, not per campaign: the requests spread over the partitions, so
            # every training process shares the round's work.
            key = f"{rid}:{group.group_index}"
            announcements.append((t.TRAINING_REQUESTED, key, request))
        return announcements

    # Deciding a round.

    async def on_candidate_trained(self, event: CandidateTrained) -> None:
        doc = await self._rounds.add_candidate(event.round_id, event.group_index, event.model_id)
        if doc is None:
            log.warning("candidate for an unknown round", round_id=event.round_id)
            return
        if doc["status"] == "open" and len(doc["candidates"]) < doc["n_groups"]:
            return  # still waiting for other groups
        if announced(doc, DECISION):
            return  # a late or repeated candidate of a round already decided and announced
        spec = await self._campaigns.spec(event.campaign_id)
        assert spec is not None, f"round {event.round_id} of a campaign without a spec"
        if doc["status"] == "open":
            doc = await self._decide(spec, doc)
        await self._finish(spec, doc)

    async def _decide(self, spec: CampaignSpec, doc: Document) -> Document:
        model_ids = [doc["candidates"][str(g)] for g in range(doc["n_groups"])]
        if spec.backend == "lora":
            return await self._decide_measured(spec, doc, model_ids)
        candidates = await self._rounds.vectors(model_ids)
        base = np.asarray(doc["base_model"])
        outcome, rng_after = judge(spec, base, candidates, doc["rng_state"])
        winner = model_ids[int(outcome.ranking[0])] if outcome.accepted else None
        target = np.asarray(spec.target)
        return await self._rounds.decide(
            doc["_id"],
            {
                "candidate_models": model_ids,
                "candidate_vectors": candidates.tolist(),
                "ranking": [int(g) for g in outcome.ranking],
                "scores": [float(s) for s in outcome.scores],
                "distances": [float(d) for d in l2_distance(candidates, target)],
                "accepted": outcome.accepted,
                "judged_wrong": outcome.judged_wrong,
                "winner_model_id": winner,
                "rng_after": rng_after,
            },
        )

    async def _decide_measured(
        self, spec: CampaignSpec, doc: Document, model_ids: list[str]
    ) -> Document:
        """Rank on the distances the training workers measured (the lower, the better); the
        round's crowd and models enter phi space here, so scoring and Shapley work as for the
        vector backend."""
        base_id = doc["base_model_id"]
        found = await self._rounds.measured([base_id, *model_ids])
        missing = [m for m in [base_id, *model_ids] if m not in found]
        if missing:
            raise LookupError(f"no measurement stored for {missing}")
        candidates = [found[m] for m in model_ids]
        distances = np.asarray([c["distance"] for c in candidates])
        outcome, rng_after = judge_measured(
            spec, -distances, -found[base_id]["distance"], doc["rng_state"]
        )
        winner = model_ids[int(outcome.ranking[0])] if outcome.accepted else None
        positions = {c: v for cand in candidates for c, v in cand["member_positions"].items()}
        return await self._rounds.decide(
            doc["_id"],
            {
                "candidate_models": model_ids,
                "candidate_vectors": [c["vector"] for c in candidates],
                "candidate_refs": [c["artifact_ref"] for c in candidates],
                "candidate_metrics": [c["metrics"] for c in candidates],
                "heldout_distances": [c["heldout_distance"] for c in candidates],
                "base_model": found[base_id]["vector"],
                "base_distance": found[base_id]["distance"],
                "users": [positions[c] for c in doc["contributor_ids"]],
                "ranking": [int(g) for g in outcome.ranking],
                "scores": [float(s) for s in outcome.scores],
                "distances": [float(d) for d in distances],
                "accepted": outcome.accepted,
                "judged_wrong": outcome.judged_wrong,
                "winner_model_id": winner,
                "rng_after": rng_after,
            },
        )

    async def _finish(self, spec: CampaignSpec, doc: Document) -> None:
        """Lineage, campaign state and announcements of a decided round: all repeatable."""
        campaign_id, rid, index = spec.campaign_id, doc["_id"], doc["round_index"]
        await self._rounds.record_models(self._lineage(doc, training_hyperparameters(spec)))
        model_id = doc["winner_model_id"] or doc["base_model_id"]
        await self._campaigns.advance(
            campaign_id,
            index,
            next_round=index + 1,
            open_round=None,
            model_id=model_id,
            rng_state=doc["rng_after"],
        )
        await self._publish(self._decision(campaign_id, doc))
        await self._rounds.mark_announced(rid, DECISION)
        log.info("round decided", campaign_id=campaign_id, round_id=rid, improved=doc["accepted"])

    @staticmethod
    def _lineage(doc: Document, hyperparameters: dict[str, Any]) -> list[Document]:
        labels = np.asarray(doc["labels"])
        refs = doc.get("candidate_refs")
        models = []
        for g, model_id in enumerate(doc["candidate_models"]):
            rows = np.flatnonzero(labels == g)
            models.append(
                {
                    "_id": model_id,
                    "campaign_id": doc["campaign_id"],
                    "round_index": doc["round_index"],
                    "group_index": g,
                    "parent_model_id": doc["base_model_id"],
                    "contributor_ids": [doc["contributor_ids"][i] for i in rows],
                    "contribution_ids": [c for i in rows for c in doc["contribution_ids"][i]],
                    "artifact_ref": refs[g] if refs else f"artifacts:{model_id}",
                    "metrics": {
                        "score": doc["scores"][g],
                        "distance": doc["distances"][g],
                        **_measured_metrics(doc, g),
                    },
                    "hyperparameters": hyperparameters,
                    "rank": doc["ranking"].index(g),
                    "won": model_id == doc["winner_model_id"],
                }
            )
        return models

    def _decision(self, campaign_id: str, doc: Document) -> Sequence[Announcement]:
        rid = doc["_id"]
        evaluated: list[Announcement] = [
            (
                t.CANDIDATE_EVALUATED,
                campaign_id,
                CandidateEvaluated(
                    event_id=derive_event_id("candidate.evaluated", rid, g),
                    producer=PRODUCER,
                    campaign_id=campaign_id,
                    round_id=rid,
                    group_index=g,
                    model_id=model_id,
                    score=doc["scores"][g],
                    distance=doc["distances"][g],
                ),
            )
            for g, model_id in enumerate(doc["candidate_models"])
        ]
        decided = RoundDecided(
            event_id=derive_event_id("round.decided", rid),
            producer=PRODUCER,
            campaign_id=campaign_id,
            round_id=rid,
            round_index=doc["round_index"],
            ranking=doc["ranking"],
            scores=doc["scores"],
            base_model_id=doc["base_model_id"],
            winner_model_id=doc["winner_model_id"],
            improved=doc["accepted"],
            judging_error=doc["judged_wrong"],
            groups=groups_of(doc),
        )
        return [*evaluated, (t.ROUND_DECIDED, campaign_id, decided)]
