"""An LLM campaign's crowd: contributors and their contributions, no points."""

from __future__ import annotations

from crowdsft.domain.crowd import Contribution, crowd_snapshot, text_snapshot


def test_text_snapshot_groups_contributions_by_contributor_sorted() -> None:
    docs = [
        Contribution("c3", "bob", "p", "nice one"),
        Contribution("c1", "alice", "p", "[1, 2]"),
        Contribution("c0", "bob", "p", "so happy for you!"),
        Contribution("c2", "alice", "p", "not a vector"),
        Contribution("c9", "carol", "p", ""),
    ]
    snap = text_snapshot(docs)
    assert snap.contributor_ids == ["alice", "bob", "carol"]
    assert snap.contribution_ids == [["c1", "c2"], ["c0", "c3"], ["c9"]]
    assert snap.users is None  # placed by training, not at the round's opening
    assert snap.ignored == 0  # text is never "not data" here, unlike the vector backend
    assert crowd_snapshot(docs, 2).ignored == 4


def test_text_snapshot_of_nothing() -> None:
    snap = text_snapshot([])
    assert snap.contributor_ids == []
    assert snap.contribution_ids == []
    assert snap.users is None
