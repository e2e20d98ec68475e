"""Bounded load test on loopback: N concurrent customers for D seconds asking FAQ-type questions
(and some filing complaints), against a running app or one this script starts.

    python scripts/loadtest.py                       # starts `assistant serve` on a free port
    python scripts/loadtest.py --url http://127.0.0.1:7860 --customers 50 --duration 60
    python scripts/loadtest.py --mode model --customers 8 --duration 120   # questions the model answers

Reports throughput, p50/p95/p99 latency (all turns, FAQ-path turns, generated turns), status counts,
503s apart from other errors (and split: busy, store unavailable), and lost tickets (filed with 201 but
not listed afterwards); writes bench/load.json. Complaints carry an Idempotency-Key and are retried
once with it after a transport error, so a retry never files a second ticket. A benchmark, not a CI
test: the numbers depend on the machine."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
# FAQ-type questions that the answer skill takes on its FAQ path (the report counts the paths taken).
QUESTIONS = [
    "What is the APR of Meadow Cash?", "How much is the late fee?", "What documents do I need to apply?",
    "Is there an early repayment fee?", "Is there an annual fee?", "How do I make a complaint to Meadow?",
    "Can I make a partial early repayment?", "How long does it take to get a decision?",
    "Is there a fee for paying off Meadow Cash early?", "How do I reset my Meadow app password?",
]
# Questions no FAQ entry answers word for word: the answer skill retrieves and the model writes the answer.
MODEL_QUESTIONS = [
    "I earn 6000 a month and want 20000 for a used car. Which of your loans fits better, and what would the "
    "total cost roughly look like over 12 months?",
    "Explain in simple words how the interest on Meadow Flex differs from Meadow Cash.",
    "I'm self-employed with irregular income. What should I know before borrowing from Meadow?",
    "If I repay Meadow Cash two months early, what happens to the interest and the fees?",
    "What happens step by step if I miss a payment on Meadow Mall installments?",
    "My salary comes on the 20th but my repayment is due on the 15th. What are my options?",
]
COMPLAINT = "I was charged a late fee although I paid on time. Please refund it."


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 0.50), "p95": percentile(values, 0.95),
            "p99": percentile(values, 0.99), "max": round(max(values), 1) if values else 0.0,
            "mean": round(statistics.fmean(values), 1) if values else 0.0}


class Stats:
    def __init__(self) -> None:
        self.latency_ms: list[float] = []
        self.faq_latency_ms: list[float] = []
        self.generated_latency_ms: list[float] = []
        self.unavailable: Counter[str] = Counter()  # 503s by error type: busy, store_unavailable, ...
        self.statuses: Counter[int] = Counter()
        self.paths: Counter[str] = Counter()
        self.errors: list[str] = []
        self.tickets: list[tuple[str, str]] = []  # (customer token, ticket id)


async def customer(client: httpx.AsyncClient, stop_at: float, stats: Stats, think_s: tuple[float, float],
                   complaint_share: float, rng: random.Random, count_from: float, mode: str = "faq") -> None:
    questions = MODEL_QUESTIONS if mode == "model" else QUESTIONS
    try:
        response = await client.post("/api/sessions")
        response.raise_for_status()
        session = response.json()
    except Exception as exc:  # counted, the run goes on
        stats.errors.append(f"session: {exc!r}")
        return
    headers = {"Authorization": f"Bearer {session['customer_token']}"}
    while time.monotonic() < stop_at:
        complaint = rng.random() < complaint_share
        started = time.perf_counter()
        try:
            if complaint:
                response = await file_complaint(client, headers, session["conversation_id"], rng)
            else:
                # A new conversation per question: a short question later in a conversation is read
                # as a follow-up of the earlier one, which is another workload (the model answers).
                response = await client.post("/api/chat", headers=headers, json={"message": rng.choice(questions)})
        except httpx.HTTPError as exc:
            stats.errors.append(repr(exc))
            continue
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code == 201 and complaint:  # every ticket is checked, warm-up ones too
            stats.tickets.append((session["customer_token"], response.json()["id"]))
        if time.monotonic() >= count_from or response.status_code >= 500:  # the warm-up's latencies don't count
            record(stats, response, elapsed, complaint)
        if response.status_code in (429, 503):
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        await asyncio.sleep(rng.uniform(*think_s))


async def file_complaint(client: httpx.AsyncClient, headers: dict[str, str], conversation_id: str,
                         rng: random.Random) -> httpx.Response:
    """One complaint; after a transport error, one retry with the same Idempotency-Key."""
    keyed = {**headers, "Idempotency-Key": f"load-{rng.getrandbits(64):016x}"}
    body = {"text": COMPLAINT, "conversation_id": conversation_id}
    try:
        return await client.post("/api/complaints", headers=keyed, json=body)
    except httpx.TransportError:
        return await client.post("/api/complaints", headers=keyed, json=body)


def record(stats: Stats, response: httpx.Response, elapsed_ms: float, complaint: bool) -> None:
    stats.statuses[response.status_code] += 1
    if response.status_code == 503:
        stats.unavailable[_error_type(response)] += 1
    if response.status_code == 200 and not complaint:
        path = response.json()["reply"]["path"]
        stats.paths[path] += 1
        stats.latency_ms.append(elapsed_ms)
        if path == "faq":
            stats.faq_latency_ms.append(elapsed_ms)
        elif path == "generated":
            stats.generated_latency_ms.append(elapsed_ms)


def _error_type(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["type"])
    except (ValueError, KeyError, TypeError):
        return "unknown"


async def lost_tickets(client: httpx.AsyncClient, filed: list[tuple[str, str]]) -> int:
    lost = 0
    for token, ticket_id in filed:
        response = await client.get(f"/api/tickets/{ticket_id}", headers={"Authorization": f"Bearer {token}"})
        lost += response.status_code != 200
    return lost


async def run(url: str, customers: int, duration: float, think_s: tuple[float, float], complaint_share: float,
              seed: int, warmup: float = 5.0, mode: str = "faq") -> dict:
    stats = Stats()
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends, so no request races a closing socket.
    limits = httpx.Limits(max_connections=customers + 10, max_keepalive_connections=customers + 10,
                          keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        health = (await client.get("/healthz")).json()
        count_from = time.monotonic() + warmup
        stop_at = count_from + duration
        await asyncio.gather(*[customer(client, stop_at, stats, think_s, complaint_share, random.Random(seed + i),
                                        count_from, mode) for i in range(customers)])
        wall = duration
        lost = await lost_tickets(client, stats.tickets)
    requests = sum(stats.statuses.values())
    return {
        "url": url, "mode": mode, "customers": customers, "duration_s": duration, "warmup_s": warmup,
        "think_s": list(think_s), "complaint_share": complaint_share,
        "requests": requests, "throughput_rps": round(requests / wall, 2),
        "latency_ms": summary(stats.latency_ms), "faq_latency_ms": summary(stats.faq_latency_ms),
        "generated_latency_ms": summary(stats.generated_latency_ms),
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "errors_5xx": sum(v for k, v in stats.statuses.items() if k >= 500 and k != 503),
        "errors_other": sum(v for k, v in stats.statuses.items() if k >= 400 and k not in (429, 503)),
        "unavailable_503": stats.statuses.get(503, 0), "unavailable_503_by_type": dict(stats.unavailable),
        "busy_503": stats.unavailable.get("busy", 0), "rate_limited_429": stats.statuses.get(429, 0),
        "transport_errors": len(stats.errors), "error_samples": stats.errors[:5], "paths": dict(stats.paths),
        "tickets_filed": len(stats.tickets), "tickets_lost": lost,
        "server": {"llm": health["checks"]["llm"].get("backend"), "turns": health.get("turns")},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }


def start_server(port: int, workers: int, log: Path | None) -> subprocess.Popen:
    env = {**os.environ, "ASSISTANT_WEB_REQUESTS_PER_MINUTE": os.environ.get("ASSISTANT_WEB_REQUESTS_PER_MINUTE",
                                                                            "600"),
           "ASSISTANT_WEB_SESSIONS_PER_MINUTE": os.environ.get("ASSISTANT_WEB_SESSIONS_PER_MINUTE", "10000")}
    process = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--host", "127.0.0.1",
                                "--port", str(port), "--workers", str(workers)], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=open(log, "w") if log else subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit("the server exited: run `assistant ingest` first, then `assistant serve` to see why")
        time.sleep(0.5)
    process.terminate()
    raise SystemExit("the server did not become healthy in 300 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running app; default: start `assistant serve` on a free loopback port")
    parser.add_argument("--mode", choices=["faq", "model"], default="faq",
                        help="faq: questions with FAQ answers (fast path); model: questions the model answers")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    parser.add_argument("--think", type=float, nargs=2, default=(1.0, 3.0), metavar=("MIN", "MAX"),
                        help="seconds a customer waits between messages")
    parser.add_argument("--complaints", type=float, default=0.05, help="share of requests that file a complaint")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers when this script starts the app")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "load.json")
    parser.add_argument("--server-log", type=Path, help="keep the started server's JSON log here")
    args = parser.parse_args()

    process = None
    url = args.url
    if url is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        process = start_server(port, args.workers, args.server_log)
        url = f"http://127.0.0.1:{port}"
    try:
        result = asyncio.run(run(url, args.customers, args.duration, tuple(args.think), args.complaints, args.seed,
                                 args.warmup, args.mode))
    finally:
        if process is not None:
            os.killpg(process.pid, 15)
            process.wait(timeout=30)
    result["workers"] = args.workers if process is not None else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
