"""`phi` embeddings: MiniLM sentence vectors and the emotion head's missing-file message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("peft")
pytest.importorskip("sentence_transformers")

from crowdsft.llm.config import PHI_DIMS
from crowdsft.llm_runtime.phi import MiniLM, head_dir, load_phi


@pytest.fixture(scope="module")
def minilm() -> MiniLM:
    phi = load_phi("minilm")
    assert isinstance(phi, MiniLM)
    return phi


def test_minilm_embeds_to_its_dimension(minilm: MiniLM) -> None:
    texts = ["so happy for you!", "this is awful.", ""]
    vectors = minilm.embed(texts)
    assert minilm.dim == PHI_DIMS["minilm"] == 384
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float64
    assert np.isfinite(vectors).all()
    # deterministic: the same text lands on the same point
    np.testing.assert_allclose(minilm.embed(texts[:1])[0], vectors[0], atol=1e-5)


def test_similar_sentences_are_closer_than_unrelated_ones(minilm: MiniLM) -> None:
    happy, glad, tax = minilm.embed(
        [
            "Congratulations, I am so happy for you!",
            "I'm really glad for you, congrats!",
            "The quarterly tax filing deadline for corporations is in April.",
        ]
    )
    assert np.linalg.norm(happy - glad) < np.linalg.norm(happy - tax)
    assert np.linalg.norm(happy - glad) < np.linalg.norm(glad - tax)


def test_load_phi_is_one_instance_per_process(minilm: MiniLM) -> None:
    assert load_phi("minilm") is minilm


def test_emotion_without_a_head_says_how_to_train_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="crowdsft phi train-emotion") as raised:
        load_phi("emotion", cache=tmp_path)
    assert str(head_dir(tmp_path)) in str(raised.value)
    assert not head_dir(tmp_path).exists()


def test_unknown_phi_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown phi 'sentiment'"):
        load_phi("sentiment")
