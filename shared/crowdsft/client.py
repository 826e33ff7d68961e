"""A small typed async client for the HTTP services: the gateway (submit feedback), the read
API (balances, leaderboards) and serving (chat). Contributors need a URL and their token, never
broker or database credentials; the CLI and the demo use it, and so can any program."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Self

import httpx


class ServiceError(RuntimeError):
    """A refusal, with the service's status and its reason."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(f"{status_code}: {reason}")
        self.status_code = status_code
        self.reason = reason


def _checked(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    try:
        reason = response.json().get("detail", response.text)
    except ValueError:
        reason = response.text
    raise ServiceError(response.status_code, str(reason))


@dataclass
class Feedback:
    campaign_id: str
    prompt: str
    response: str
    rating: int | None = None
    correction: str | None = None
    event_id: str | None = None  # choose one to make retries safe


class _Client:
    def __init__(self, url: str, token: str | None = None, timeout_s: float = 30) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers,
                                       timeout=timeout_s)  # fmt: skip

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


class GatewayClient(_Client):
    async def submit(self, feedback: Feedback, token: str | None = None) -> str:
        """The event id the gateway accepted (202); intake stores it once, whatever retries.
        `token`: another contributor's, for one client that sends for many (the demo)."""
        body = {k: v for k, v in vars(feedback).items() if v is not None}
        headers = {"Authorization": f"Bearer {token}"} if token else None
        answer = await self._http.post("/v1/feedback", json=body, headers=headers)
        return str(_checked(answer)["event_id"])


class ReadClient(_Client):
    async def contributor(self, contributor_id: str,
                          campaign_id: str | None = None) -> dict[str, Any]:  # fmt: skip
        params = {"campaign": campaign_id} if campaign_id else {}
        found = await self._http.get(f"/v1/contributors/{contributor_id}", params=params)
        return dict(_checked(found))

    async def leaderboard(
        self, campaign_id: str | None = None, limit: int = 10
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit} | (
            {"campaign": campaign_id} if campaign_id else {}
        )
        return list(_checked(await self._http.get("/v1/leaderboard", params=params))["entries"])


class ReadAs(ReadClient):
    """The read API as a signed-in contributor sees it (their token on every call)."""

    async def me(self) -> dict[str, Any]:
        return dict(_checked(await self._http.get("/v1/me")))

    async def submissions(self, contributor_id: str) -> list[dict[str, Any]]:
        found = await self._http.get(f"/v1/contributors/{contributor_id}/submissions")
        return list(_checked(found)["submissions"])

    async def ledger(self, contributor_id: str, campaign_id: str | None = None,
                     limit: int = 100) -> list[dict[str, Any]]:  # fmt: skip
        params: dict[str, Any] = {"limit": limit}
        if campaign_id:
            params["campaign"] = campaign_id
        found = await self._http.get(f"/v1/contributors/{contributor_id}/ledger", params=params)
        return list(_checked(found)["entries"])


class CampaignsClient(_Client):
    """The public campaign reads: list, one, its rounds, lineage, Shapley values, samples."""

    async def campaigns(self) -> list[dict[str, Any]]:
        return list(_checked(await self._http.get("/v1/campaigns"))["campaigns"])

    async def campaign(self, campaign_id: str) -> dict[str, Any]:
        return dict(_checked(await self._http.get(f"/v1/campaigns/{campaign_id}")))

    async def rounds(self, campaign_id: str) -> list[dict[str, Any]]:
        found = await self._http.get(f"/v1/campaigns/{campaign_id}/rounds", params={"limit": 1000})
        return list(_checked(found)["rounds"])

    async def lineage(self, campaign_id: str) -> list[dict[str, Any]]:
        found = await self._http.get(f"/v1/campaigns/{campaign_id}/lineage", params={"limit": 1000})
        return list(_checked(found)["models"])

    async def shapley(self, campaign_id: str) -> dict[str, Any] | None:
        """None until the campaign's first Shapley values are in."""
        found = await self._http.get(f"/v1/campaigns/{campaign_id}/shapley")
        return None if found.status_code == 404 else dict(_checked(found))

    async def samples(self, campaign_id: str) -> list[str]:
        found = await self._http.get(f"/v1/campaigns/{campaign_id}/samples")
        return [] if found.status_code == 404 else list(_checked(found)["samples"])


class OperatorClient(_Client):
    """The gateway's operator endpoints."""

    async def create_campaign(self, spec: dict[str, Any]) -> str:
        return str(_checked(await self._http.post("/v1/campaigns", json=spec))["campaign_id"])

    async def start_round(self, campaign_id: str) -> int:
        answer = await self._http.post(f"/v1/campaigns/{campaign_id}/rounds")
        return int(_checked(answer)["round_index"])


class OperatorReads(_Client):
    """The read API's operator endpoints (the operator token on every call)."""

    async def dead_letters(self, campaign_id: str | None = None, limit: int = 20) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if campaign_id:
            params["campaign"] = campaign_id
        return dict(_checked(await self._http.get("/v1/dead-letters", params=params)))


class ChatClient(_Client):
    async def stream(self, model: str, messages: list[dict[str, str]],
                     **options: Any) -> AsyncIterator[str]:  # fmt: skip
        """The answer's text as it is written (server-sent events)."""
        body = {"model": model, "messages": messages, "stream": True, **options}
        async with self._http.stream("POST", "/v1/chat/completions", json=body) as response:
            if not response.is_success:
                await response.aread()
                _checked(response)
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                for choice in json.loads(line.removeprefix("data: "))["choices"]:
                    if text := choice["delta"].get("content"):
                        yield str(text)
