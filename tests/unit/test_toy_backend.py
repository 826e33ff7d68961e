"""A backend registered from the tests runs a campaign through the round handlers: adding one
is its module and one registration, with no change to selection, training or scoring."""

from __future__ import annotations

import numpy as np

from crowdsft.domain.backends import BACKENDS
from crowdsft.domain.campaign import CampaignSpec, RoundPolicy
from crowdsft.domain.round import RoundStatus
from crowdsft.domain.steps import synthetic_crowd
from tests.support import toy_backend
from tests.support.world import World


def median_spec() -> CampaignSpec:
    crowd = synthetic_crowd(12, 2)
    return CampaignSpec.model_validate(
        {
            "campaign_id": "toy",
            "target": [float(x) for x in crowd.expert],
            "n_groups": 3,
            "backend": {"kind": "median", "step": 0.5},
            "policy": RoundPolicy(mode="auto", min_contributions=12, max_rounds=5),
            "seed": 2,
        }
    )


async def test_a_toy_backend_runs_a_campaign_on_the_handlers() -> None:
    assert BACKENDS.lookup("median").spec_type is toy_backend.MedianBackendSpec
    spec = median_spec()
    world = World()
    world.create(spec)
    ids = [f"u{i:02d}" for i in range(12)]
    users = synthetic_crowd(12, 2).users
    world.submit_points("toy", ids, users)
    await world.pump()
    rounds = [world.rounds.rounds[f"toy:r{i:05d}"] for i in range(5)]
    assert all(r.status is RoundStatus.SCORED for r in rounds)
    for done in rounds:
        assert done.decision is not None
        base = np.asarray(world.measurements.stored[done.base_model_id].position)
        for result in done.decision.candidates:
            members = users[done.members(result.group_index)]
            expected = base + 0.5 * (np.median(members, axis=0) - base)
            np.testing.assert_allclose(result.position, expected, atol=1e-12)
            entry = world.lineage.entries[result.model_id]
            assert entry.hyperparameters == {"step": 0.5}
            assert entry.artifact_ref == f"median:{result.model_id}"
    root = world.lineage.entries["toy:base"]
    assert root.artifact_ref == "median-root:toy"
    assert world.shapley_values.records["toy"].as_of_round_index == 4
