"""Trained artifacts (LoRA adapters) as folders under one root, referenced from the lineage.

The root is a setting: a local folder by default, a shared volume (or a mounted object store)
when Ray workers on several machines write and read the same artifacts. A folder appears by
an atomic rename, and an existing one is never replaced: a replayed training request keeps
the first adapter, as MongoDB keeps the first artifact document. Keys and references are
derived from model ids in `crowdsft.domain.ids`.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.@~-]+(/[A-Za-z0-9_.@~-]+)*$")


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    def path(self, key: str) -> Path:
        if not KEY_PATTERN.fullmatch(key) or {".", ".."} & set(key.split("/")):
            raise ValueError(f"bad artifact key {key!r}")
        return self.root / key

    def exists(self, key: str) -> bool:
        return self.path(key).is_dir()

    def publish(self, key: str, write: Callable[[Path], None]) -> Path:
        """`write` fills a fresh folder; it becomes `key` unless `key` exists already."""
        final = self.path(key)
        if final.is_dir():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        try:
            write(staging)
            try:
                staging.rename(final)
            except OSError:
                if not final.is_dir():
                    raise  # not the benign race where another writer got there first
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final
