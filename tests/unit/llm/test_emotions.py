"""GoEmotions reading and the head's scores, on hand-made data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdsft.llm_runtime.emotions import (
    N_EMOTIONS,
    emotion_names,
    load_split,
    micro_f1,
    top1_in_gold,
)

ROWS = [
    ("Is this in New Orleans?? I really feel like this is New Orleans.", "27", "edgurhb"),
    ('"color me embarrassed"" I wonder what colour he\'d be"', "3,7", "edp5a2y"),
    ('it\'s ""intents and purposes""', "12,26,0", "eex5sic"),
    ("don\u2019t \u2603", "4", "ee84bjg"),
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    lines = ["\t".join(row) for row in ROWS]
    (tmp_path / "dev.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "emotions.txt").write_text("admiration\namusement\nanger\n")
    return tmp_path


def test_load_split_keeps_text_verbatim_and_multi_hot_labels(data_dir: Path) -> None:
    split = load_split(data_dir, "dev")
    assert split.texts == [row[0] for row in ROWS]
    assert split.texts[2] == 'it\'s ""intents and purposes""'  # doubled quotes kept as released
    assert split.labels.shape == (len(ROWS), N_EMOTIONS)
    assert split.labels.dtype == np.float32
    expected = np.zeros((len(ROWS), N_EMOTIONS), dtype=np.float32)
    for row, (_, ids, _) in enumerate(ROWS):
        expected[row, [int(i) for i in ids.split(",")]] = 1.0
    np.testing.assert_array_equal(split.labels, expected)
    assert split.labels[1].nonzero()[0].tolist() == [3, 7]
    assert split.labels.sum(axis=1).tolist() == [1, 2, 3, 1]


def test_load_split_limit(data_dir: Path) -> None:
    split = load_split(data_dir, "dev", limit=2)
    assert split.texts == [ROWS[0][0], ROWS[1][0]]
    assert split.labels.shape == (2, N_EMOTIONS)


def test_emotion_names(data_dir: Path) -> None:
    assert emotion_names(data_dir) == ["admiration", "amusement", "anger"]


def test_top1_in_gold() -> None:
    labels = np.zeros((4, 5), dtype=np.float32)
    labels[0, 1] = labels[1, [0, 2]] = labels[2, 4] = labels[3, 3] = 1.0
    probabilities = np.array(
        [
            [0.1, 0.8, 0.1, 0.0, 0.0],  # argmax 1: gold
            [0.1, 0.0, 0.6, 0.3, 0.0],  # argmax 2: one of two golds
            [0.9, 0.0, 0.0, 0.0, 0.1],  # argmax 0: wrong
            [0.0, 0.0, 0.0, 0.2, 0.3],  # argmax 4: wrong
        ]
    )
    assert top1_in_gold(probabilities, labels) == pytest.approx(0.5)
    assert top1_in_gold(labels.astype(np.float64), labels) == pytest.approx(1.0)


def test_micro_f1_counts_every_label_decision() -> None:
    labels = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.float32)
    # predicted at >= 0.5: (0,0) tp, (0,1) fp, (1,1) tp; gold (0,2) missed
    probabilities = np.array([[0.9, 0.5, 0.4], [0.1, 0.7, 0.2]])
    tp, fp, fn = 2, 1, 1
    assert micro_f1(probabilities, labels) == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert micro_f1(labels.astype(np.float64), labels) == pytest.approx(1.0)
    assert micro_f1(1.0 - labels.astype(np.float64), labels) == pytest.approx(0.0)


def test_micro_f1_with_nothing_predicted_or_gold_is_zero() -> None:
    nothing = np.zeros((2, 3))
    assert micro_f1(nothing, nothing.astype(np.float32)) == 0.0
