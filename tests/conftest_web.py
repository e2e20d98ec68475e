"""Helpers for the web tests: a prepared data directory and a real server on a loopback port.

Not a conftest (the integrator owns tests/conftest.py): test modules import from here. The
knowledge base is ingested once per test session (by `assistant ingest`, in a subprocess, so no
two processes hold the same Chroma folder open) and each module copies that index; servers are
started with `assistant serve` exactly as a user would, and stopped after the module."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx

from assistant.config import PROJECT_ROOT, OFFLINE_ENV

STAFF_KEY = "staff-key-for-tests-0123456789"
STAFF_KEY_2 = "second-staff-key-given-as-a-digest"
SERVER_START_S = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(data_dir: Path, **settings: object) -> dict[str, str]:
    """The environment of a subprocess: offline, this data dir, ASSISTANT_* overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(OFFLINE_ENV)
    env["ASSISTANT_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in settings.items():
        env["ASSISTANT_" + key.upper()] = value if isinstance(value, str) else json.dumps(value)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "assistant.cli", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"assistant {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


def ingested_template(tmp_path_factory, model_cache: Path) -> Path:
    """A data dir with the knowledge base indexed, made once per test session (file-locked)."""
    root = tmp_path_factory.getbasetemp() / "web-template"
    root.mkdir(exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = root / "data"
        if not (root / ".ready").exists():
            link_models(data, model_cache)
            run_cli(["ingest", "--json", "--quiet"], base_env(data))
            run_cli(["llm", "convert", "--json"], base_env(data))
            (root / ".ready").touch()
    return data


def link_models(data_dir: Path, model_cache: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    link = data_dir / "models"
    if not link.exists():
        link.symlink_to(model_cache, target_is_directory=True)


def prepared_data_dir(tmp_path_factory, model_cache: Path, name: str) -> Path:
    """A fresh data dir for one test module: its own database, a copy of the ingested index."""
    template = ingested_template(tmp_path_factory, model_cache)
    data = tmp_path_factory.mktemp(name) / "data"
    link_models(data, model_cache)
    shutil.copytree(template / "chroma", data / "chroma")
    return data


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict]:
        records = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        return records


@contextlib.contextmanager
def running_server(data_dir: Path, workers: int = 1, extra_env: dict[str, str] | None = None,
                   **settings: object) -> Iterator[Server]:
    """`assistant serve` on a free loopback port, until the block ends."""
    port = free_port()
    env = {**base_env(data_dir, **settings), **(extra_env or {})}
    log_path = data_dir.parent / f"server-{port}.log"
    command = [sys.executable, "-m", "assistant.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers)]
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", process, log_path, env)
    try:
        wait_healthy(server)
        yield server
    finally:
        stop(process)


def wait_healthy(server: Server, timeout_s: float = SERVER_START_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + "/healthz", timeout=5).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"server not healthy after {timeout_s} s:\n{server.log()[-4000:]}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (uvicorn and its workers), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 15)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        process.wait(timeout=10)


def new_session(url: str) -> dict:
    response = httpx.post(url + "/api/sessions", timeout=30)
    response.raise_for_status()
    return response.json()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
