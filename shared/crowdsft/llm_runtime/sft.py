"""LoRA supervised fine-tuning on prompt/response pairs, loss on the response tokens only.

A plain loop rather than a Trainer: a round trains on a few dozen examples, and the loop is
short enough to read, weights each example (a contributor's points squared, as the vector
backend weights its centroid) and reports what the lineage records.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crowdsft.llm.config import SftHyperparameters
from crowdsft.llm_runtime.in_run import InRunValuation, InRunValues

IGNORE = -100


@dataclass(frozen=True)
class Example:
    prompt: str
    response: str
    weight: float = 1.0


@dataclass(frozen=True)
class SftReport:
    examples: int
    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    valuation: InRunValues | None = None

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0


def chat_prompt(tokenizer: Any, prompt: str) -> str:
    return chat_of(tokenizer, [{"role": "user", "content": prompt}])


def chat_of(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """A conversation as the model's chat template writes it, ready for the next answer."""
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def encode(tokenizer: Any, example: Example, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels: the prompt's labels are masked, the response ends with eos."""
    head = tokenizer(chat_prompt(tokenizer, example.prompt), add_special_tokens=False)["input_ids"]
    tail = tokenizer(example.response, add_special_tokens=False)["input_ids"]
    tail = [*tail, tokenizer.eos_token_id]
    ids = (head + tail)[:max_length]
    labels = ([IGNORE] * len(head) + tail)[:max_length]
    return ids, labels


def train_lora(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    hp: SftHyperparameters,
    value_against: Sequence[Example] = (),
    preconditioned: bool = False,
) -> tuple[Any, SftReport]:
    """The model wrapped with a freshly trained adapter, and what training did; with
    `value_against` (reference answers), each example's in-run value on their loss."""
    import torch
    from peft import LoraConfig, get_peft_model

    if not examples:
        raise ValueError("no examples to fine-tune on")
    torch.manual_seed(hp.seed)
    device = next(model.parameters()).device
    lora = LoraConfig(
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules=list(hp.target_modules),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    peft_model.train()
    encoded = [encode(tokenizer, e, hp.max_length) for e in examples]
    weights = torch.tensor([e.weight for e in examples], dtype=torch.float32)
    if float(weights.sum()) <= 0:
        raise ValueError("every example has weight 0: nothing to learn from")
    weights = weights / weights.mean()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=hp.learning_rate)
    order_rng = torch.Generator().manual_seed(hp.seed)
    valuation = None
    if value_against:
        references = [encode(tokenizer, e, hp.max_length) for e in value_against]
        valuation = InRunValuation(
            len(encoded),
            len(references),
            lambda rows: _own_losses(
                peft_model, [references[i] for i in rows], tokenizer.pad_token_id, device, False
            ),
            preconditioned,
        )
    losses: list[float] = []
    started = time.perf_counter()
    for _ in range(hp.epochs):
        order = torch.randperm(len(encoded), generator=order_rng).tolist()
        for start in range(0, len(order), hp.batch_size):
            batch = order[start : start + hp.batch_size]
            if valuation is not None:
                valuation.reference_gradient(peft_model, params)
            ids, labels, mask = _pad([encoded[i] for i in batch], tokenizer.pad_token_id)
            with _autocast(device):
                logits, first = _response_logits(peft_model, ids.to(device), labels,
                                                 mask.to(device))  # fmt: skip
            loss = _weighted_loss(logits, labels[:, first:].to(device), weights[batch].to(device))
            optimiser.zero_grad()
            loss.backward()
            if valuation is not None:
                shares = weights[batch] / weights[batch].sum().clamp(min=1e-12)
                valuation.score_step(
                    peft_model, optimiser, params, batch, shares.tolist(),
                    lambda rows: _own_losses(peft_model, [encoded[i] for i in rows],
                                             tokenizer.pad_token_id, device, False),
                )  # fmt: skip
            optimiser.step()
            losses.append(float(loss.detach()))
    values = valuation.finish(peft_model) if valuation is not None else None
    seconds = time.perf_counter() - started
    peft_model.eval()
    report = SftReport(
        len(examples) * hp.epochs, len(losses), seconds, losses[0], losses[-1], values
    )
    return peft_model, report


def reference_loss(
    model: Any, tokenizer: Any, references: Sequence[Example], max_length: int
) -> float:
    """The model's mean token loss on reference answers, averaged over the answers."""
    import torch

    device = next(model.parameters()).device
    rows = [encode(tokenizer, e, max_length) for e in references]
    model.eval()
    with torch.no_grad():
        return float(_own_losses(model, rows, tokenizer.pad_token_id, device).mean())


def _own_losses(model: Any, rows: list[tuple[list[int], list[int]]], pad_id: int,
                device: Any, fast: bool = True) -> Any:  # fmt: skip
    """Each row's mean token loss on its response; `fast=False` keeps float32 on a GPU too
    (the valuation's central differences would drown in bfloat16's rounding)."""
    import contextlib

    ids, labels, mask = _pad(rows, pad_id)
    with _autocast(device) if fast else contextlib.nullcontext():
        logits, first = _response_logits(model, ids.to(device), labels, mask.to(device))
    return _per_example_loss(logits, labels[:, first:].to(device))


def _response_logits(model: Any, ids: Any, labels: Any, mask: Any) -> tuple[Any, int]:
    """Logits from the position before the first response token on, and that position.

    The prompt's positions are masked out of the loss, and the head is a fifth of the model,
    so no logits are made for them. The tokens every example of the batch starts with (the
    chat template's system turn and, usually, the same prompt: two thirds of a short example)
    are read once, with batch 1, and their keys and values shared by every example: the same
    sums with the same gradients (they flow back through the shared positions from every
    example), at a third of the work. One difference: LoRA's dropout on those positions is
    drawn once for the batch instead of once per example.
    """
    import torch

    first = int((labels != IGNORE).int().argmax(1).min().clamp(min=1)) - 1
    shared = min(_common_prefix(ids), first)
    if shared == 0 or ids.shape[0] == 1:
        kept = torch.arange(first, ids.shape[1], device=ids.device)
        return model(input_ids=ids, attention_mask=mask, logits_to_keep=kept).logits, first
    prefix = model(input_ids=ids[:1, :shared], use_cache=True)
    cache = prefix.cache
    cache.batch_repeat_interleave(ids.shape[0])
    rest = ids[:, shared:]
    positions = torch.arange(shared, ids.shape[1], device=ids.device)[None].expand(ids.shape[0], -1)
    kept = torch.arange(first - shared, rest.shape[1], device=ids.device)
    out = model(input_ids=rest, attention_mask=mask, cache=cache,
                position_ids=positions, logits_to_keep=kept)  # fmt: skip
    return out.logits, first


def _common_prefix(ids: Any) -> int:
    """How many leading tokens every row of `ids` shares."""
    same = (ids == ids[:1]).all(0)
    return int(same.int().argmin()) if not bool(same.all()) else int(ids.shape[1])


def _autocast(device: Any) -> Any:
    """bfloat16 matrix products on a GPU; float32 on a CPU (no fast bfloat16 there)."""
    import contextlib

    import torch

    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _pad(rows: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (row_ids, row_labels) in enumerate(rows):
        ids[row, : len(row_ids)] = torch.tensor(row_ids)
        labels[row, : len(row_labels)] = torch.tensor(row_labels)
        mask[row, : len(row_ids)] = 1
    return ids, labels, mask


def _weighted_loss(logits: Any, labels: Any, weights: Any) -> Any:
    """Each example's mean token loss, weighted: a contributor's weight scales their pull."""
    per_example = _per_example_loss(logits, labels)
    # A batch of only zero-weight examples contributes nothing (not NaN).
    return (per_example * weights).sum() / weights.sum().clamp(min=1e-12)


def _per_example_loss(logits: Any, labels: Any) -> Any:
    import torch

    shifted = logits[:, :-1].float()
    targets = labels[:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        shifted.reshape(-1, shifted.size(-1)), targets.reshape(-1), reduction="none"
    ).view(targets.shape)
    counted = (targets != IGNORE).float()
    return (per_token * counted).sum(1) / counted.sum(1).clamp(min=1)
