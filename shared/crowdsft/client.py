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
