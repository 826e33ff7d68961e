"""Sampling at the speed the hardware allows: a decode loop over a preallocated KV cache.

`transformers.generate` spent about half of each CPU step outside the model (a full sort and a
full-vocabulary multinomial for top-p, the cache re-concatenated every token) and ran every
batch until its longest answer ended. This loop reuses the model's own modules (embeddings,
projections, norms, MLPs, rotary embedding, head) and adds only what generation needs:
- one preallocated key/value buffer per layer, written in place (no copy per token);
- finished answers leave the batch (the buffer is compacted when a quarter of its rows are
  done, so a batch costs what its live answers cost);
- top-k then top-p as transformers' warpers apply them (top-k first: a softmax over 50
  tokens, not 49,152; without top-k the nucleus is looked for in the top 256 tokens, then
  4,096, then the whole sorted vocabulary, so the draw stays exact), and one uniform per token
  against the nucleus's cumulative mass instead of a multinomial over the vocabulary.
Prompts of different lengths share a batch, left-padded, with a key mask. Llama-family models
only (SmolLM2 and the tests' tiny model); `tests/unit/llm/test_decoding.py` checks the logits
against the model's own forward.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

WIDTHS = (256, 4096)  # top-k widths searched for the nucleus before a full sort
COMPACT_BELOW = 0.75  # compact the batch when fewer than this share of its rows are live


# (answer indices, their tokens this step, whether each answer ended on it) -> answers to end
# after this token (a stop string seen, a shorter limit reached).
StepListener = Callable[[list[int], list[int], list[bool]], Collection[int]]


@dataclass(frozen=True)
class Generated:
    tokens: list[list[int]]  # per prompt row, in the order asked
    new_tokens: int
    seconds: float
    steps: int


class KVBuffer:
    """Keys and values of every layer for `rows` answers of at most `length` tokens."""

    def __init__(self, model: Any, rows: int, length: int, device: Any, dtype: Any) -> None:
        import torch

        config = model.config
        heads = config.num_key_value_heads
        dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        shape = (rows, heads, length, dim)
        layers = config.num_hidden_layers
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]

    def keep(self, rows: Any) -> None:
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]

    def expand(self, rows: Any) -> None:
        """Row i becomes the rows that `rows` maps to it (one prompt, many answers)."""
        self.keep(rows)


def forward(model: Any, ids: Any, positions: Any, cache: KVBuffer, start: int,
            key_mask: Any | None) -> Any:  # fmt: skip
    """Logits of the last position of `ids` (rows, new), whose keys and values are written at
    cache slots `start` on; `key_mask` (rows, slots) marks real tokens, None: no padding."""
    import torch
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    inner = model.model
    rows, new = ids.shape
    end = start + new
    hidden = inner.embed_tokens(ids)
    cos, sin = inner.rotary_emb(hidden, positions)
    mask = None
    if key_mask is not None:
        # Causal within the new block and never onto padding; every position sees itself, so
        # a padding position's (unused) output stays finite instead of a softmax over nothing.
        causal = torch.ones(new, end, dtype=torch.bool, device=ids.device).tril(start)
        itself = causal.triu(start)
        mask = (causal[None, None] & key_mask[:, None, None, :end]) | itself[None, None]
    for index, layer in enumerate(inner.layers):
        attention = layer.self_attn
        dim = attention.head_dim
        x = layer.input_layernorm(hidden)
        q = attention.q_proj(x).view(rows, new, -1, dim).transpose(1, 2)
        k = attention.k_proj(x).view(rows, new, -1, dim).transpose(1, 2)
        v = attention.v_proj(x).view(rows, new, -1, dim).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        cache.keys[index][:, :, start:end] = k
        cache.values[index][:, :, start:end] = v
        out = torch.nn.functional.scaled_dot_product_attention(
            q,
            cache.keys[index][:, :, :end],
            cache.values[index][:, :, :end],
            attn_mask=mask,
            is_causal=mask is None and new > 1,
            scale=attention.scaling,
            enable_gqa=True,
        )
        hidden = hidden + attention.o_proj(out.transpose(1, 2).reshape(rows, new, -1))
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    return model.lm_head(inner.norm(hidden[:, -1]))


def draw(logits: Any, temperature: float, top_k: int, top_p: float, generator: Any) -> Any:
    """One token per row: temperature, top-k (0: off), then nucleus (top-p) sampling, exactly
    as transformers' warpers apply them in that order.

    Without top-k the nucleus is looked for in each row's top 256 tokens, then its top 4,096,
    then the whole vocabulary sorted: a base model at temperature 1 often spreads 95% of its
    mass over a thousand tokens, and a full sort of every row costs more than the model's step.
    """
    import torch

    scaled = logits.float() / temperature
    vocabulary = scaled.shape[-1]
    if 0 < top_k < vocabulary:
        values, index = scaled.topk(top_k, dim=-1)
        top = torch.softmax(values, dim=-1)
        return _nucleus(top, index, top.cumsum(-1), top_p, generator)
    probs = torch.softmax(scaled, dim=-1)
    tokens = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    pending = torch.arange(probs.shape[0], device=probs.device)
    for k in (*(w for w in WIDTHS if w < vocabulary), vocabulary):
        rows = probs[pending]
        if k < vocabulary:
            top, index = rows.topk(k, dim=-1)
        else:
            top, index = torch.sort(rows, descending=True, dim=-1)
        cumulative = top.cumsum(-1)
        held = cumulative[:, -1] >= top_p if k < vocabulary else torch.ones_like(pending).bool()
        found = pending[held]
        tokens[found] = _nucleus(top[held], index[held], cumulative[held], top_p, generator)
        pending = pending[~held]
        if pending.numel() == 0:
            break
    return tokens


def _nucleus(top: Any, index: Any, cumulative: Any, top_p: float, generator: Any) -> Any:
    """The smallest top set whose mass reaches `top_p` (as transformers' TopPLogitsWarper
    keeps it, at least one token) and one draw from it by its cumulative mass."""
    import torch

    kept = torch.where(cumulative - top < top_p, top, torch.zeros_like(top))
    kept[:, 0] = top[:, 0]
    mass = kept.cumsum(-1)
    u = torch.rand(top.shape[0], 1, generator=generator, device=top.device) * mass[:, -1:]
    choice = torch.searchsorted(mass, u).clamp(max=top.shape[1] - 1)
    return index.gather(1, choice).squeeze(1)


def generate(
    model: Any,
    tokenizer: Any,
    chats: Sequence[str],
    counts: Sequence[int],
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: Any,
    stop_ids: Sequence[int],
    on_step: StepListener | None = None,
) -> Generated:
    """`counts[i]` answers to chat-formatted prompt i, in prompt order; an answer ends at the
    first stop token (not included) or after `max_new_tokens`. `generator` draws every token,
    so one seed gives one set of answers whatever else the process has done. `on_step` sees
    each step's tokens as they are drawn (streaming) and names answers to end there."""
    import torch

    device = next(model.parameters()).device if _has_parameters(model) else torch.device("cpu")
    started = time.perf_counter()
    tokenizer.padding_side = "left"
    batch = tokenizer(list(chats), return_tensors="pt", padding=True, add_special_tokens=False)
    prompt_ids = batch["input_ids"].to(device)
    prompt_mask = batch["attention_mask"].to(device).bool()
    width = prompt_ids.shape[1]
    length = width + max_new_tokens
    dtype = _activation_dtype(model)
    with torch.inference_mode():
        # Each distinct prompt is read once; its keys and values are then shared by its answers.
        cache = KVBuffer(model, len(chats), length, device, dtype)
        key_mask = torch.zeros(len(chats), length, dtype=torch.bool, device=device)
        key_mask[:, :width] = prompt_mask
        positions = (prompt_mask.long().cumsum(1) - 1).clamp(min=0)
        padded = not bool(prompt_mask.all())
        logits = forward(model, prompt_ids, positions, cache, 0, key_mask if padded else None)
        repeats = torch.tensor(list(counts), device=device)
        fan_out = torch.arange(len(chats), device=device).repeat_interleave(repeats)
        cache.expand(fan_out)
        key_mask, logits = key_mask[fan_out], logits[fan_out]
        position = positions[fan_out, -1:] + 1
        rows = torch.arange(len(fan_out), device=device)  # which answer each live row is
        stops = torch.tensor(sorted(set(stop_ids)), device=device)
        answers: list[list[int]] = [[] for _ in range(len(fan_out))]
        live = torch.ones(len(fan_out), dtype=torch.bool, device=device)
        new_tokens = steps = 0
        for step in range(max_new_tokens):
            steps += 1
            tokens = draw(logits, temperature, top_k, top_p, generator)
            finished = torch.isin(tokens, stops) | ~live
            if on_step is not None:
                ended = on_step(rows.tolist(), tokens.tolist(), finished.tolist())
                if ended:
                    finished |= torch.isin(rows, torch.tensor(sorted(ended), device=device))
            for row, token, done in zip(rows.tolist(), tokens.tolist(), finished.tolist(),
                                        strict=True):  # fmt: skip
                if not done:
                    answers[row].append(token)
            live = ~finished
            alive = int(live.sum())
            new_tokens += alive
            if alive == 0 or step == max_new_tokens - 1:
                break
            if alive < COMPACT_BELOW * len(rows):
                keep = live.nonzero().squeeze(1)
                cache.keep(keep)
                rows, tokens, live = rows[keep], tokens[keep], live[keep]
                key_mask, position = key_mask[keep], position[keep]
            slot = width + step
            key_mask[:, slot] = True
            mask = key_mask if padded else None
            logits = forward(model, tokens[:, None], position, cache, slot, mask)
            position = position + 1
    return Generated(answers, new_tokens, time.perf_counter() - started, steps)


def _has_parameters(model: Any) -> bool:
    return next(iter(model.parameters()), None) is not None


def _activation_dtype(model: Any) -> Any:
    """The dtype hidden states flow in (a dynamically quantised model computes in float32)."""
    import torch

    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.float32
