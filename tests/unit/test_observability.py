"""Probes, metrics and the partition rule, without a broker or a store."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from crowdsft.adapters.kafka import TooFewPartitions, check_partitions
from crowdsft.adapters.probes import Readiness
from crowdsft.settings import Settings
from services.http_probes import observe


def test_settings_refuse_fewer_partitions_than_replicas() -> None:
    with pytest.raises(ValidationError, match=r"KAFKA_PARTITIONS=2 is below .*MAX_REPLICAS=3"):
        Settings(kafka_partitions=2, max_replicas=3)
    assert Settings(kafka_partitions=12, max_replicas=8).kafka_partitions == 12


def test_existing_topics_with_too_few_partitions_are_named() -> None:
    check_partitions({"a": 8, "b": 8}, max_replicas=8)
    with pytest.raises(TooFewPartitions, match=r"CROWDSFT_MAX_REPLICAS=8: b has 3, c has 1\."):
        check_partitions({"a": 8, "b": 3, "c": 1}, max_replicas=8)


async def test_readiness_is_false_for_a_check_that_fails_or_raises() -> None:
    async def yes() -> bool:
        return True

    async def no() -> bool:
        return False

    async def broken() -> bool:
        raise ConnectionError("refused")

    report = await Readiness({"a": yes, "b": no, "c": broken}).report()
    assert report == {"a": True, "b": False, "c": False}


async def test_http_probes_follow_the_checks_and_time_routes_by_template() -> None:
    app = FastAPI()
    state = {"up": True}

    async def store() -> bool:
        return state["up"]

    observe(app, "unit", Settings(), lambda a: {"store": store})

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"thing_id": thing_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://unit") as http:
        assert (await http.get("/livez")).status_code == 200
        assert (await http.get("/readyz")).json() == {"ready": True, "checks": {"store": True}}
        state["up"] = False
        unready = await http.get("/readyz")
        assert unready.status_code == 503 and unready.json()["checks"] == {"store": False}
        for n in range(3):
            assert (await http.get(f"/v1/things/t{n}")).status_code == 200
        text = (await http.get("/metrics")).text
    line = (
        'crowdsft_http_request_seconds_count{method="GET",route="/v1/things/{thing_id}",'
        'service="unit",status="200"} 3.0'
    )
    assert line in text
    assert "t1" not in text  # ids never become label values
    assert 'route="/readyz"' not in text  # probes are not timed
