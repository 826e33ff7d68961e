"""Bearer-token authentication shared by the HTTP services: one place decides who is asking."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crowdsft.adapters.contributor_store import Contributor, ContributorStore
from crowdsft.adapters.metrics import RATE_LIMIT_REFUSALS
from crowdsft.auth import is_operator_token
from crowdsft.ratelimit import RateLimiter

# auto_error=False: we answer 401 with WWW-Authenticate ourselves, for missing and wrong
# tokens alike, so a caller cannot tell an unknown token from a malformed one.
bearer_scheme = HTTPBearer(
    auto_error=False, description="The token `crowdsft contributor create` printed."
)


def contributor_store(request: Request) -> ContributorStore:
    """The app's lifespan puts the store on `app.state.contributors`."""
    store = request.app.state.contributors
    assert isinstance(store, ContributorStore)
    return store


def unauthorized(request: Request) -> HTTPException:
    """401, or 429 once the caller's address has failed too often (slows token guessing);
    an app without `app.state.anonymous_limiter` does not limit."""
    limiter: RateLimiter | None = getattr(request.app.state, "anonymous_limiter", None)
    address = request.client.host if request.client else "unknown"
    if limiter is not None and not (decision := limiter.acquire(address)).allowed:
        RATE_LIMIT_REFUSALS.labels("anonymous").inc()
        return HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many requests without a valid token",
            headers={"Retry-After": str(max(1, math.ceil(decision.retry_after_s)))},
        )
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "missing or invalid bearer token",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def authenticated_contributor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Contributor:
    """The contributor the bearer token belongs to; the token itself is never logged."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized(request)
    contributor = await contributor_store(request).find_by_token(credentials.credentials)
    if contributor is None:
        raise unauthorized(request)
    return contributor


def require_self(contributor: Contributor, contributor_id: str) -> None:
    """403: a valid token may act only in its own contributor's name."""
    if contributor.contributor_id != contributor_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the token belongs to another contributor")


CurrentContributor = Annotated[Contributor, Depends(authenticated_contributor)]


async def operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Campaigns are an operator's decision: the configured operator token, or 401."""
    configured = request.app.state.operator_token_sha256
    if credentials is None or not is_operator_token(credentials.credentials, configured):
        raise unauthorized(request)


Operator = Annotated[None, Depends(operator)]
