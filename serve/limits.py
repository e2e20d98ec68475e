"""Limits that keep one client or one slow model from taking the app down.

- `ClientRateLimiter`: sliding one-minute window per client key -> 429 with Retry-After.
  It lives in the worker's memory like a cache: losing it loses nothing, and with N workers
  a client gets at most N times the limit (set the limit per worker accordingly).
- `TurnGate`: at most `slots` turns run at once (off the event loop, in the thread pool), at most
  `queue` wait; anyone else gets `Busy` -> 503 with Retry-After instead of a hang.
- `BodySizeLimit`: ASGI middleware, 413 for bodies over the limit (declared or streamed).
- `Abandon`: set when the client hangs up; a waiting turn leaves the queue and a running one stops
  at its next piece, so its slot is free at once (not when the model would have finished).
- `ConversationLocks`: one turn at a time per conversation in this worker (the store's version check
  covers several workers), in arrival order.
"""

from __future__ import annotations

import asyncio
import json
import contextlib
import math
import threading
import time
from collections import deque
from typing import AsyncIterator, Callable

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

    async def acquire(self, abandon: "Abandon | None" = None) -> Lease:
        sem = self._semaphore()
        if self.active >= self.slots and self.waiting >= self.queue:
            raise Busy(self.retry_after_s)
        self.waiting += 1
        try:
            await _first_of(sem.acquire(), abandon, self.timeout_s, self.retry_after_s, on_late=sem.release)
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


class ClientGone(Exception):
    """The client hung up before its turn started or finished."""


class Abandon:
    """Set once the client has gone: seen by the event loop (`event`) and by the turn's thread (`is_set`)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._flag = threading.Event()

    def set(self) -> None:
        self._flag.set()
        self.event.set()

    def is_set(self) -> bool:
        return self._flag.is_set()

    async def watch(self, receive) -> None:
        """Wait for the ASGI `http.disconnect` (call after the body was read)."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.set()
                return


@contextlib.asynccontextmanager
async def watching(request) -> AsyncIterator[Abandon]:
    """An Abandon that is set when this request's client disconnects, while the block runs."""
    abandon = Abandon()
    watcher = asyncio.ensure_future(abandon.watch(request.receive))
    try:
        yield abandon
    finally:
        watcher.cancel()


async def _first_of(acquiring, abandon: Abandon | None, timeout_s: float, retry_after_s: int, on_late=None) -> None:
    """Await `acquiring` unless the client goes (ClientGone) or time runs out (Busy)."""
    getting = asyncio.ensure_future(acquiring)
    waits = {getting}
    gone = asyncio.ensure_future(abandon.event.wait()) if abandon is not None else None
    if gone is not None:
        waits.add(gone)
    try:
        done, _ = await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if gone is not None:
            gone.cancel()
    if getting in done and getting.exception() is None:
        if abandon is not None and abandon.is_set():
            if on_late:
                on_late()
            raise ClientGone()
        return
    getting.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await getting
    if getting.done() and not getting.cancelled() and getting.exception() is None and on_late:
        on_late()  # acquired in the very moment we gave up: give it back
    if abandon is not None and abandon.is_set():
        raise ClientGone()
    raise Busy(retry_after_s)


class ConversationLocks:
    """Per-conversation asyncio locks (FIFO), forgotten when nobody holds or waits for them."""

    def __init__(self, timeout_s: float, retry_after_s: int = 5):
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def acquire(self, key: str | None, abandon: Abandon | None = None) -> "Held":
        """Wait for the conversation (Busy after the timeout, ClientGone if the client hangs up).
        No key (a new conversation, or nothing is saved): nobody else can have it, nothing to wait for."""
        if not key:
            return Held(None)
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            await _first_of(lock.acquire(), abandon, self.timeout_s, self.retry_after_s, on_late=lock.release)
        except BaseException:
            self._forget(key)
            raise
        return Held(lambda: (lock.release(), self._forget(key)))

    @contextlib.asynccontextmanager
    async def hold(self, key: str | None, abandon: Abandon | None = None) -> AsyncIterator[None]:
        held = await self.acquire(key, abandon)
        try:
            yield
        finally:
            held.release()

    def _forget(self, key: str) -> None:
        lock, users = self._locks[key]
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class Held:
    """A held conversation lock; release is idempotent and also happens if it is dropped."""

    def __init__(self, release: Callable[[], object] | None):
        self._release = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass


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
    from serve.logging import trace_id_var

    body = json.dumps({"error": {"type": "request_too_large", "message": f"request body larger than {limit} bytes"},
                       "request_id": trace_id_var.get()}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
