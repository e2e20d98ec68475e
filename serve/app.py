"""create_app(settings, assistant) -> FastAPI: the API, the Gradio pages and the widget.

uvicorn calls it with no arguments (`uvicorn serve.app:create_app --factory`, which is what
`assistant serve` runs); tests pass their own Settings and, if they like, a built Assistant."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.config import Settings, apply_offline_env
from assistant.pipeline import Assistant
from assistant.store.db import StoreUnavailable
from assistant.types import Conversation, new_id
from serve import api, api_tickets, inbox, openai_compat, staff_tickets
from serve.auth import RoleGate
from serve.chat import NotFound
from serve.cors import PathScopedCORS
from serve.docs_pages import add_docs_pages
from serve.features import FeatureMissing
from serve.limits import BodySizeLimit, Busy, ClientGone, RateLimited
from serve.logging import configure_logging, trace_id_var
from serve.health import attach_spool_replay
from serve.services import Services
from serve.ui import CSS, build_customer_ui, build_staff_ui

log = logging.getLogger("serve")
STATIC_DIR = Path(__file__).with_name("static")
LARGE_BODY_BYTES = 2 * 1024 * 1024  # Gradio's own requests carry the chat history


def create_app(settings: Settings | None = None, assistant: Assistant | None = None) -> FastAPI:
    apply_offline_env()
    settings = settings or Settings()
    _limit_torch_threads(settings)
    services = Services.build(settings, assistant)
    configure_logging(redact=services.redact)
    app = FastAPI(title="Meadow assistant", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Customer chat, eligibility, complaints and marketing for Meadow Consumer Finance. "
                              "Customer endpoints take `Authorization: Bearer <customer_token>` from "
                              "POST /api/sessions; staff endpoints take a staff API key the same way.")
    app.state.services = services
    attach_spool_replay(app, services)  # the spool (store-down writes) replayed at start and on a schedule
    add_docs_pages(app)
    app.include_router(api.router)
    app.include_router(api_tickets.router)
    app.include_router(openai_compat.router)
    app.include_router(inbox.router)
    app.include_router(staff_tickets.router)
    _add_pages(app, services)
    _add_error_handlers(app)
    app.add_middleware(RoleGate, staff=lambda: services.staff)  # 403 for a staff key of the wrong role
    limit = settings.web_max_body_bytes
    app.add_middleware(BodySizeLimit, limit_for=lambda path: limit if path.startswith(("/api", "/v1"))
                       else LARGE_BODY_BYTES)
    app.add_middleware(PathScopedCORS, settings=settings)
    app.add_middleware(RequestLog, services=services)
    _warm_up(services)
    log.info("app ready", extra={"llm": settings.llm_backend, "chroma": settings.chroma_host or "embedded",
                                 "store": services.settings.db_url.split(":", 1)[0]})
    return app


def _add_pages(app: FastAPI, services: Services) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/chat/")

    @app.get("/widget.js", include_in_schema=False)
    def widget() -> FileResponse:
        return FileResponse(STATIC_DIR / "widget.js", media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=300"})

    @app.get("/demo", include_in_schema=False)
    def demo() -> FileResponse:
        return FileResponse(STATIC_DIR / "demo.html", media_type="text/html")

    common = dict(footer_links=[], run_history=False, ssr_mode=False, mcp_server=False, css=CSS,
                  show_error=False)
    gr.mount_gradio_app(app, build_customer_ui(services).queue(default_concurrency_limit=None), path="/chat",
                        **common)
    gr.mount_gradio_app(app, build_staff_ui(services).queue(default_concurrency_limit=8), path="/staff",
                        auth=services.staff.login, auth_message="Meadow staff: sign in with your staff API key "
                        "as the password (any user name).", **common)


def _error(status: int, kind: str, message: str, details=None, headers=None) -> JSONResponse:
    body = {"error": {"type": kind, "message": message, **({"details": details} if details is not None else {})},
            "request_id": trace_id_var.get()}  # every error names its request (also in X-Request-Id)
    return JSONResponse(body, status_code=status, headers=headers)


_KINDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          413: "request_too_large", 415: "unsupported_media_type", 422: "invalid_request", 429: "rate_limited"}


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, _KINDS.get(exc.status_code, "http_error"), str(exc.detail),
                      headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError):
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                   for e in exc.errors()]
        return _error(422, "invalid_request", "the request does not match the API's schema", details)

    @app.exception_handler(RateLimited)
    async def rate_limited(_: Request, exc: RateLimited):
        return _error(429, "rate_limited", f"too many requests: at most {exc.limit} per minute",
                      headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy):
        request.app.state.services.metrics.rejected.labels(reason="busy").inc()
        return _error(503, "busy", "the assistant is busy; retry shortly",
                      headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound):
        return _error(404, "not_found", str(exc))

    @app.exception_handler(FeatureMissing)
    async def missing(_: Request, exc: FeatureMissing):
        return _error(404, "feature_not_available", str(exc))

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception):
        log.error("unhandled error", exc_info=exc)
        return _error(500, "internal_error", f"internal error (request {trace_id_var.get()})")

    @app.exception_handler(StoreUnavailable)
    async def store_down(_: Request, exc: StoreUnavailable):
        log.error("store unavailable", extra={"reference": exc.reference, "detail": str(exc)})
        response = _error(503, "store_unavailable", api.store_down_message(exc.reference),
                          headers={"Retry-After": str(exc.retry_after_s)})
        return _with(response, reference=exc.reference)

    @app.exception_handler(ClientGone)
    async def gone(_: Request, exc: ClientGone):  # nobody reads it: for the logs and metrics
        return _error(499, "client_closed_request", "the client closed the connection")


def _with(response: JSONResponse, **fields) -> JSONResponse:
    import json

    body = {**json.loads(response.body), **fields}
    return JSONResponse(body, status_code=response.status_code,
                        headers={k: v for k, v in response.headers.items() if k.lower() == "retry-after"})


class RequestLog:
    """One JSON log line and one metric per request; the request id is in X-Request-Id."""

    def __init__(self, app, services: Services):
        self.app = app
        self.metrics = services.metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = new_id("rq_")
        token = trace_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                scope["_response_started"] = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # answered here, not by Starlette's outer handler: it would lose the request id
            if status != 500 or scope.get("_response_started"):
                raise
            log.error("unhandled error", exc_info=exc)
            await _error(500, "internal_error", f"internal error (request {request_id})")(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_label(scope)
            self.metrics.requests.labels(method=scope["method"], route=route, status=str(status)).inc()
            self.metrics.request_seconds.labels(route=route).observe(elapsed)
            if not route.startswith(("/chat", "/staff", "/static")) or status >= 400:
                log.info("request", extra={"method": scope["method"], "path": scope["path"][:200], "route": route,
                                           "status": status, "ms": round(elapsed * 1000, 1)})
            trace_id_var.reset(token)


def _route_label(scope) -> str:
    """A bounded set of labels: the matched route's template, a mount's prefix, or 'other'."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path and not path.startswith(("/chat", "/staff")):
        return path
    for prefix in ("/chat", "/staff", "/static"):
        if scope["path"].startswith(prefix):
            return prefix
    return "other"


def _limit_torch_threads(settings: Settings) -> None:
    """One torch thread per op by default: a web worker runs several turns at once, and ops that
    each spread over every core spin against each other (measured: a query embedding took 15 ms
    with one thread and 950 ms with two on a busy 2-core machine)."""
    import torch

    torch.set_num_threads(settings.llm_threads or settings.web_torch_threads)


def _warm_up(services: Services) -> None:
    """Load what the first customer would otherwise wait for: the LLM, the lexical index, the guard's
    and the router's classifiers (nothing is written: no turn is run)."""
    settings = services.settings
    steps = [("retrieval", lambda: services.kb.retrieve("warm up")),
             ("guard", lambda: services.assistant.guard.check_input(Conversation(customer_id="warmup"), "hello")),
             ("router", lambda: services.assistant.router.route(Conversation(customer_id="warmup"), "hello"))]
    if settings.llm_backend == "embedded":
        from assistant.llm.chat_models import load_model, resolve_model_path

        steps.insert(0, ("llm", lambda: load_model(str(resolve_model_path(settings)), settings.llm_dtype,
                                                   settings.llm_threads)))
    for name, step in steps:
        try:
            step()
        except Exception:  # /healthz reports what is really broken
            log.warning("warm-up of %s failed", name, exc_info=True)
