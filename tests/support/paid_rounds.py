"""Paid rounds written through the real stores, for read-side tests: what scoring leaves
behind (a round's chunks, its awards, the campaign's standing after it), with chosen awards."""

from __future__ import annotations

from datetime import datetime

from crowdsft.adapters.balance_store import BalanceStore
from crowdsft.adapters.chunks import part_documents
from crowdsft.adapters.ledger_store import LedgerStore, Standings
from crowdsft.adapters.mongo import CHUNKS, ROUNDS, Database, insert_new
from crowdsft.adapters.round_store import (
    RoundStore,
    columns_of,
    head_document,
    owner_of,
    parts_of,
)
from crowdsft.domain.ids import candidate_model_id, root_model_id, round_id
from crowdsft.domain.ledger import LedgerEntry
from crowdsft.domain.round import CandidateResult, Decision, Opening, Round


def one_group_round(campaign_id: str, index: int, members: list[str], at: datetime) -> Round:
    """A complete round of one group whose members each gave one contribution."""
    rid = round_id(campaign_id, index)
    return Round(
        round_id=rid,
        campaign_id=campaign_id,
        round_index=index,
        opening=Opening(
            base_model_id=root_model_id(campaign_id),
            contributor_ids=members,
            contribution_ids=[[f"{rid}:{m}"] for m in members],
            positions=None,
            points=[1.0] * len(members),
            labels=[0] * len(members),
            n_groups=1,
            rng_state="{}",
        ),
        opened_at=at,
    ).with_candidate(0, candidate_model_id(rid, 0))


async def pay_round(
    db: Database,
    campaign_id: str,
    index: int,
    awards: dict[str, float],
    at: datetime,
    rule: str = "rank",
    accepted: bool = True,
) -> Round:
    """Opens, decides and pays a round whose members get `awards`, as the services would."""
    opened = one_group_round(campaign_id, index, list(awards), at)
    model_id = candidate_model_id(opened.round_id, 0)
    decision = Decision(
        base_position=[0.0],
        candidates=[CandidateResult(group_index=0, model_id=model_id, position=[0.0],
                                    score=0.0, distance=0.0, artifact_ref="x")],
        ranking=[0],
        accepted=accepted,
        judged_wrong=False,
        winner_model_id=model_id if accepted else None,
        rng_after="{}",
    )  # fmt: skip
    rounds = RoundStore(db)
    await rounds.open(opened)
    decided = await rounds.decide(opened.decide(decision, at))
    scored = decided.pay(list(awards.values()), at)
    assert await LedgerStore(db).pay(scored, rule)
    return scored


async def ledgers(db: Database, campaign_id: str) -> dict[str, list[LedgerEntry]]:
    """Every paid contributor's ledger in a campaign, as the read API derives it."""
    store = BalanceStore(db)
    standing = await Standings(db).latest(campaign_id)
    return {
        c: await store.ledger(c, campaign_id, limit=1_000_000) for c in standing.contributor_ids
    }


async def balances(db: Database, campaign_id: str) -> dict[str, float]:
    standing = await Standings(db).latest(campaign_id)
    return dict(zip(standing.contributor_ids, standing.points.tolist(), strict=True))


async def insert_round(db: Database, round_: Round) -> None:
    """A round written as the store writes it (its document and its parts' chunks) at
    whatever status it has, without the steps before it."""
    parts = {}
    for part in parts_of(round_):
        digest, docs = part_documents(owner_of(round_, part), part, columns_of(round_, part))
        await insert_new(db[CHUNKS], docs)
        parts[part] = digest
    await db[ROUNDS].insert_one(head_document(round_, parts))
