"""An LLM campaign's crowd: contributors and their contributions, no points."""

from __future__ import annotations

from crowdsft.vectors import crowd_snapshot, text_snapshot


def test_text_snapshot_groups_contributions_by_contributor_sorted() -> None:
    docs = [
        {"_id": "c3", "contributor_id": "bob", "response": "nice one"},
        {"_id": "c1", "contributor_id": "alice", "response": "[1, 2]"},
        {"_id": "c0", "contributor_id": "bob", "response": "so happy for you!"},
        {"_id": "c2", "contributor_id": "alice", "response": "not a vector"},
        {"_id": "c9", "contributor_id": "carol", "response": ""},
    ]
    snap = text_snapshot(docs)
    assert snap.contributor_ids == ["alice", "bob", "carol"]
    assert snap.contribution_ids == [["c1", "c2"], ["c0", "c3"], ["c9"]]
    assert snap.users.shape == (3, 0)
    assert snap.ignored == 0  # text is never "not data" here, unlike the vector backend
    assert crowd_snapshot(docs, 2).ignored == 4


def test_text_snapshot_of_nothing() -> None:
    snap = text_snapshot([])
    assert snap.contributor_ids == []
    assert snap.contribution_ids == []
    assert snap.users.shape == (0, 0)
