"""Shared fixtures for the LLM path: the tiny base checkpoint (from the default model cache,
so its one-off build is reused across runs) and its tokenizer. Only tests that ask for them
import torch; the files that use them skip without the llm extra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    pytest.importorskip("peft")
    from crowdsft.llm_runtime.models import base_checkpoint

    return base_checkpoint("tiny")


@pytest.fixture
def tokenizer(tiny_checkpoint: Path) -> Any:
    """Fresh per test: `sample` sets `padding_side` on the tokenizer it is given."""
    from crowdsft.llm_runtime.models import load_tokenizer

    return load_tokenizer(tiny_checkpoint)
