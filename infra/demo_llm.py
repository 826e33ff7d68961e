"""The demo's headline: a synthetic crowd fine-tunes SmolLM2 through every service.

Twenty-four contributors of different quality write demonstrations for the campaign in
`infra/campaigns/kind-replies.yaml`: kind writers (on target), grumpy writers (off target), a
spammer and a copier who resubmits a kind writer's texts under their own name, disguised
(other case, punctuation, an invisible character): intake flags every copy, so the copier
is not in the crowd and earns nothing. Three in five
send them through the HTTP gateway with their tokens, the rest through the Kafka producer the
CLI uses. LoRA rounds then run on their own (auto policy) on the local Ray cluster; the demo
prints each round as it is scored, then the base model's and the final model's answers side by
side, the leaderboard, and points against Shapley values, and draws the plots.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import started_broker
from crowdsft.adapters.measurement_store import MeasurementStore
from crowdsft.adapters.round_store import RoundStore
from crowdsft.adapters.shapley_store import ShapleyStore
from crowdsft.cli.campaigns import spec_from_file
from crowdsft.client import Feedback, GatewayClient, ReadClient
from crowdsft.contracts import FeedbackSubmitted, new_event_id, utc_now
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.lora_backend import LoraBackendSpec
from crowdsft.domain.round import Round, RoundStatus
from crowdsft.domain.text import canonical
from crowdsft.engine.stats import pearson, spearman
from crowdsft.llm.config import PAPER_PROMPT
from crowdsft.settings import Settings

SPEC_FILE = Path(__file__).resolve().parent / "campaigns" / "kind-replies.yaml"
PER_CONTRIBUTOR = 2

KIND_OPENERS = [
    "That's wonderful,",
    "So happy for you,",
    "Congrats,",
    "Sending hugs,",
    "You've got this,",
    "Proud of you,",
    "This made my day,",
    "Thank you for sharing,",
]
KIND_MIDDLES = [
    "you deserve all the good things",
    "keep going, you're doing great",
    "this is such lovely news",
    "I'm rooting for you",
    "what a kind thing to do",
    "you should be really proud",
    "hope the rest of your week is just as good",
    "it's okay to take it one day at a time",
]
GRUMPY_OPENERS = ["Ugh,", "Honestly,", "Whatever,", "Seriously,", "Meh,", "Wow, great,"]
GRUMPY_MIDDLES = [
    "this is the dumbest thing I've read today",
    "nobody asked for this",
    "typical, everything is broken again",
    "I can't stand posts like this",
    "what a waste of everyone's time",
    "this is why I hate the internet",
]
SPAM = [
    "BUY CHEAP FOLLOWERS NOW at example.shop",
    "Click here for FREE crypto!!! example.win",
    "Hot singles in your area, visit example.biz",
    "Make $5000 a day from home: example.io",
]
ENDINGS = ["!", " :)", ".", "!!", " <3"]


@dataclass(frozen=True)
class Writer:
    contributor_id: str
    quality: str  # kind | grumpy | spammer | copier


def crowd(suffix: str, kind: int = 14, grumpy: int = 8) -> list[Writer]:
    """Contributors by quality; ids carry the run's suffix, so a re-run registers anew."""
    writers = [Writer(f"kind{n:02d}-{suffix}", "kind") for n in range(kind)]
    writers += [Writer(f"grumpy{n:02d}-{suffix}", "grumpy") for n in range(grumpy)]
    return [*writers, Writer(f"spammer-{suffix}", "spammer"), Writer(f"copier-{suffix}", "copier")]


def demonstrations(writers: Sequence[Writer], rng: random.Random) -> list[tuple[Writer, str]]:
    """Each writer's demonstrations; the copier resubmits the first kind writer's, disguised."""
    out: list[tuple[Writer, str]] = []
    for writer in writers:
        for _ in range(PER_CONTRIBUTOR):
            if writer.quality == "kind":
                text = f"{rng.choice(KIND_OPENERS)} {rng.choice(KIND_MIDDLES)}{rng.choice(ENDINGS)}"
            elif writer.quality == "grumpy":
                text = f"{rng.choice(GRUMPY_OPENERS)} {rng.choice(GRUMPY_MIDDLES)}."
            elif writer.quality == "spammer":
                text = rng.choice(SPAM)
            else:
                continue
            out.append((writer, text))
    copied = [text for w, text in out if w.quality == "kind"][:PER_CONTRIBUTOR]
    copier = next(w for w in writers if w.quality == "copier")
    return out + [(copier, disguised(text, i)) for i, text in enumerate(copied)]


def disguised(text: str, i: int) -> str:
    """What a copier tries: shouting, other punctuation, a zero-width space mid-word."""
    kinds = (text.upper(), text.replace(".", "!").replace(",", ""), text.replace("e", "e\u200b", 1))
    return kinds[i % len(kinds)]


def campaign_spec(suffix: str, base_model: str | None = None) -> CampaignSpec:
    """The repo's spec file, under a fresh id (and, for the tests, a smaller model)."""
    spec = spec_from_file(SPEC_FILE, campaign_id=f"kind-replies-{suffix}")
    if base_model is None:
        return spec
    assert isinstance(spec.backend, LoraBackendSpec)
    llm = spec.backend.llm.model_copy(update={"base_model": base_model})
    return spec.model_copy(update={"backend": spec.backend.model_copy(update={"llm": llm})})


async def submit(
    settings: Settings,
    gateway: str,
    spec: CampaignSpec,
    tokens: dict[str, str],
    texts: list[tuple[Writer, str]],
) -> dict[str, int]:
    sent = {"gateway": 0, "producer": 0}
    async with started_broker(settings, "crowdsft-demo") as broker:
        producer = FeedbackProducer(broker)
        async with GatewayClient(gateway, timeout_s=10) as client:
            for n, (writer, text) in enumerate(texts):
                body = {"campaign_id": spec.campaign_id, "prompt": PAPER_PROMPT, "response": text}
                if n % 5 < 3:  # three in five through the HTTP gateway
                    feedback = Feedback(spec.campaign_id, PAPER_PROMPT, text)
                    await client.submit(feedback, token=tokens[writer.contributor_id])
                    sent["gateway"] += 1
                else:
                    event = FeedbackSubmitted(
                        event_id=new_event_id(),
                        producer="demo-cli",
                        contributor_id=writer.contributor_id,
                        client_timestamp=utc_now(),
                        **body,
                    )
                    await producer.submit([event])
                    sent["producer"] += 1
    return sent


def round_row(done: Round) -> list[str]:
    decision = done.decision
    assert decision is not None and done.payment is not None
    winner = next((c for c in decision.candidates if c.model_id == decision.winner_model_id), None)
    best = min(decision.candidates, key=lambda c: c.distance)
    paid = sorted(zip(done.contributor_ids, done.payment.awards, strict=True), key=lambda p: -p[1])
    return [
        str(done.round_index),
        f"group {winner.group_index}" if winner else "none (base kept)",
        f"{decision.base_distance:.4f}" if decision.base_distance is not None else "-",
        f"{(winner or best).distance:.4f}",
        f"{(winner or best).heldout_distance:.4f}" if (winner or best).heldout_distance else "-",
        ", ".join(f"{c.split('-')[0]} +{a:g}" for c, a in paid[:3] if a > 0) or "nobody",
    ]


async def follow_rounds(
    db: mongo.Database, spec: CampaignSpec, console: Console, timeout_s: float
) -> tuple[list[Round], float]:
    """Print each round as it is scored; return them all once Shapley has seen the last."""
    rounds, store, shown = RoundStore(db), ShapleyStore(db), 0
    table_columns = [
        "round",
        "winner",
        "base distance",
        "winner distance",
        "winner held-out",
        "most points",
    ]
    console.print("  " + " | ".join(table_columns))
    started = time.perf_counter()
    last = spec.policy.max_rounds - 1
    while time.perf_counter() - started < timeout_s:
        done = [
            r for r in await rounds.of_campaign(spec.campaign_id) if r.status is RoundStatus.SCORED
        ]
        for scored in done[shown:]:
            console.print("  " + " | ".join(round_row(scored)))
        shown = len(done)
        record = await store.get(spec.campaign_id)
        if record is not None and record.as_of_round_index == last:
            return done, time.perf_counter() - started
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{spec.campaign_id} did not finish in {timeout_s:.0f} s; see the logs")


def side_by_side(base: list[str], final: list[str], console: Console) -> Table:
    table = Table(title=f'"{PAPER_PROMPT}": the base model and the crowd\'s model')
    table.add_column("SmolLM2 before", overflow="fold", ratio=1)
    table.add_column("after the crowd's rounds", overflow="fold", ratio=1)
    for a, b in zip(base, final, strict=False):
        table.add_row(a, b)
    return table


def plots(
    out: Path,
    rounds: list[Round],
    quality: dict[str, str],
    points: dict[str, float],
    shapley: dict[str, float],
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"kind": "#55A868", "grumpy": "#C44E52", "spammer": "#8172B2", "copier": "#CCB974"}
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4))
    in_hand: list[float] = []
    heldout: list[float] = []
    for done in rounds:
        decision = done.decision
        assert decision is not None and decision.base_distance is not None
        if not in_hand:
            in_hand.append(decision.base_distance)
            heldout.append(float("nan"))
        winner = [c for c in decision.candidates if c.model_id == decision.winner_model_id]
        in_hand.append(winner[0].distance if winner else in_hand[-1])
        heldout.append(
            winner[0].heldout_distance if winner and winner[0].heldout_distance else heldout[-1]
        )
    left.plot(in_hand, "o-", label="model in hand (selection prompt)")
    left.plot(heldout, "s--", label="its held-out distance")
    left.set_xlabel("rounds scored")
    left.set_ylabel("mean MiniLM distance to the target")
    left.set_title("Distance over rounds")
    left.legend(fontsize=8)
    ids = sorted(points)
    middle.scatter(
        [shapley[c] for c in ids],
        [points[c] for c in ids],
        c=[colours[quality[c]] for c in ids],
        s=30,
    )
    middle.set_xlabel("Shapley value (phi space)")
    middle.set_ylabel("points")
    middle.set_title("Points vs Shapley, by quality")
    kinds = list(colours)
    means = [np.mean([points[c] for c in ids if quality[c] == k] or [0.0]) for k in kinds]
    right.bar(kinds, means, color=[colours[k] for k in kinds])
    right.set_ylabel("mean points")
    right.set_title("Contributors by quality")
    fig.tight_layout()
    path = out / "llm.png"
    fig.savefig(path, dpi=110)
    return path


async def open_campaign(
    db: mongo.Database,
    settings: Settings,
    gateway: str,
    tokens: dict[str, str],
    texts: list[tuple[Writer, str]],
    spec: CampaignSpec,
    console: Console,
) -> dict[str, int]:
    """Create the campaign and send the crowd's demonstrations; rounds start on their own,
    once every distinct one is stored (copies are refused, so they are not waited for)."""
    distinct = len({canonical(text) for _, text in texts})
    policy = spec.policy.model_copy(update={"min_contributions": distinct})
    spec = spec.model_copy(update={"policy": policy})
    await CampaignStore(db).create_with_spec(spec)
    sent = await submit(settings, gateway, spec, tokens, texts)
    console.print(
        f"{len(texts)} demonstrations sent ({sent['gateway']} through the gateway, "
        f"{sent['producer']} through the producer); rounds run on their own:"
    )
    return sent


async def follow_llm_campaign(
    db: mongo.Database,
    balances: str,
    writers: list[Writer],
    spec: CampaignSpec,
    out: Path,
    console: Console,
) -> dict[str, Any]:
    rounds, seconds = await follow_rounds(db, spec, console, timeout_s=1200)
    final = rounds[-1].model_after()
    root = rounds[0].base_model_id
    found = await MeasurementStore(db).get([root, final] if final else [root])
    base_answers = found[root].samples
    final_answers = found[final].samples if final else base_answers
    console.print(side_by_side(base_answers, final_answers, console))
    record = await ShapleyStore(db).get(spec.campaign_id)
    assert record is not None
    shapley = dict(zip(record.contributor_ids, record.values, strict=True))
    paid = rounds[-1].points_after()
    points = dict(zip(rounds[-1].contributor_ids, (float(p) for p in paid), strict=True))
    quality = {w.contributor_id: w.quality for w in writers}
    ids = sorted(points)
    fairness = {
        "pearson": pearson(
            np.asarray([points[c] for c in ids]), np.asarray([shapley[c] for c in ids])
        ),
        "spearman": spearman(
            np.asarray([points[c] for c in ids]), np.asarray([shapley[c] for c in ids])
        ),
    }
    by_quality = {
        q: round(float(np.mean(paid_q)), 3) if (paid_q := [points[c] for c in ids
                                                           if quality[c] == q]) else None
        for q in ("kind", "grumpy", "spammer", "copier")
    }  # fmt: skip
    valued_by_quality = {
        q: round(float(np.mean(got)), 4) if (got := [shapley[c] for c in ids
                                                     if quality[c] == q]) else None
        for q in ("kind", "grumpy", "spammer", "copier")
    }  # fmt: skip
    copier = next(w.contributor_id for w in writers if w.quality == "copier")
    copies = await db[mongo.REJECTIONS].count_documents(
        {"contributor_id": copier, "reason": "duplicate_content"}
    )
    async with ReadClient(balances) as reads:
        entries = await reads.leaderboard(spec.campaign_id)
    board = Table(title=f"leaderboard of {spec.campaign_id} (Shapley valued {record.valuation})")
    for column in ("rank", "contributor", "quality", "points", "Shapley"):
        board.add_column(column)
    for entry in entries:
        who = entry["contributor_id"]
        board.add_row(
            str(entry["rank"]),
            who,
            quality.get(who, "?"),
            f"{entry['points']:g}",
            f"{shapley.get(who, float('nan')):.4f}",
        )
    console.print(board)
    console.print(
        f"points vs Shapley: Pearson {fairness['pearson']:.3f}, Spearman "
        f"{fairness['spearman']:.3f}; mean points by quality: {by_quality}; mean "
        f"{record.valuation} Shapley value by quality: {valued_by_quality}"
    )
    console.print(
        f"the copier's {copies} disguised copies were flagged as duplicates of the originals: "
        f"{'in' if copier in points else 'not in'} the crowd, nothing earned"
    )
    png = plots(out, rounds, quality, points, shapley)
    decisions = [r.decision for r in rounds if r.decision is not None]
    return {
        "campaign_id": spec.campaign_id,
        "base_model": spec.backend.llm.base_model
        if isinstance(spec.backend, LoraBackendSpec)
        else "",
        "rounds": len(rounds),
        "seconds": round(seconds, 1),
        "accepted_rounds": sum(1 for d in decisions if d.accepted),
        "base_distance": decisions[0].base_distance,
        "distance_in_hand": [
            next((c.distance for c in d.candidates if c.model_id == d.winner_model_id), None)
            for d in decisions
        ],
        "base_answers": base_answers,
        "final_answers": final_answers,
        "points_by_quality": by_quality,
        "valuation": record.valuation,
        "shapley_by_quality": valued_by_quality,
        "copier_copies_flagged": copies,
        "fairness": fairness,
        "leaderboard": {"campaign_id": spec.campaign_id, "entries": entries},
        "plot": str(png),
    }
