"""Who is signed in, and forms that only this site can post.

The token lives in an HTTP-only, same-site cookie (scripts never see it; other sites never
send it). Forms also carry a CSRF value that must equal a second cookie's (double submit), so
even a same-site page that could make the browser post cannot forge one without reading it.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from crowdsft.auth import is_operator_token

TOKEN_COOKIE = "crowdsft_token"
CSRF_COOKIE = "crowdsft_csrf"
MAX_AGE_S = 8 * 3600


@dataclass(frozen=True)
class Visitor:
    token: str | None
    csrf: str
    operator: bool


def visitor(request: Request, operator_sha256: str | None) -> Visitor:
    token = request.cookies.get(TOKEN_COOKIE)
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    return Visitor(token, csrf, bool(token) and is_operator_token(token or "", operator_sha256))


def keep(response: Response, who: Visitor, secure: bool, token: str | None = None) -> None:
    """Set (or refresh) the CSRF cookie, and the token cookie when one is given."""
    response.set_cookie(
        CSRF_COOKIE, who.csrf, max_age=MAX_AGE_S, httponly=True, samesite="strict", secure=secure
    )
    if token is not None:
        response.set_cookie(
            TOKEN_COOKIE, token, max_age=MAX_AGE_S, httponly=True, samesite="strict", secure=secure
        )


def forget(response: Response) -> None:
    response.delete_cookie(TOKEN_COOKIE)


def csrf_ok(who: Visitor, submitted: str | None, request: Request) -> bool:
    return CSRF_COOKIE in request.cookies and hmac.compare_digest(who.csrf, submitted or "")
