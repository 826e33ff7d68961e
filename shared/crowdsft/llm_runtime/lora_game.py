"""The game a `lora` round really plays, as the ground truth of every cheaper valuation.

A coalition's value is how much a LoRA fine-tune on its members' texts, from the round's base
and with the campaign's settings, lowers the loss of the model on the campaign's reference
answers (the empty coalition's is 0). Every value is one fine-tune, so a coalition is trained
once and remembered; the engine's estimators (exact enumeration, permutation sampling) play it
through the `Game` protocol.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crowdsft.engine.shapley.game import BoolArray, FloatArray
from crowdsft.llm.config import SftHyperparameters
from crowdsft.llm_runtime.sft import Example, reference_loss, train_lora


@dataclass
class LoraGame:
    """`values` trains one adapter per coalition not seen before; `seconds` is their cost."""

    base: Any
    tokenizer: Any
    texts: Sequence[Sequence[Example]]  # each player's examples
    references: Sequence[Example]
    hp: SftHyperparameters
    trained: int = 0
    seconds: float = 0.0
    _known: dict[tuple[int, ...], float] = field(default_factory=dict, repr=False)
    _base_loss: float | None = field(default=None, repr=False)

    @property
    def n_players(self) -> int:
        return len(self.texts)

    @property
    def base_loss(self) -> float:
        if self._base_loss is None:
            self._base_loss = reference_loss(
                self.base, self.tokenizer, self.references, self.hp.max_length
            )
        return self._base_loss

    def values(self, masks: BoolArray) -> FloatArray:
        rows = np.asarray(masks, dtype=bool).reshape(-1, self.n_players)
        return np.asarray([self.value(np.flatnonzero(row).tolist()) for row in rows])

    def value(self, members: Sequence[int]) -> float:
        key = tuple(sorted(members))
        if key not in self._known:
            self._known[key] = self._train(key) if key else 0.0
        return self._known[key]

    def _train(self, members: tuple[int, ...]) -> float:
        started = time.perf_counter()
        examples = [e for player in members for e in self.texts[player]]
        tuned, _ = train_lora(copy.deepcopy(self.base), self.tokenizer, examples, self.hp)
        loss = reference_loss(tuned, self.tokenizer, self.references, self.hp.max_length)
        self.trained += 1
        self.seconds += time.perf_counter() - started
        return self.base_loss - loss
