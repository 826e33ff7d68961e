"""The artifact store: key validation, atomic first-writer-wins publish, references."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from crowdsft.adapters.artifact_store import ArtifactStore
from crowdsft.domain.ids import key_of, model_key, ref_of


def write_text(text: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / "weights.txt").write_text(text)

    return write


@pytest.mark.parametrize(
    "key",
    [
        "",
        "..",
        "a/../b",
        "../escape",
        "a//b",
        "/abs",
        "trailing/",
        "a/./../b/..",
        "with space",
        "semi;colon",
        "a\\b",
    ],
)
def test_bad_keys_are_refused(tmp_path: Path, key: str) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(ValueError, match="bad artifact key"):
        store.path(key)
    with pytest.raises(ValueError):
        store.publish(key, write_text("x"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["a", "camp/r00001/g0/adapter", "v1.2/x_y-z", "a/.hidden"])
def test_good_keys_stay_under_the_root(tmp_path: Path, key: str) -> None:
    store = ArtifactStore(tmp_path)
    path = store.path(key)
    assert path == tmp_path.resolve() / key
    assert path.resolve().is_relative_to(tmp_path.resolve())


def test_publish_writes_once_and_keeps_the_first(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    key = "camp/r00001/g0/adapter"
    assert not store.exists(key)
    first = store.publish(key, write_text("first"))
    assert store.exists(key)
    assert first == store.path(key)
    assert (first / "weights.txt").read_text() == "first"

    calls: list[Path] = []

    def second(folder: Path) -> None:
        calls.append(folder)
        (folder / "weights.txt").write_text("second")

    again = store.publish(key, second)
    assert again == first
    assert calls == []  # an existing artifact is not even rebuilt
    assert (first / "weights.txt").read_text() == "first"


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)

    def broken(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"\0" * 10)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        store.publish("camp/g0", broken)
    assert not store.exists("camp/g0")
    # No half-written staging folder is left in the parent either.
    assert list((tmp_path / "camp").iterdir()) == []
    # and the key can still be published afterwards
    store.publish("camp/g0", write_text("ok"))
    assert (store.path("camp/g0") / "weights.txt").read_text() == "ok"


def test_losing_a_race_keeps_the_winner(tmp_path: Path) -> None:
    """Another writer publishes the key while ours is being written: theirs stays."""
    store = ArtifactStore(tmp_path)
    key = "camp/g1"

    def slow(folder: Path) -> None:
        store.publish(key, write_text("winner"))  # the other writer finishes first
        (folder / "weights.txt").write_text("loser")

    path = store.publish(key, slow)
    assert (path / "weights.txt").read_text() == "winner"
    assert sorted(p.name for p in path.parent.iterdir()) == ["g1"]


def test_root_is_expanded_and_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    store = ArtifactStore(Path("~/artifacts/../artifacts"))
    assert store.root == (tmp_path / "artifacts").resolve()


def test_model_key_and_references() -> None:
    key = model_key("camp:r00003:g1")
    assert key == "camp/r00003/g1/adapter"
    assert model_key("camp:r00003:g1", kind="merged") == "camp/r00003/g1/merged"
    ref = ref_of(key)
    assert ref == "artifact:camp/r00003/g1/adapter"
    assert key_of(ref) == key
    with pytest.raises(ValueError, match="not an artifact reference"):
        key_of("base:tiny")
    with pytest.raises(ValueError):
        key_of(key)


def test_model_key_is_a_valid_store_key(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    path = store.path(model_key("my-campaign:r00012:g3"))
    assert path.relative_to(tmp_path.resolve()).parts == ("my-campaign", "r00012", "g3", "adapter")
