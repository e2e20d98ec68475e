"""Limits that keep one client or one slow model from taking the app down.

- `ClientRateLimiter`: sliding one-minute window per client key -> 429 with Retry-After.
  It lives in the worker's memory like a cache: losing it loses nothing, and with N workers
  a client gets at most N times the limit (set the limit per worker accordingly).
- `TurnGate`: at most `slots` turns run at once (off the event loop, in the thread pool), at most
  `queue` wait; anyone else gets `Busy` -> 503 with Retry-After instead of a hang.
- `BodySizeLimit`: ASGI middleware, 413 for bodies over the limit (declared or streamed).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from typing import Callable

WINDOW_S = 60.0


class Busy(Exception):
    def __init__(self, retry_after_s: int):
        super().__init__(f"busy, retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class RateLimited(Exception):
    def __init__(self, retry_after_s: int, limit: int):
        super().__init__(f"rate limited: {limit} per minute")
        self.retry_after_s = retry_after_s
        self.limit = limit


class ClientRateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, max_clients: int = 100_000):
        self.per_minute = per_minute
        self.clock = clock
        self.max_clients = max_clients
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, limit: int | None = None) -> None:
        """Count one request for `key`, or raise RateLimited (the refused request is not counted)."""
        limit = limit or self.per_minute
        now = self.clock()
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] >= WINDOW_S:
            hits.popleft()
        if len(hits) >= limit:
            raise RateLimited(max(1, math.ceil(hits[0] + WINDOW_S - now)), limit)
        hits.append(now)
        if len(self._hits) > self.max_clients:
            self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, h in self._hits.items() if not h or now - h[-1] >= WINDOW_S]:
            del self._hits[key]


class Lease:
    """One turn's slot; release is idempotent and also happens if the lease is dropped."""

    def __init__(self, gate: "TurnGate"):
        self._gate = gate
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._gate._release()

    def __del__(self) -> None:  # a streamed response that never started still frees its slot
        try:
            self.release()
        except Exception:
            pass


class TurnGate:
    def __init__(self, slots: int, queue: int, timeout_s: float, retry_after_s: int = 5):
        self.slots = slots
        self.queue = queue
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.active = 0
        self.waiting = 0
        self._sem: asyncio.Semaphore | None = None

    async def acquire(self) -> Lease:
        sem = self._semaphore()
        if self.active >= self.slots and self.waiting >= self.queue:
            raise Busy(self.retry_after_s)
        self.waiting += 1
        try:
            await asyncio.wait_for(sem.acquire(), self.timeout_s)
        except asyncio.TimeoutError:
            raise Busy(self.retry_after_s) from None
        finally:
            self.waiting -= 1
        self.active += 1
        return Lease(self)

    def _release(self) -> None:
        self.active -= 1
        if self._sem is not None:
            self._sem.release()

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:  # created inside the running loop
            self._sem = asyncio.Semaphore(self.slots)
        return self._sem

    def snapshot(self) -> dict[str, int]:
        return {"slots": self.slots, "active": self.active, "waiting": self.waiting, "queue": self.queue}


class BodySizeLimit:
    """413 for request bodies larger than the limit that applies to their path."""

    def __init__(self, app, limit_for: Callable[[str], int]):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _too_large(send, limit)
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"error": {"type": "request_too_large",
                                 "message": f"request body larger than {limit} bytes"}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
