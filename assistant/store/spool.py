"""A durable spool: records the store could not take yet, one JSON file each, until a replay commits them.

Writing is atomic and durable: a unique temp file, fsync, rename, fsync of the folder. Nobody ever
sees half a file.

Replay is safe with several replayers at once (two workers, a cron job, a request that replays after
its own write): a replayer first *claims* a file by renaming it to `<name>.claim-<host>-<pid>-<token>`.
The rename succeeds for exactly one of them; the others skip the file instead of finding it gone
(which used to be reported as an "unreadable spool file"). A claim is finished (`done`: the file is
removed), given back (`release`: renamed back, the store is still down) or set aside (`set_aside`:
renamed to `.bad` for a person to look at). Claims left by a replayer that died are given back by
`recover_stale`. Replays that must keep an order (the audit chain) also hold `exclusive()`, a lock file."""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

CLAIM = ".claim-"
STALE_CLAIM_S = 600.0  # a claim older than this is given back even when its owner looks alive


@dataclass
class Claim:
    """A spool file this replayer owns until it calls done, release or set_aside."""

    original: Path
    path: Path

    @property
    def name(self) -> str:
        return self.original.name

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def done(self) -> None:
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        try:
            os.replace(self.path, self.original)
        except FileNotFoundError:
            pass

    def set_aside(self) -> Path:
        bad = self.original.with_suffix(".bad")
        os.replace(self.path, bad)
        return bad


class Spool:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    # --- write ---------------------------------------------------------------------------
    def write_text(self, name: str, text: str) -> Path:
        """Atomically write `name` (a file name ending in .json) and make it durable."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        tmp = self.folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            with tmp.open("w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.folder)
        return path

    # --- read ----------------------------------------------------------------------------
    def pending(self) -> list[Path]:
        """Files waiting for a replay, by name (names that must keep an order sort in that order)."""
        return sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []

    def claims(self) -> list[Path]:
        return sorted(self.folder.glob(f"*.json{CLAIM}*")) if self.folder.is_dir() else []

    def count(self) -> int:
        return len(self.pending()) + len(self.claims())

    # --- replay --------------------------------------------------------------------------
    def claim(self, path: Path) -> Claim | None:
        """Own `path`, or None when another replayer (or the writer itself) got it first."""
        claimed = path.with_name(f"{path.name}{CLAIM}{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        now = time.time()
        try:
            os.utime(claimed, (now, now))  # the claim's age, for recover_stale
        except FileNotFoundError:
            return None
        return Claim(original=path, path=claimed)

    def recover_stale(self, max_age_s: float = STALE_CLAIM_S) -> int:
        """Give back claims whose replayer died (same host, process gone) or that are older than max_age_s."""
        recovered = 0
        for path in self.claims():
            original, owner = path.name.split(CLAIM, 1)
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if age > max_age_s or _owner_gone(owner):
                try:
                    os.replace(path, path.with_name(original))
                    recovered += 1
                except FileNotFoundError:
                    continue
        return recovered

    @contextmanager
    def exclusive(self, wait: bool = True) -> Iterator[bool]:
        """Hold the spool's lock file (one ordered replayer at a time, across processes). Yields False
        when wait=False and another process holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _owner_gone(owner: str) -> bool:
    parts = owner.rsplit("-", 2)  # host (may hold dashes), pid, token
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False  # another machine's claim: only its age tells
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolReplayer:
    """Runs each store's `replay_spool` now (`run_once`) and then every `every_s` seconds in a daemon
    thread (`start`/`stop`). A replay that fails (the store still down) is logged and tried next time."""

    def __init__(self, replays: dict[str, Callable[[], Any]], every_s: float):
        self.replays = replays
        self.every_s = every_s
        self.last: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        for name, replay in self.replays.items():
            try:
                done = replay()
                results[name] = {"replayed": len(done) if isinstance(done, (list, tuple)) else int(done or 0)}
            except Exception as exc:  # the store is still down: the spool keeps everything for next time
                results[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                log.warning("spool replay of %s failed: %s", name, results[name]["error"])
        replayed = {name: r["replayed"] for name, r in results.items() if r.get("replayed")}
        if replayed:
            log.info("spool replayed", extra={"replayed": replayed})
        self.last = results
        return results

    def start(self) -> None:
        if self.every_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="spool-replay", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.run_once()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
