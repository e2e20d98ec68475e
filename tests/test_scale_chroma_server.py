"""The scale-out setup on loopback: a real `chroma run` server holds the index (ASSISTANT_CHROMA_HOST/
PORT), `assistant ingest` fills it, and `assistant serve --workers 2` answers from it. The app keeps
no state in memory, so one conversation carries on whichever worker takes each request, and
/metrics adds up both workers (PROMETHEUS_MULTIPROC_DIR)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest_web import auth, base_env, free_port, link_models, new_session, run_cli, running_server

pytestmark = pytest.mark.slow
CHROMA = Path(sys.executable).with_name("chroma")
FAQ_QUESTION = "What is the APR of Meadow Cash?"


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    if not CHROMA.exists():
        pytest.skip("the chroma CLI (from the chromadb package) is not installed")
    port = free_port()
    folder = tmp_path_factory.mktemp("chroma-server")
    log = open(folder / "chroma.log", "w")
    process = subprocess.Popen([str(CHROMA), "run", "--path", str(folder / "db"), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                               env={"ANONYMIZED_TELEMETRY": "False", "PATH": "/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2).status_code == 200:
                    break
            if process.poll() is not None:
                raise RuntimeError((folder / "chroma.log").read_text())
            time.sleep(0.3)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_cache, chroma_server):
    data = tmp_path_factory.mktemp("scale") / "data"
    link_models(data, model_cache)
    metrics_dir = tmp_path_factory.mktemp("prometheus")
    settings = {"chroma_host": "127.0.0.1", "chroma_port": str(chroma_server), "web_requests_per_minute": 1000}
    report = run_cli(["ingest", "--json", "--quiet"], base_env(data, **settings))
    assert '"chunks"' in report.stdout
    assert not (data / "chroma").exists()  # nothing went to the embedded store
    with running_server(data, workers=2, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
                        **settings) as srv:
        yield srv


def test_health_reports_the_chroma_server(server):
    body = httpx.get(server.url + "/healthz", timeout=30).json()
    assert body["status"] == "ok" and body["checks"]["chroma"]["server"] is True


def test_answers_from_the_chroma_server_across_workers(server):
    session = new_session(server.url)
    token, conversation_id = session["customer_token"], session["conversation_id"]

    async def turns() -> list[httpx.Response]:
        # A fresh connection per request, so the kernel hands them to either worker.
        results = []
        for question in [FAQ_QUESTION, "How much is the late fee?", "Who can apply for a Meadow loan?"]:
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as c:
                results.append(await c.post("/api/chat", headers=auth(token), json={
                    "message": question, "conversation_id": conversation_id}))
        return results

    responses = asyncio.run(turns())
    assert [r.status_code for r in responses] == [200, 200, 200]
    first = responses[0].json()["reply"]
    assert "9.9%" in first["text"] and first["citations"]
    history = httpx.get(f"{server.url}/api/conversations/{conversation_id}", headers=auth(token), timeout=30).json()
    assert len(history["messages"]) == 6


def test_both_workers_serve(server):
    async def burst() -> set[int]:
        async def one() -> int:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
                return (await c.get("/healthz")).json()["worker"]
        return set(await asyncio.gather(*[one() for _ in range(24)]))

    workers, calls = set(), 0
    for _ in range(5):
        workers |= asyncio.run(burst())
        calls += 24
        if len(workers) >= 2:
            break
    assert len(workers) == 2, workers
    # /metrics adds up every worker's counts (PROMETHEUS_MULTIPROC_DIR), whichever worker answers it.
    metrics = httpx.get(server.url + "/metrics", timeout=30).text
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                  if line.startswith('assistant_http_requests_total{method="GET",route="/healthz"'))
    assert counted >= calls
