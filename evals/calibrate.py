"""`python -m evals.calibrate`: sweep the answer skill's two thresholds on qa.jsonl.

    faq_threshold     the best chunk is an FAQ entry scoring at least this: answer with it as is
    answer_min_score  the best chunk scores below this: say "I don't know" (no generation)

Each question is retrieved once and generated once (with the FAQ path off and no minimum),
so every (faq_threshold, answer_min_score) pair is scored from the same replies: the FAQ
entry's text, the no-answer reply, or the generated (verified) answer. Prints key-fact
accuracy, no-answer correctness and their combination for each pair, best first."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.config import apply_offline_env
from evals import metrics as m
from evals.suites.base import DATASETS, load_jsonl, progress, select_rows

FAQ_GRID = [0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95, 1.01]  # 1.01: the FAQ path off
MIN_GRID = [0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60]


@dataclass
class Observed:
    row: dict[str, Any]
    best_score: float
    best_is_faq: bool
    faq_text: str
    generated_text: str | None  # None: no setting of the grid generates for this row
    generated_path: str | None


def observe(system: Any, rows: list[dict[str, Any]], faq_grid: list[float], min_grid: list[float],
            show_progress: bool = True) -> list[Observed]:
    from assistant.skills.answer import AnswerSkill, faq_answer, most_similar, product_filter, resolve_query
    from assistant.skills.base import final_reply
    from assistant.types import Conversation, Message, RouteDecision, Turn

    open_settings = system.settings.model_copy(update={"faq_threshold": 1.01, "answer_min_score": 0.0})
    skill = AnswerSkill(open_settings, system.kb, system.chat_model, system.terms)
    observed = []
    for row in progress(rows, "calibrate", len(rows), show_progress):
        conversation = Conversation()
        for earlier in row.get("history") or []:
            conversation.messages += [Message(role="user", content=earlier), Message(role="assistant", content="")]
        query, products = resolve_query(conversation, row["question"], system.terms)
        chunks = system.kb.retrieve(query, system.settings.retrieval_k, filters=product_filter(products))
        best = most_similar(chunks)  # the skill's own choice
        score = best.score if best else 0.0
        is_faq = bool(best and best.type == "faq")
        # Generate only where some pair of the grid would take the generated path.
        always_faq = is_faq and score >= max(faq_grid)
        never_generates = score < min(min_grid)
        text, path = None, None
        if best is not None and not always_faq and not never_generates:
            turn = Turn(conversation=conversation, message=row["question"], route=RouteDecision(intent="answer"))
            reply = final_reply(skill.stream(turn))
            text, path = reply.text, reply.path
        observed.append(Observed(row, score, is_faq, faq_answer(best) if is_faq else "", text, path))
    return observed


def outcome(o: Observed, faq_threshold: float, min_score: float) -> tuple[str, str]:
    """The path and text the answer skill would give with these thresholds (its own order)."""
    if o.best_is_faq and o.best_score >= faq_threshold:
        return "faq", o.faq_text
    if o.best_score < min_score or o.generated_text is None:
        return "no_answer", ""
    return o.generated_path or "generated", o.generated_text


def sweep(observed: list[Observed], faq_grid: list[float], min_grid: list[float]) -> list[dict[str, Any]]:
    table = []
    for faq_t in faq_grid:
        for min_s in min_grid:
            answerable, unanswerable, paths = [], [], []
            for o in observed:
                path, text = outcome(o, faq_t, min_s)
                paths.append(path)
                no_answer = path == "no_answer"
                if o.row.get("answerable"):
                    answerable.append((m.all_facts_present(o.row.get("key_facts") or [], text) and not no_answer, no_answer))
                else:
                    unanswerable.append(no_answer)
            correct = [a for a, _ in answerable] + unanswerable
            table.append({
                "faq_threshold": faq_t, "answer_min_score": min_s,
                "key_fact_accuracy": m.rate(a for a, _ in answerable),
                "no_answer_correct": m.rate(unanswerable),
                "false_no_answer_rate": m.rate(n for _, n in answerable),
                "outcome_accuracy": m.rate(correct),
                "faq_share": m.rate(p == "faq" for p in paths),
            })
    return sorted(table, key=lambda r: (-(r["outcome_accuracy"] or 0), -(r["key_fact_accuracy"] or 0),
                                        -(r["no_answer_correct"] or 0)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m evals.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DATASETS / "qa.jsonl", help="a qa.jsonl-format file")
    p.add_argument("--limit", type=int, default=None, help="at most N rows (stratified by category)")
    p.add_argument("--data-dir", type=Path, default=None, help="use this data dir instead of a fresh temporary one")
    p.add_argument("--faq", default=",".join(map(str, FAQ_GRID)), help="faq_threshold values, comma-separated")
    p.add_argument("--min", default=",".join(map(str, MIN_GRID)), help="answer_min_score values, comma-separated")
    p.add_argument("--top", type=int, default=15, help="rows of the table to print")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from evals.system import System

    apply_offline_env()
    args = parse_args(argv)
    try:
        faq_grid = [float(v) for v in args.faq.split(",")]
        min_grid = [float(v) for v in args.min.split(",")]
        rows = select_rows(load_jsonl(args.data), args.limit)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    system = System.build(data_dir=args.data_dir)
    try:
        observed = observe(system, rows, faq_grid, min_grid, show_progress=not (args.quiet or args.json))
        current = (system.settings.faq_threshold, system.settings.answer_min_score)
    finally:
        system.close()
    table = sweep(observed, faq_grid, min_grid)
    now = next((r for r in sweep(observed, [current[0]], [current[1]])), None)
    if args.json:
        sys.stdout.write(json.dumps({"rows": len(rows), "best": table[0], "current": now, "table": table}) + "\n")
        return 0
    print_table(table[: args.top], now, len(rows))
    return 0


def print_table(table: list[dict[str, Any]], current: dict[str, Any] | None, n: int) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Table(title=f"Answer-skill thresholds on {n} questions (best first)")
    columns = ["faq_threshold", "answer_min_score", "outcome_accuracy", "key_fact_accuracy", "no_answer_correct",
               "false_no_answer_rate", "faq_share"]
    short = {"faq_threshold": "faq_thr", "answer_min_score": "min_score", "outcome_accuracy": "outcome",
             "key_fact_accuracy": "key_facts", "no_answer_correct": "no_answer", "false_no_answer_rate": "false_no_ans",
             "faq_share": "faq_share"}
    for c in columns:
        out.add_column(short[c], justify="right")
    for row in ([current] if current else []) + table:
        style = "bold" if row is current else None
        out.add_row(*[f"{row[c]:.3f}" if isinstance(row[c], float) else "-" for c in columns], style=style)
    Console().print(out)
    print("first row (bold): the current settings. outcome = answerable rows with every key fact + unanswerable "
          "rows with a no-answer, over all rows; key_facts / no_answer / false_no_ans as in the QA suite")


if __name__ == "__main__":
    sys.exit(main())
