"""GET /healthz: can this worker answer? Checks the LLM, Chroma, the store (a read) and store_write
(a committed heartbeat write, at most about a second of waiting for a lock), and reports the spool's
backlog (records kept while the store was down, not yet replayed). `failed` names the checks that
failed; any failed check makes the answer 503."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

from sqlalchemy import text

from serve.services import Services

log = logging.getLogger("serve")
HEALTH_WRITE_TIMEOUT_S = 1.0  # a write-locked store fails the check in about this long


def check_all(s: Services) -> dict[str, Any]:
    checks = {"llm": _timed(lambda: _llm(s)), "chroma": _timed(lambda: _chroma(s)),
              "store": _timed(lambda: _store(s)), "store_write": _timed(lambda: _store_write(s))}
    failed = [name for name, check in checks.items() if not check["ok"]]
    return {"status": "unavailable" if failed else "ok", "failed": failed, "checks": checks,
            "spool": spool_backlog(s.settings), "turns": s.gate.snapshot(), "worker": os.getpid()}


def _timed(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = {"ok": True, **check()}
    except Exception as exc:  # a health check reports, it does not raise
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _llm(s: Services) -> dict[str, Any]:
    settings = s.settings
    if settings.llm_backend == "openai":
        import httpx

        url = (settings.llm_base_url or "").rstrip("/") + "/models"
        headers = {"Authorization": f"Bearer {settings.llm_api_key.get_secret_value()}"}
        response = httpx.get(url, headers=headers, timeout=3.0)
        response.raise_for_status()
        return {"backend": "openai", "model": settings.llm_served_model}
    from assistant.llm.chat_models import load_model, resolve_model_path

    path = resolve_model_path(settings)
    load_model(str(path), settings.llm_dtype, settings.llm_threads)  # cached after the first call
    return {"backend": "embedded", "model": settings.llm_model}


def _chroma(s: Services) -> dict[str, Any]:
    kb = s.kb
    if hasattr(kb.client, "heartbeat"):
        kb.client.heartbeat()
    count = kb.count()
    if count == 0:
        raise RuntimeError("the knowledge base is empty: run `assistant ingest`")
    return {"chunks": count, "server": bool(s.settings.chroma_host)}


def _engine(s: Services):
    engine = getattr(s.conversations, "engine", None)
    if engine is None:
        from assistant.store.db import make_engine

        engine = s.extras.get("engine") or s.extras.setdefault("engine", make_engine(s.settings))
    return engine


def _store(s: Services) -> dict[str, Any]:
    engine = _engine(s)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return {"dialect": engine.dialect.name}


def _store_write(s: Services) -> dict[str, Any]:
    from assistant.store.db import check_write

    return check_write(_engine(s), timeout_s=HEALTH_WRITE_TIMEOUT_S)


def spool_backlog(settings) -> dict[str, int]:
    """Files waiting in each spool (tickets, conversations, audit); a count, never a failure."""
    from assistant.store.spool import Spool

    root = settings.data_dir / "spool"
    return {name: Spool(root / name).count() for name in ("tickets", "conversations", "audit")}


# --- spool replay: at start-up and on a schedule --------------------------------------------------

def spool_replayer(s: Services):
    """A SpoolReplayer over the stores this worker writes to: tickets, conversations, audit."""
    from assistant.store.spool import SpoolReplayer

    replays: dict[str, Callable[[], Any]] = {}
    try:
        replays["tickets"] = s.features.get("tickets").replay_spool
    except Exception:  # no ticket feature in this installation
        log.info("no ticket store: its spool is not replayed here")
    for name, store in (("conversations", s.conversations), ("audit", s.assistant.audit)):
        if hasattr(store, "replay_spool"):
            replays[name] = store.replay_spool
    return SpoolReplayer(replays, s.settings.store_replay_every_s)


def attach_spool_replay(app, s: Services) -> None:
    """Replay the spool when the app starts (before it serves: spooled complaints reach staff at once),
    then every settings.store_replay_every_s seconds until it stops. Wraps whatever lifespan the app has."""
    from contextlib import asynccontextmanager

    from starlette.concurrency import run_in_threadpool

    replayer = spool_replayer(s)
    s.extras["spool_replayer"] = replayer
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_):
        await run_in_threadpool(replayer.run_once)
        replayer.start()
        try:
            async with inner(app_) as state:
                yield state
        finally:
            replayer.stop()

    app.router.lifespan_context = lifespan
