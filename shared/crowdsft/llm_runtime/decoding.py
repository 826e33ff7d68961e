"""Sampling at the speed the hardware allows: continuous batching over a preallocated KV cache.

`transformers.generate` spent about half of each CPU step outside the model and ran every
batch until its longest answer ended; a tuned model's answers are short and uneven, so most of
a static batch's slots idled. This loop reuses the model's own weights and adds only what
generation needs:
- each distinct prompt is read once; its keys and values are copied into a slot whenever one
  of its answers starts;
- at most `width` answers are decoded at a time, and a slot whose answer ended takes the next
  waiting answer at once (continuous batching), so the batch stays full until the work runs
  out; only then do finished rows leave it (compacted when a quarter of them are done);
- every answer draws from its own row of uniforms (`uniforms`), so an answer is a function of
  the model, its prompt, the seed and its index, not of which answers shared its batch;
- q/k/v and gate/up are one matrix product each, single-token attention is two batched
  products, and the head runs in slices of the vocabulary that stay in cache;
- top-k then top-p as transformers' warpers apply them (top-k first: a softmax over 50
  tokens, not 49,152; without top-k the nucleus is looked for in the top 256 tokens, then
  4,096, then the whole sorted vocabulary, so the draw stays exact).
Llama-family models only (SmolLM2 and the tests' tiny model); `tests/unit/llm/test_decoding.py`
checks the logits against the model's own forward.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

WIDTHS = (256, 4096)  # top-k widths searched for the nucleus before a full sort
COMPACT_BELOW = 0.75  # once nothing waits, compact when fewer than this share of rows live
HEAD_SLICE = 4_096  # vocabulary rows per head product: 4,096 x 576 floats stay in L2/L3
PACKED_FOR_ROWS = 64  # the batch the weights' layout is tuned for (any batch works)

# (answer indices, their tokens this step, whether each answer ended on it) -> answers to end
# after this token (a stop string seen, a shorter limit reached).
StepListener = Callable[[list[int], list[int], list[bool]], Collection[int]]


@dataclass(frozen=True)
class Generated:
    tokens: list[list[int]]  # per answer, in the order asked
    new_tokens: int
    seconds: float
    steps: int


def uniforms(generator: Any, answers: int, max_new_tokens: int) -> Any:
    """Each answer's draws, one row per answer: the order answers are decoded in, or who shares
    their batch, never changes which uniform a token is drawn with."""
    import torch

    device = generator.device
    return torch.rand(answers, max_new_tokens, generator=generator, device=device)


Product = Callable[[Any], Any]
# Each product and the projections it multiplies by at once (their outputs side by side).
PRODUCTS: dict[str, tuple[str, ...]] = {
    "qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "o_proj": ("self_attn.o_proj",),
    "gate_up": ("mlp.gate_proj", "mlp.up_proj"),
    "down_proj": ("mlp.down_proj",),
}


class _Layer:
    """One decoder layer's products: fused where the projections are plain float Linears."""

    def __init__(self, layer: Any, half: bool, path: str, base: _Layer | None,
                 changed: Collection[str]) -> None:  # fmt: skip
        attention, mlp = layer.self_attn, layer.mlp
        self.input_norm = layer.input_layernorm
        self.post_norm = layer.post_attention_layernorm
        self.head_dim = attention.head_dim
        self.scaling = attention.scaling
        self.q_width = attention.q_proj.out_features
        self.kv_width = attention.k_proj.out_features
        self.act = mlp.act_fn

        def made(name: str) -> Product:
            parts = PRODUCTS[name]
            if base is not None and not any(f"{path}.{part}" in changed for part in parts):
                kept: Product = getattr(base, name)  # the same weights: the same layout
                return kept
            return _product([layer.get_submodule(part) for part in parts], half)

        self.qkv, self.o_proj = made("qkv"), made("o_proj")
        self.gate_up, self.down_proj = made("gate_up"), made("down_proj")

    def project(self, x: Any) -> tuple[Any, Any, Any]:
        q, k, v = self.qkv(x).split([self.q_width, self.kv_width, self.kv_width], dim=-1)
        return q, k, v

    def mlp(self, x: Any) -> Any:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down_proj(self.act(gate) * up)


def _product(linears: list[Any], half: bool) -> Product:
    """One matrix product for Linears of the same input (their outputs side by side); each
    module's own call where they are not plain float Linears (a quantised sampler)."""
    import torch

    if all(type(m) is torch.nn.Linear and m.bias is None for m in linears):
        return _matrix(torch.cat([m.weight.detach() for m in linears]), half)
    return lambda x: torch.cat([m(x) for m in linears], dim=-1)


def _matrix(weight: Any, half: bool) -> Product:
    """`x @ weight.T`, summed in float32. On a CPU the weight is laid out once for the
    library that multiplies it: MKL packs a plain matrix again on every call, and at a few
    dozen rows that packing (a pass over weights that do not fit in cache) cost about a fifth
    of each product. `half`: the weight is kept in float16 (fbgemm's kernel widens it to
    float32 as it multiplies), half the bytes to stream and about 25% faster here."""
    import torch

    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        if half:
            raise ValueError("float16 weights are a CPU layout; use bfloat16 on a GPU")
        return lambda x: torch.nn.functional.linear(x, weight)
    if half:
        packed = torch.ops.quantized.linear_prepack_fp16(weight, None)
        return lambda x: torch.ops.quantized.linear_dynamic_fp16(x, packed)
    if _onednn():
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, PACKED_FOR_ROWS)
        return lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
    return lambda x: torch.nn.functional.linear(x, weight)


def _onednn() -> bool:
    import torch

    return bool(torch.backends.mkldnn.is_available()) and hasattr(
        torch.ops.mkldnn, "_linear_pointwise"
    )


class Weights:
    """A model's weights laid out for decoding. Built once per model and kept beside it; the
    model must not change afterwards (sampling models never do), which `fresh` checks.

    Laying out 135M weights takes seconds (oneDNN's reorder, fbgemm's float16 packing); a
    LoRA candidate differs from its base only in the adapted projections, so `base` and
    `changed` (the module paths that differ) let it reuse the base's layout for the rest."""

    def __init__(self, model: Any, half: bool = False, base: Weights | None = None,
                 changed: Collection[str] = ()) -> None:  # fmt: skip
        import torch

        inner = model.model
        self.config = model.config
        self.embed = inner.embed_tokens
        self.rotary = inner.rotary_emb
        self.norm = inner.norm
        self.layers: list[_Layer] = [
            _Layer(layer, half, f"model.layers.{i}", base.layers[i] if base else None, changed)
            for i, layer in enumerate(inner.layers)
        ]
        head = model.lm_head
        if base is not None and not {"lm_head", "model.embed_tokens"} & set(changed):
            self.head: Product = base.head
        elif type(head) is torch.nn.Linear and head.bias is None:
            slices = [_matrix(part, half) for part in head.weight.detach().split(HEAD_SLICE)]
            self.head = lambda x: torch.cat([s(x) for s in slices], -1)
        else:
            self.head = head
        self._versions = _versions(model)

    def fresh(self, model: Any) -> bool:
        return _versions(model) == self._versions


def _versions(model: Any) -> int:
    return sum(p._version for p in model.parameters())


_WEIGHTS: weakref.WeakKeyDictionary[Any, dict[bool, Weights]] = weakref.WeakKeyDictionary()


def weights_of(model: Any, half: bool = False) -> Weights:
    """The model's decoding layout (`half`: float16 weights), built on first use and kept
    while the model lives."""
    layouts = _WEIGHTS.setdefault(model, {})
    kept = layouts.get(half)
    if kept is None or not kept.fresh(model):
        kept = layouts[half] = Weights(model, half)
    return kept


def derive_weights(model: Any, base: Any) -> None:
    """Give `model` the layouts `base` has, rebuilding only the products whose weights differ
    (a merged LoRA changes a few projections; the rest of 135M weights is laid out again in
    seconds otherwise). What differs is found by comparing the weights themselves."""
    import torch

    theirs = dict(base.named_parameters())
    changed = {
        name.rpartition(".")[0]
        for name, mine in model.named_parameters()
        if name not in theirs or not torch.equal(mine, theirs[name])
    }
    for half, layout in list(_WEIGHTS.get(base, {}).items()):
        if layout.fresh(base):
            _WEIGHTS.setdefault(model, {})[half] = Weights(model, half, layout, changed)


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

    def load(self, rows: Any, prompts: KVBuffer, sources: Any) -> None:
        """Rows `rows` start over with the prompts `sources` (rows of `prompts`) read."""
        width = prompts.keys[0].shape[2]
        for mine, theirs in ((self.keys, prompts.keys), (self.values, prompts.values)):
            for layer, source in zip(mine, theirs, strict=True):
                layer[rows, :, :width] = source[sources]


def forward(weights: Weights, ids: Any, positions: Any, cache: KVBuffer, start: int,
            key_mask: Any | None) -> Any:  # fmt: skip
    """Logits of the last position of `ids` (rows, new), whose keys and values are written at
    cache slots `start` on; `key_mask` (rows, slots) marks real tokens, None: no padding."""
    import torch
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    rows, new = ids.shape
    end = start + new
    hidden = weights.embed(ids)
    cos, sin = weights.rotary(hidden, positions)
    mask = None
    if key_mask is not None:
        # Causal within the new block and never onto padding; every position sees itself, so
        # a padding position's (unused) output stays finite instead of a softmax over nothing.
        causal = torch.ones(new, end, dtype=torch.bool, device=ids.device).tril(start)
        itself = causal.triu(start)
        mask = (causal[None, None] & key_mask[:, None, None, :end]) | itself[None, None]
    for index, layer in enumerate(weights.layers):
        dim = layer.head_dim
        x = layer.input_norm(hidden)
        q, k, v = (part.reshape(rows, new, -1, dim).transpose(1, 2) for part in layer.project(x))
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        cache.keys[index][:, :, start:end] = k
        cache.values[index][:, :, start:end] = v
        out = torch.nn.functional.scaled_dot_product_attention(
            q,
            cache.keys[index][:, :, :end],
            cache.values[index][:, :, :end],
            attn_mask=mask,
            is_causal=mask is None and new > 1,
            scale=layer.scaling,
            enable_gqa=True,
        )
        hidden = hidden + layer.o_proj(out.transpose(1, 2).reshape(rows, new, -1))
        hidden = hidden + layer.mlp(layer.post_norm(hidden))
    return weights.head(weights.norm(hidden[:, -1]))


def step(weights: Weights, tokens: Any, positions: Any, cache: KVBuffer, slots: Any,
         key_mask: Any) -> Any:  # fmt: skip
    """Logits after one new token per row: row r's token sits at `positions[r]` and its keys
    and values go to cache slot `slots[r]`; `key_mask` (rows, end) marks what each row sees."""
    import torch

    rows = tokens.shape[0]
    end = key_mask.shape[1]
    every = torch.arange(rows, device=tokens.device)
    hidden = weights.embed(tokens)  # (rows, hidden)
    cos, sin = weights.rotary(hidden, positions[:, None])  # (rows, 1, dim)
    blocked = ~key_mask[:, None, None, :]
    for index, layer in enumerate(weights.layers):
        dim = layer.head_dim
        x = layer.input_norm(hidden)
        qkv = layer.qkv(x)
        # q and k side by side are rotated as one (rows, heads + kv heads, dim) block.
        qk = _rotated(qkv[:, : layer.q_width + layer.kv_width].reshape(rows, -1, dim), cos, sin)
        q, k = qk[:, : layer.q_width // dim], qk[:, layer.q_width // dim :]
        v = qkv[:, layer.q_width + layer.kv_width :].reshape(rows, -1, dim)
        keys, values = cache.keys[index], cache.values[index]
        keys[every, :, slots] = k
        values[every, :, slots] = v
        groups = keys.shape[1]
        # Each key/value head serves consecutive query heads (as transformers' repeat_kv).
        grouped = q.reshape(rows, groups, -1, dim)
        scores = torch.matmul(grouped, keys[:, :, :end].transpose(-1, -2)) * layer.scaling
        scores = scores.masked_fill(blocked, float("-inf")).softmax(dim=-1)
        out = torch.matmul(scores, values[:, :, :end]).reshape(rows, -1)
        hidden = hidden + layer.o_proj(out)
        hidden = hidden + layer.mlp(layer.post_norm(hidden))
    return weights.head(weights.norm(hidden))


def _rotated(x: Any, cos: Any, sin: Any) -> Any:
    """Rotary embedding of (rows, heads, dim) at each row's position (cos, sin: rows, 1, dim)."""
    import torch

    half = x.shape[-1] // 2
    turned = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + turned * sin


def draw(logits: Any, temperature: float, top_k: int, top_p: float, u: Any) -> Any:
    """One token per row: temperature, top-k (0: off), then nucleus (top-p) sampling, exactly
    as transformers' warpers apply them in that order; row r draws with the uniform `u[r]`.

    Without top-k the nucleus is looked for in each row's top 256 tokens, then its top 4,096,
    then the whole vocabulary sorted: a base model at temperature 1 often spreads 95% of its
    mass over a thousand tokens, and a full sort of every row costs more than the model's step.
    """
    import torch

    scaled = logits.float() if temperature == 1.0 else logits.float() / temperature
    vocabulary = scaled.shape[-1]
    if 0 < top_k < vocabulary:
        values, index = scaled.topk(top_k, dim=-1)
        top = torch.softmax(values, dim=-1)
        return _nucleus(top, index, top.cumsum(-1), top_p, u)
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
        tokens[found] = _nucleus(top[held], index[held], cumulative[held], top_p, u[found])
        pending = pending[~held]
        if pending.numel() == 0:
            break
    return tokens


def _nucleus(top: Any, index: Any, cumulative: Any, top_p: float, u: Any) -> Any:
    """The smallest top set whose mass reaches `top_p` (as transformers' TopPLogitsWarper
    keeps it, at least one token) and one draw from it by its cumulative mass."""
    import torch

    kept = torch.where(cumulative - top < top_p, top, torch.zeros_like(top))
    kept[:, 0] = top[:, 0]
    mass = kept.cumsum(-1)
    point = u.to(mass.dtype)[:, None] * mass[:, -1:]
    choice = torch.searchsorted(mass, point).clamp(max=top.shape[1] - 1)
    return index.gather(1, choice).squeeze(1)


class _Slots:
    """The rows being decoded: which answer each holds (-1: free) and how far it has got."""

    def __init__(self, rows: int, length: int, vocabulary: int, device: Any) -> None:
        import torch

        self.answer = torch.full((rows,), -1, dtype=torch.long, device=device)
        self.done = torch.zeros(rows, dtype=torch.long, device=device)  # tokens so far
        self.prompt = torch.zeros(rows, dtype=torch.long, device=device)
        self.key_mask = torch.zeros(rows, length, dtype=torch.bool, device=device)
        self.logits = torch.zeros(rows, vocabulary, device=device)

    def keep(self, rows: Any) -> None:
        for name in ("answer", "done", "prompt", "key_mask", "logits"):
            setattr(self, name, getattr(self, name)[rows])


def generate(
    model: Any,
    tokenizer: Any,
    chats: Sequence[str],
    counts: Sequence[int],
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    draws: Any,
    stop_ids: Sequence[int],
    on_step: StepListener | None = None,
    width: int | None = None,
    half_weights: bool = False,
) -> Generated:
    """`counts[i]` answers to chat-formatted prompt i, in prompt order; an answer ends at the
    first stop token (not included) or after `max_new_tokens`. Answer a's t-th token is drawn
    with `draws[a, t]` (`uniforms`). At most `width` answers (default: all) are decoded at
    once. `on_step` sees each step's tokens as they are drawn (streaming) and names answers to
    end there. `half_weights`: multiply by float16 copies of the weights (a CPU layout)."""
    import torch

    weights = weights_of(model, half_weights)
    device = next(model.parameters()).device if _has_parameters(model) else torch.device("cpu")
    started = time.perf_counter()
    total = sum(counts)
    if tuple(draws.shape) != (total, max_new_tokens):
        raise ValueError(f"draws are {tuple(draws.shape)}, not ({total}, {max_new_tokens})")
    tokenizer.padding_side = "left"
    batch = tokenizer(list(chats), return_tensors="pt", padding=True, add_special_tokens=False)
    prompt_ids = batch["input_ids"].to(device)
    prompt_mask = batch["attention_mask"].to(device).bool()
    prompt_width = prompt_ids.shape[1]
    dtype = _activation_dtype(model)
    answers: list[list[int]] = [[] for _ in range(total)]
    new_tokens = steps = 0
    with torch.inference_mode():
        prompts = KVBuffer(model, len(chats), prompt_width, device, dtype)
        positions = (prompt_mask.long().cumsum(1) - 1).clamp(min=0)
        padded = not bool(prompt_mask.all())
        first_logits = forward(weights, prompt_ids, positions, prompts, 0,
                               prompt_mask if padded else None)  # fmt: skip
        lengths = prompt_mask.sum(1)
        owner = torch.arange(len(chats), device=device).repeat_interleave(
            torch.tensor(list(counts), device=device)
        )
        rows = min(width or total, total)
        cache = KVBuffer(model, rows, prompt_width + max_new_tokens, device, dtype)
        slots = _Slots(rows, prompt_width + max_new_tokens, first_logits.shape[-1], device)
        stops = torch.tensor(sorted(set(stop_ids)), device=device)
        waiting = 0  # the next answer to start
        while True:
            free = (slots.answer < 0).nonzero().squeeze(1)[: total - waiting]
            if free.numel():
                starting = torch.arange(waiting, waiting + free.numel(), device=device)
                waiting += free.numel()
                prompt = owner[starting]
                cache.load(free, prompts, prompt)
                slots.answer[free], slots.done[free], slots.prompt[free] = starting, 0, prompt
                slots.key_mask[free] = False
                slots.key_mask[free, :prompt_width] = prompt_mask[prompt]
                slots.logits[free] = first_logits[prompt]
            live = slots.answer >= 0
            alive = int(live.sum())
            if alive == 0:
                break
            if waiting == total and alive < COMPACT_BELOW * len(live):
                kept = live.nonzero().squeeze(1)
                cache.keep(kept)
                slots.keep(kept)
                live = live[kept]
            steps += 1
            at = live.nonzero().squeeze(1)
            who = slots.answer[at]
            logits = slots.logits if alive == len(live) else slots.logits[at]
            tokens = draw(logits, temperature, top_k, top_p, draws[who, slots.done[at]])
            stopped = torch.isin(tokens, stops)
            ended = stopped.clone()
            if on_step is not None:
                asked = on_step(who.tolist(), tokens.tolist(), stopped.tolist())
                ended |= torch.isin(who, torch.tensor(sorted(asked), device=device))
            for answer, token, over in zip(who.tolist(), tokens.tolist(), stopped.tolist(),
                                           strict=True):  # fmt: skip
                if not over:
                    answers[answer].append(token)
            new_tokens += int((~stopped).sum())
            slots.done[at] += (~stopped).long()
            ended |= slots.done[at] >= max_new_tokens
            slots.answer[at[ended]] = -1
            going = at[~ended]
            if going.numel() == 0 and waiting == total:
                break
            # Every row steps (a freed row's result is never read: it restarts from a prompt).
            fed = torch.zeros(len(slots.answer), dtype=torch.long, device=device)
            fed[at] = tokens
            last = (slots.done - 1).clamp(min=0)
            slot = prompt_width + last
            slots.key_mask[going, slot[going]] = True
            end = prompt_width + int(slots.done.max())
            slots.logits = step(weights, fed, lengths[slots.prompt] + last, cache, slot,
                                slots.key_mask[:, :end])  # fmt: skip
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
