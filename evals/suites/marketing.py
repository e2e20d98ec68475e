"""Marketing: the compliance checker against copy labelled by people (ad_copy.jsonl), beside
the flag-nothing baseline; and, outside the ci slice, drafts generated for the briefs
(marketing_briefs.jsonl) when the studio is built. Metrics come from assistant.marketing.evaluate."""

from __future__ import annotations

import importlib.util
from typing import Any

from evals import metrics as m
from evals.results import SuiteResult
from evals.suites.base import DATASETS, SuiteOptions, SuiteUnavailable, load_jsonl, select_rows
from evals.system import System

NAME = "marketing"
DEFAULT_DATA = DATASETS / "ad_copy.jsonl"
BRIEFS = DATASETS / "marketing_briefs.jsonl"

DEFINITIONS = {
    "micro_precision": "Of all rule violations the checker flagged, the share a person also labelled.",
    "micro_recall": "Of all rule violations people labelled, the share the checker flagged.",
    "micro_f1": "Harmonic mean of micro precision and recall (headline).",
    "macro_precision": "Mean precision over the rules that occur in the labels.",
    "macro_recall": "Mean recall over the rules that occur in the labels.",
    "macro_f1": "Harmonic mean of macro precision and recall.",
    "pass_fail_accuracy": "Pieces of copy where the checker's pass/fail agrees with the label (compliant or not).",
    "drafts_share_passing": "Generated draft variants that pass the checker after revision.",
    "drafts_share_marked_correctly": "Draft variants whose pass mark a fresh re-check agrees with.",
    "drafts_share_pairs_distinct": "Pairs of variants of one brief that differ (token Jaccard < 0.8).",
}


def run(system: System, options: SuiteOptions) -> SuiteResult:
    if importlib.util.find_spec("assistant.marketing.evaluate") is None:
        raise SuiteUnavailable("assistant.marketing.evaluate is not built yet")
    from assistant.marketing.evaluate import evaluate_checker

    rows = select_rows(load_jsonl(options.data_file(DEFAULT_DATA)), options.limit, key="channel")
    found = evaluate_checker(rows, settings=system.settings)
    result = SuiteResult(suite=NAME, definitions=dict(DEFINITIONS))
    result.metrics = {
        "micro_precision": found["micro"]["precision"], "micro_recall": found["micro"]["recall"],
        "micro_f1": found["micro"]["f1"], "macro_precision": found["macro"]["precision"],
        "macro_recall": found["macro"]["recall"], "macro_f1": found["macro"]["f1"],
        "pass_fail_accuracy": found["pass_fail_accuracy"], "n": float(found["rows"]),
    }
    # The flag-nothing baseline: every piece passes, no rule is ever flagged.
    result.baselines["flag_nothing"] = {
        "micro_precision": None, "micro_recall": 0.0, "micro_f1": 0.0, "macro_recall": 0.0, "macro_f1": 0.0,
        "pass_fail_accuracy": m.rate(not (r.get("labels") or []) for r in rows),
    }
    result.rows = checker_rows(rows, found["errors"])
    result.by_category = {
        channel: {"n": float(len(rs)), "pass_rate": m.rate(r["passed"] for r in rs)}
        for channel, rs in sorted(_by(result.rows, "category").items())
    }
    result.plots = {"per_rule": {rule: {"precision": v["precision"], "recall": v["recall"],
                                        "support": v["tp"] + v["fn"]} for rule, v in found["per_rule"].items()}}
    if not options.ci and BRIEFS.exists():
        result.note = drafts(system, options, result)
    elif not BRIEFS.exists():
        result.note = "drafts not evaluated: evals/datasets/marketing_briefs.jsonl not found"
    return result


def checker_rows(rows: list[dict[str, Any]], errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    wrong = {e["id"]: e for e in errors}
    out = []
    for row in rows:
        error = wrong.get(row.get("id"))
        why = ""
        if error:
            why = "; ".join(p for p in (
                "missed " + ", ".join(error["missed"]) if error["missed"] else "",
                "false alarm " + ", ".join(error["false_alarms"]) if error["false_alarms"] else "") if p)
        out.append({"id": row.get("id"), "category": row.get("channel"), "question": row.get("text"),
                    "answer": "", "citations": row.get("labels") or [], "path": "compliant" if not row.get("labels") else "violations",
                    "passed": error is None, "why": why})
    return out


def drafts(system: System, options: SuiteOptions, result: SuiteResult) -> str:
    try:
        from assistant.marketing.drafting import MarketingStudio
        from assistant.marketing.evaluate import evaluate_drafts

        briefs = select_rows(load_jsonl(BRIEFS), options.limit)
        studio = MarketingStudio(system.settings, system.chat_model, system.kb.retrieve)
        found = evaluate_drafts(briefs, studio)
    except Exception as exc:  # drafts are optional: the checker metrics stand
        return f"drafts not evaluated: {type(exc).__name__}: {exc}"
    result.metrics.update({
        "drafts_share_passing": found["share_passing"],
        "drafts_share_marked_correctly": found["share_marked_correctly"],
        "drafts_share_pairs_distinct": found["diversity"]["share_pairs_distinct"],
    })
    return f"drafts: {found['variants']} variants for {found['briefs']} briefs"


def _by(rows: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(str(r.get(key)), []).append(r)
    return out
