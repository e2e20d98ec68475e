"""FastAPI dependencies: the services, who is calling, and the per-client rate limit."""

from __future__ import annotations

from fastapi import HTTPException, Request

from serve.auth import Caller, bearer, identify
from serve.services import Services


def services(request: Request) -> Services:
    return request.app.state.services


def presented_credential(request: Request) -> str | None:
    return (bearer(request.headers.get("authorization")) or request.headers.get("x-customer-token")
            or request.headers.get("x-api-key"))


def caller(request: Request) -> Caller:
    s = services(request)
    client = request.client.host if request.client else "unknown"
    return identify(s.staff, s.tokens, presented_credential(request), client)


def customer_caller(request: Request) -> Caller:
    """Any caller of a customer endpoint; customers and anonymous clients are rate limited."""
    who = caller(request)
    if not who.is_staff:
        s = services(request)
        try:
            s.limiter.hit(who.client)
        except Exception:
            s.metrics.rejected.labels(reason="rate_limited").inc()
            raise
    return who


def staff_caller(request: Request) -> Caller:
    who = caller(request)
    if not who.is_staff:
        s = services(request)
        detail = "staff API key required (Authorization: Bearer <key>)" if s.staff.enabled else \
            "no staff API keys are configured: set ASSISTANT_STAFF_API_KEYS"
        raise HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})
    return who
