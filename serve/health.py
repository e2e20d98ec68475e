"""GET /healthz: can this worker answer? Checks the LLM, Chroma and the store."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from sqlalchemy import text

from serve.services import Services


def check_all(s: Services) -> dict[str, Any]:
    checks = {"llm": _timed(lambda: _llm(s)), "chroma": _timed(lambda: _chroma(s)),
              "store": _timed(lambda: _store(s))}
    ok = all(c["ok"] for c in checks.values())
    return {"status": "ok" if ok else "unavailable", "checks": checks, "turns": s.gate.snapshot(),
            "worker": os.getpid()}


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


def _store(s: Services) -> dict[str, Any]:
    engine = getattr(s.conversations, "engine", None)
    if engine is None:
        from assistant.store.db import make_engine

        engine = s.extras.setdefault("engine", make_engine(s.settings))
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return {"dialect": engine.dialect.name}
