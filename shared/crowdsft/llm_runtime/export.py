"""A lineage's model written as a standard checkpoint (or its last adapter in PEFT format)."""

from __future__ import annotations

import shutil
from pathlib import Path

from crowdsft.llm_runtime.jobs import ModelRef, Workspace
from crowdsft.llm_runtime.models import base_checkpoint, load_model, load_tokenizer


def write_model(ref: ModelRef, workspace: Workspace, out: Path, merged: bool, card: str) -> Path:
    """`merged`: the base with every adapter merged, saved with its tokenizer, so
    `AutoModelForCausalLM.from_pretrained(out)` loads it; else the newest adapter's folder."""
    store = workspace.store()
    checkpoint = base_checkpoint(ref.base, workspace.cache())
    out.mkdir(parents=True, exist_ok=True)
    if merged:
        model = load_model(checkpoint, [store.path(key) for key in ref.adapters])
        model.save_pretrained(out)
        load_tokenizer(checkpoint).save_pretrained(out)
    else:
        if not ref.adapters:
            raise ValueError("the campaign's base model has no adapter; export it --merged")
        shutil.copytree(store.path(ref.adapters[-1]), out, dirs_exist_ok=True)
    (out / "README.md").write_text(card)
    return out
