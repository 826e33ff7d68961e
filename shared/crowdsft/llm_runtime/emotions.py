"""The emotion head behind `phi = emotion`: GoEmotions in, a cached head and its accuracy out."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from crowdsft.llm.config import PHI_DIMS
from crowdsft.llm_runtime.phi import (
    HEAD_REPORT,
    HEAD_WEIGHTS,
    MiniLM,
    emotion_head_module,
    head_dir,
)

N_EMOTIONS = PHI_DIMS["emotion"]


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: NDArray[np.float32]  # multi-hot, rows x 28


def emotion_names(data_dir: Path) -> list[str]:
    return (data_dir / "emotions.txt").read_text().split()


def load_split(data_dir: Path, split: str, limit: int | None = None) -> Split:
    """A GoEmotions TSV as released (no quote handling: ~1,100 rows have doubled quotes)."""
    texts: list[str] = []
    rows: list[list[int]] = []
    with open(data_dir / f"{split}.tsv", newline="", encoding="utf-8") as handle:
        for record in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            texts.append(record[0])
            rows.append([int(i) for i in record[1].split(",")])
            if limit is not None and len(texts) >= limit:
                break
    labels = np.zeros((len(texts), N_EMOTIONS), dtype=np.float32)
    for row, ids in enumerate(rows):
        labels[row, ids] = 1.0
    return Split(texts, labels)


@dataclass(frozen=True)
class HeadReport:
    train_examples: int
    heldout_split: str
    heldout_examples: int
    top1_in_gold: float
    majority_baseline: float
    micro_f1: float
    seconds: float


def top1_in_gold(probabilities: NDArray[np.float64], labels: NDArray[np.float32]) -> float:
    """How often the most likely emotion is one of the comment's gold labels."""
    best = probabilities.argmax(axis=1)
    return float(labels[np.arange(len(best)), best].mean())


def micro_f1(probabilities: NDArray[np.float64], labels: NDArray[np.float32]) -> float:
    predicted = probabilities >= 0.5
    gold = labels > 0.5
    tp = float((predicted & gold).sum())
    return 2 * tp / max(float(predicted.sum() + gold.sum()), 1.0)


def train_emotion_head(
    data_dir: Path,
    cache: Path | None = None,
    limit: int | None = None,
    epochs: int = 30,
    device: str = "cpu",
) -> HeadReport:
    """Embed the train split with MiniLM, fit the head, score it on dev, save both."""
    import torch

    started = time.perf_counter()
    minilm = MiniLM(device)
    train, dev = load_split(data_dir, "train", limit), load_split(data_dir, "dev", limit)
    x = torch.as_tensor(minilm.embed(train.texts), dtype=torch.float32)
    y = torch.as_tensor(train.labels)
    torch.manual_seed(0)
    head = emotion_head_module()
    optimiser = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        head.train()
        for batch in torch.randperm(len(x)).split(256):
            optimiser.zero_grad()
            loss_fn(head(x[batch]), y[batch]).backward()
            optimiser.step()
    head.eval()
    with torch.no_grad():
        dev_logits = head(torch.as_tensor(minilm.embed(dev.texts), dtype=torch.float32))
    probabilities = np.asarray(torch.sigmoid(dev_logits).numpy(), dtype=np.float64)
    majority = int(train.labels.sum(axis=0).argmax())
    report = HeadReport(
        train_examples=len(train.texts),
        heldout_split="dev",
        heldout_examples=len(dev.texts),
        top1_in_gold=top1_in_gold(probabilities, dev.labels),
        majority_baseline=float(dev.labels[:, majority].mean()),
        micro_f1=micro_f1(probabilities, dev.labels),
        seconds=time.perf_counter() - started,
    )
    out = head_dir(cache)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(head.state_dict(), out / HEAD_WEIGHTS)
    (out / HEAD_REPORT).write_text(json.dumps(asdict(report), indent=2))
    return report
