"""QA: the assistant answers qa.jsonl; the textbook RAG chain answers the same questions.

Retrieval is measured on its own (recall@k, MRR, hybrid and dense-only), then every question
goes through the whole pipeline, then through the baseline chain."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from evals import metrics as m
from evals.results import SuiteResult
from evals.suites.base import DATASETS, SuiteOptions, load_jsonl, progress, select_rows
from evals.system import System, TargetReply

log = logging.getLogger(__name__)

NAME = "qa"
DEFAULT_DATA = DATASETS / "qa.jsonl"
CI_ROWS = 40
CI_QUOTAS = {"unanswerable": 8, "followup": 6}
ANSWER_PATHS = {"faq", "generated", "extractive", "tool"}  # replies that state facts

DEFINITIONS = {
    "key_fact_accuracy": "Answerable questions whose reply contains every expected key fact "
                         "(case-insensitive; thousands separators and hyphens ignored).",
    "key_fact_recall": "Mean share of the expected key facts found in the reply (answerable questions).",
    "hallucinated_figure_rate": "Replies stating facts (not a no-answer) that contain a figure found in none of the "
                                "cited passages nor in the assistant's fixed replies. Target 0. The baseline is "
                                "checked against all the passages it was given.",
    "citation_precision": "Mean share of the cited documents that are gold sources (answerable questions with citations).",
    "no_answer_correct": "Unanswerable questions met with a no-answer, a hand-off or an out-of-scope refusal "
                         "(path no_answer/handoff/refused; for the baseline, a reply that says it does not know).",
    "false_no_answer_rate": "Answerable questions that got a no-answer instead of an answer.",
    "pass_rate": "Rows passed: answerable = all key facts and no invented figure; unanswerable = a no-answer.",
    "recall_at_5": "Retrieval (hybrid, as the answer skill retrieves): mean share of a question's gold documents "
                   "among the top 5 chunks' documents (answerable questions).",
    "hit_at_5": "Retrieval (hybrid): answerable questions with at least one gold document in the top 5.",
    "mrr": "Retrieval (hybrid): mean of 1/rank of the first chunk from a gold document (0 if none in the top 5).",
    "recall_at_5_dense": "As recall_at_5, dense (embedding) search only.",
    "hit_at_5_dense": "As hit_at_5, dense search only.",
    "mrr_dense": "As mrr, dense search only.",
    "latency_p50_ms": "Median wall-clock time of one reply, in milliseconds.",
    "latency_p95_ms": "95th percentile of the reply time, in milliseconds.",
    "path_share.*": "Share of replies that took each path (faq, generated, extractive, no_answer, ...).",
}


def run(system: System, options: SuiteOptions) -> SuiteResult:
    rows = load_jsonl(options.data_file(DEFAULT_DATA))
    limit = options.limit or (CI_ROWS if options.ci else None)
    rows = select_rows(rows, limit, quotas=CI_QUOTAS if options.ci and not options.limit else None)
    result = SuiteResult(suite=NAME, definitions=dict(DEFINITIONS))
    notes: list[str] = []

    if not system.endpoint:
        result.metrics.update(retrieval_metrics(system, rows, options))
    else:
        notes.append("retrieval metrics measured only for the embedded backend")

    records = [grade(row, ask(system, row), system.fixed_texts) for row in
               progress(rows, "qa: assistant", len(rows), options.progress)]
    result.metrics.update(summarise(records))

    if options.baseline and not options.ci and not system.endpoint:
        baseline = run_baseline(system, rows, options)
        for record, b in zip(records, baseline):
            record["baseline"] = b
        result.baselines["langchain_rag"] = summarise(baseline)
    elif system.endpoint:
        notes.append("baseline chain not run against an endpoint (it needs the local retriever and model)")
    else:
        notes.append("baseline chain skipped (--no-baseline or the ci slice)")

    if options.judge:
        from evals.judge import judge_records

        judged, note = judge_records(records, system.settings)
        result.metrics.update(judged)
        notes.append(note)
        if judged:
            result.definitions.update({
                "judge_faithfulness": "LLM judge (RAGAS Faithfulness): share of the reply's claims supported by the cited passages.",
                "judge_answer_relevancy": "LLM judge (RAGAS ResponseRelevancy): how well the reply addresses the question."})

    for record in records:
        record.pop("contexts", None)  # passages were for the judge; results.json keeps doc ids
    result.rows = records
    result.by_category = by_category(records)
    result.plots = {
        "latency_by_path": latency_by_path(records),
        "path_mix": m.share(r["path"] or "unknown" for r in records),
    }
    if "baseline" in (records[0] if records else {}):
        result.plots["baseline_latency"] = [r["baseline"]["latency_ms"] for r in records]
    result.note = "; ".join(n for n in notes if n)
    return result


# --- retrieval ---------------------------------------------------------------------------------


def retrieval_metrics(system: System, rows: list[dict[str, Any]], options: SuiteOptions, k: int = 5) -> dict[str, float | None]:
    from assistant.skills.answer import product_filter, resolve_query

    found: dict[str, list[float]] = {name: [] for name in
                                     ("recall_at_5", "hit_at_5", "mrr", "recall_at_5_dense", "hit_at_5_dense", "mrr_dense")}
    answerable = [r for r in rows if r.get("answerable")]
    for row in progress(answerable, "qa: retrieval", len(answerable), options.progress):
        query, products = resolve_query(_conversation(row.get("history") or []), row["question"], system.terms)
        for hybrid, suffix in ((True, ""), (False, "_dense")):
            docs = [c.doc_id for c in system.kb.retrieve(query, k, filters=product_filter(products), hybrid=hybrid)]
            gold = row.get("sources") or []
            found["recall_at_5" + suffix].append(m.recall_at_k(docs, gold, k))
            found["hit_at_5" + suffix].append(m.hit_at_k(docs, gold, k))
            found["mrr" + suffix].append(m.reciprocal_rank(docs, gold))
    return {name: m.mean(values) for name, values in found.items()}


def _conversation(history: list[str]):
    from assistant.types import Conversation, Message

    conversation = Conversation()
    for earlier in history:
        conversation.messages += [Message(role="user", content=earlier), Message(role="assistant", content="")]
    return conversation


# --- the assistant -----------------------------------------------------------------------------


def ask(system: System, row: dict[str, Any]) -> TargetReply:
    return system.session(row.get("history") or []).send(row["question"])


def grade(row: dict[str, Any], reply: TargetReply, fixed_texts: list[str]) -> dict[str, Any]:
    """One row's outcome, with the reasons it failed."""
    # A tool's result (the loan calculator's quote) backs the figures it returned.
    structured = [json.dumps(t.get("result"), default=str) for t in reply.tool_calls if t.get("result")]
    return grade_answer(row, reply.text, reply.path, reply.cited_doc_ids, reply.cited_texts,
                        fixed_texts, reply.latency_ms, structured=structured, error=reply.error,
                        retrieved=reply.retrieved[:5], tool_calls=[t.get("name") for t in reply.tool_calls],
                        contexts=reply.cited_texts or [])


def grade_answer(row: dict[str, Any], text: str, path: str | None, cited: list[str], cited_texts: list[str] | None,
                 fixed_texts: list[str], latency_ms: float, structured: list[str] | None = None,
                 **extra: Any) -> dict[str, Any]:
    facts = row.get("key_facts") or []
    answerable = bool(row.get("answerable"))
    no_answer = m.is_no_answer(path, text)
    states_facts = not no_answer and (path in ANSWER_PATHS if path else bool(text))
    # Figures the customer wrote (an amount, an application number) are not invented by echoing them.
    allowed = [*fixed_texts, row.get("question", ""), *(row.get("history") or [])]
    invented = (m.invented_figures(text, cited_texts, allowed, structured or [])
                if (states_facts and cited_texts is not None) else [])
    found = m.facts_found(facts, text)
    why: list[str] = []
    if extra.get("error"):
        why.append(f"error: {extra['error']}")
    if answerable:
        if no_answer:
            why.append("no answer to an answerable question")
        missing = [f for f, ok in zip(facts, found) if not ok]
        if missing:
            why.append("missing key facts: " + ", ".join(missing))
    elif not no_answer:
        why.append(f"answered an unanswerable question (path {path or 'unknown'})")
    if invented:
        why.append("invented figures: " + ", ".join(invented))
    return {
        "id": row.get("id"), "category": row.get("category"), "question": row.get("question"),
        "history": row.get("history") or [], "answerable": answerable, "answer": text, "path": path,
        "citations": cited, "key_facts": facts, "facts_found": found,
        "all_facts": bool(facts) and all(found), "no_answer": no_answer, "states_facts": states_facts,
        "invented": invented, "figures_checked": cited_texts is not None,
        "citation_precision": m.citation_precision(cited, row.get("sources") or []) if answerable else None,
        "gold_sources": row.get("sources") or [], "latency_ms": latency_ms,
        "passed": not why, "why": "; ".join(why), **extra,
    }


def summarise(records: list[dict[str, Any]]) -> dict[str, float | None]:
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    stating = [r for r in records if r["states_facts"] and r["figures_checked"]]
    latencies = [r["latency_ms"] for r in records]
    out: dict[str, float | None] = {
        "key_fact_accuracy": m.rate(r["all_facts"] for r in answerable),
        "key_fact_recall": m.mean((sum(r["facts_found"]) / len(r["facts_found"])) if r["facts_found"] else None
                                  for r in answerable),
        "hallucinated_figure_rate": m.rate(bool(r["invented"]) for r in stating),
        "citation_precision": m.mean(r["citation_precision"] for r in answerable),
        "no_answer_correct": m.rate(r["no_answer"] for r in unanswerable),
        "false_no_answer_rate": m.rate(r["no_answer"] for r in answerable),
        "pass_rate": m.rate(r["passed"] for r in records),
        "latency_p50_ms": m.percentile(latencies, 50),
        "latency_p95_ms": m.percentile(latencies, 95),
        "n": float(len(records)),
    }
    for path, value in m.share(r["path"] or "unknown" for r in records).items():
        out[f"path_share.{path}"] = value
    return out


def by_category(records: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["category"] or "", []).append(r)
    table = {}
    for category, rs in sorted(groups.items()):
        answerable = [r for r in rs if r["answerable"]]
        row = {
            "n": float(len(rs)),
            "pass_rate": m.rate(r["passed"] for r in rs),
            "key_fact_accuracy": m.rate(r["all_facts"] for r in answerable),
            "no_answer_correct": m.rate(r["no_answer"] for r in rs if not r["answerable"]),
        }
        if rs and "baseline" in rs[0]:
            row["baseline_pass_rate"] = m.rate(r["baseline"]["passed"] for r in rs)
        table[category] = row
    return table


def latency_by_path(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in records:
        out.setdefault(r["path"] or "unknown", []).append(r["latency_ms"])
    return out


# --- the baseline chain ------------------------------------------------------------------------


def run_baseline(system: System, rows: list[dict[str, Any]], options: SuiteOptions) -> list[dict[str, Any]]:
    from evals.baseline import BaselineRAG

    chain = BaselineRAG(system.kb, system.chat_model, system.settings.prompts_dir, k=system.settings.retrieval_k)
    graded = []
    for row in progress(rows, "qa: baseline chain", len(rows), options.progress):
        started = time.perf_counter()
        try:
            out = chain.answer(row["question"])
            text, docs, error = out["answer"], out["context"], None
        except Exception as exc:  # counted as a failed row
            log.exception("baseline failed on %s", row.get("id"))
            text, docs, error = "", [], f"{type(exc).__name__}: {exc}"
        latency = round((time.perf_counter() - started) * 1000, 1)
        path = "no_answer" if m.looks_like_no_answer(text) else "generated"
        # The chain cites nothing: every passage it was given counts as cited.
        cited = list(dict.fromkeys(d.metadata["doc_id"] for d in docs))
        record = grade_answer(row, text, path, cited, [d.page_content for d in docs], system.fixed_texts,
                              latency, error=error)
        graded.append({k: record[k] for k in ("answer", "path", "citations", "facts_found", "all_facts", "no_answer",
                                              "states_facts", "figures_checked", "invented", "citation_precision",
                                              "answerable", "latency_ms", "passed", "why", "category")})
    return graded
