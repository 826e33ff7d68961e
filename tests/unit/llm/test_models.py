"""Base checkpoints in the model cache, and LoRA adapter chains merged into a plain model."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("peft")

import torch
from peft import LoraConfig, get_peft_model

from crowdsft.adapters.artifact_store import ArtifactStore
from crowdsft.llm_runtime.models import (
    base_checkpoint,
    default_cache,
    load_model,
)

TEXTS = ["write a reddit comment.", "so happy for you! congrats on the new job"]


def test_default_cache_follows_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDSFT_MODEL_CACHE", str(tmp_path / "models"))
    assert default_cache() == tmp_path / "models"
    monkeypatch.delenv("CROWDSFT_MODEL_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache() == tmp_path / ".cache" / "crowdsft" / "models"


def test_cached_checkpoint_is_returned_without_building(tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert base_checkpoint("tiny", tmp_path) == folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no lock, no staging


def test_failed_build_leaves_no_checkpoint(tmp_path: Path) -> None:
    def broken(out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError, match="conversion failed"):
        ArtifactStore(tmp_path).publish("tiny", broken)  # how base_checkpoint builds
    assert list(tmp_path.iterdir()) == []


def test_tiny_checkpoint_is_small_and_uses_smollm2s_tokenizer(
    tiny_checkpoint: Path, tokenizer: Any
) -> None:
    if "CROWDSFT_MODEL_CACHE" not in os.environ:
        assert tiny_checkpoint == Path("~/.cache/crowdsft/models/tiny").expanduser()
    assert base_checkpoint("tiny") == tiny_checkpoint  # cached: same folder, instantly
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    assert config["num_hidden_layers"] == 2
    assert config["hidden_size"] == 64
    assert config["vocab_size"] == len(tokenizer)
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token_id is not None
    assert "<|im_start|>" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False
    )
    model = load_model(tiny_checkpoint)
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    assert next(model.parameters()).dtype == torch.float32


def logits(model: Any, tokenizer: Any) -> torch.Tensor:
    tokenizer.padding_side = "right"
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def wrap_with_random_adapter(model: Any, seed: int) -> Any:
    """A LoRA adapter whose B matrices are not zero, so it changes the model."""
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["q_proj", "v_proj", "down_proj"],
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    return peft_model


def test_adapter_chain_merges_to_the_peft_models_logits(
    tiny_checkpoint: Path, tokenizer: Any, tmp_path: Path
) -> None:
    base_logits = logits(load_model(tiny_checkpoint), tokenizer)

    first = wrap_with_random_adapter(load_model(tiny_checkpoint), seed=1)
    first_logits = logits(first, tokenizer)
    first.save_pretrained(tmp_path / "a1")

    merged_one = load_model(tiny_checkpoint, [tmp_path / "a1"])
    assert not any("lora" in name for name, _ in merged_one.named_parameters())
    assert (first_logits - base_logits).abs().max() > 1e-2  # the adapter matters
    torch.testing.assert_close(logits(merged_one, tokenizer), first_logits, atol=1e-4, rtol=1e-4)

    # The next round trains on the merged model; its adapter stacks on the first.
    second = wrap_with_random_adapter(merged_one, seed=2)
    second_logits = logits(second, tokenizer)
    second.save_pretrained(tmp_path / "a2")

    chain = load_model(tiny_checkpoint, [tmp_path / "a1", tmp_path / "a2"])
    torch.testing.assert_close(logits(chain, tokenizer), second_logits, atol=1e-4, rtol=1e-4)
    assert (second_logits - first_logits).abs().max() > 1e-2
    # Neither adapter alone gives the chain's model.
    only_second = logits(load_model(tiny_checkpoint, [tmp_path / "a2"]), tokenizer)
    assert (only_second - second_logits).abs().max() > 1e-2
    # Loading leaves the base checkpoint itself alone.
    torch.testing.assert_close(logits(load_model(tiny_checkpoint), tokenizer), base_logits)
