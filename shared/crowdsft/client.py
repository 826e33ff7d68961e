"""A small typed client for the HTTP services: the gateway (submit feedback), the read API
(balances, leaderboards) and serving (chat). Contributors need a URL and their token, never
broker or database credentials; the CLI uses it, and so can any program."""

from __future__ import annotations

import json
from collections.abc import Iterator
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
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class GatewayClient(_Client):
    def submit(self, feedback: Feedback) -> str:
        """The event id the gateway accepted (202); intake stores it once, whatever retries."""
        body = {k: v for k, v in vars(feedback).items() if v is not None}
        return str(_checked(self._http.post("/v1/feedback", json=body))["event_id"])


class ReadClient(_Client):
    def contributor(self, contributor_id: str, campaign_id: str | None = None) -> dict[str, Any]:
        params = {"campaign": campaign_id} if campaign_id else {}
        found = _checked(self._http.get(f"/v1/contributors/{contributor_id}", params=params))
        return dict(found)

    def leaderboard(self, campaign_id: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit} | (
            {"campaign": campaign_id} if campaign_id else {}
        )
        return list(_checked(self._http.get("/v1/leaderboard", params=params))["entries"])


class ChatClient(_Client):
    def stream(self, model: str, messages: list[dict[str, str]], **options: Any) -> Iterator[str]:
        """The answer's text as it is written (server-sent events)."""
        body = {"model": model, "messages": messages, "stream": True, **options}
        with self._http.stream("POST", "/v1/chat/completions", json=body) as response:
            if not response.is_success:
                response.read()
                _checked(response)
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                for choice in json.loads(line.removeprefix("data: "))["choices"]:
                    if text := choice["delta"].get("content"):
                        yield str(text)
