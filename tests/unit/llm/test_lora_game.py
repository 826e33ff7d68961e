"""The LoRA game: a coalition is worth what a fine-tune on its texts does to the reference loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("peft")

from crowdsft.engine.shapley.estimators import exact_shapley
from crowdsft.llm.config import SftHyperparameters
from crowdsft.llm_runtime.lora_game import LoraGame
from crowdsft.llm_runtime.models import load_model
from crowdsft.llm_runtime.sft import Example, reference_loss, train_lora

PROMPT = "write a reddit comment."
PLAYERS = [
    [Example(PROMPT, "so happy for you, congrats!")],
    [Example(PROMPT, "thank you, this made my day.")],
    [Example(PROMPT, "error 404 page not found")],
]
REFERENCES = [Example(PROMPT, "congrats, so happy for you!"), Example(PROMPT, "made my day!")]
HP = SftHyperparameters(lora_r=4, lora_alpha=8, epochs=2, learning_rate=5e-4, batch_size=2)


def test_values_are_fine_tunes_remembered_and_shapley_adds_up_to_the_whole(
    tiny_checkpoint: Path, tokenizer: Any
) -> None:
    base = load_model(tiny_checkpoint).eval()
    game = LoraGame(base, tokenizer, PLAYERS, REFERENCES, HP)
    assert game.value([]) == 0.0 and game.trained == 0
    both = game.value([1, 0])
    assert game.value([0, 1]) == both and game.trained == 1  # one fine-tune per coalition
    tuned, _ = train_lora(load_model(tiny_checkpoint), tokenizer, PLAYERS[0] + PLAYERS[1], HP)
    expected = reference_loss(base, tokenizer, REFERENCES, HP.max_length) - reference_loss(
        tuned, tokenizer, REFERENCES, HP.max_length
    )
    assert both == pytest.approx(expected, rel=1e-5)
    values = exact_shapley(game).values
    assert game.trained == 2**3 - 1  # every non-empty coalition once
    assert values.sum() == pytest.approx(game.value([0, 1, 2]), rel=1e-9)
    assert np.argmax(values) in (0, 1)  # an on-target text is worth the most
