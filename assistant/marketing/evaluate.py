"""Evaluation functions for the marketing studio, called by the eval suite (evals/ imports this;
this module imports nothing from evals/).

- evaluate_checker(rows): the compliance checker against copy labelled by people (ad_copy.jsonl):
  precision and recall per rule, micro and macro averages, and pass/fail agreement per piece.
- evaluate_drafts(briefs, studio): drafts generated for briefs (marketing_briefs.jsonl): the share
  passing after revision, the share marked correctly (a fresh re-check agrees with the mark) and
  how much the variants of one brief differ from each other.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Iterable

from assistant.marketing.compliance import ComplianceChecker
from assistant.marketing.drafting import jaccard

DIVERSITY_THRESHOLD = 0.8  # two variants with token Jaccard below this count as different


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# --- the checker against labelled copy ----------------------------------------------------------


def evaluate_checker(rows: Iterable[dict[str, Any]], checker: ComplianceChecker | None = None,
                     settings: Any = None) -> dict[str, Any]:
    """rows: {"id", "text", "product", "channel", "labels": [rule ids]} (labels empty = compliant)."""
    checker = checker or _default_checker(settings)
    counts: dict[str, dict[str, int]] = {}
    errors: list[dict[str, Any]] = []
    agree = 0
    rows = list(rows)
    for row in rows:
        report = checker.check_copy(row["text"], product=row.get("product"), channel=row.get("channel"))
        predicted, gold = set(report.rule_ids), set(row.get("labels") or [])
        for rule in predicted | gold:
            c = counts.setdefault(rule, {"tp": 0, "fp": 0, "fn": 0})
            c["tp" if rule in predicted and rule in gold else "fp" if rule in predicted else "fn"] += 1
        agree += (not gold) == report.passed
        if predicted != gold:
            errors.append({"id": row.get("id"), "missed": sorted(gold - predicted),
                           "false_alarms": sorted(predicted - gold), "text": row["text"][:160]})
    per_rule = {rule: _prf(**c) | c for rule, c in sorted(counts.items())}
    total = {k: sum(c[k] for c in counts.values()) for k in ("tp", "fp", "fn")}
    rules_with_support = [r for r, c in counts.items() if c["tp"] + c["fn"] > 0]
    macro = {
        "precision": _mean(per_rule[r]["precision"] for r in rules_with_support),
        "recall": _mean(per_rule[r]["recall"] for r in rules_with_support),
    }
    macro["f1"] = _f1(macro["precision"], macro["recall"])
    return {
        "rows": len(rows), "per_rule": per_rule, "micro": _prf(**total) | total, "macro": macro,
        "pass_fail_accuracy": agree / len(rows) if rows else 0.0, "errors": errors,
    }


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _default_checker(settings: Any) -> ComplianceChecker:
    from assistant.marketing.compliance import load_rule_pack, rules_path
    from assistant.config import Settings
    from assistant.knowledge.terms import load_terms

    settings = settings or Settings()
    return ComplianceChecker(load_rule_pack(rules_path(settings)), load_terms(settings.terms_file))


# --- generated drafts ---------------------------------------------------------------------------


def evaluate_drafts(briefs: Iterable[Any], studio: Any) -> dict[str, Any]:
    """Draft every brief; re-check every variant with a fresh call; measure diversity."""
    from assistant.marketing.drafting import Brief

    variants = passing = marked_right = marked_passing_but_failing = model_wording = 0
    pair_count = diverse_pairs = 0
    jaccards: list[float] = []
    per_brief = []
    for raw in briefs:
        brief = raw if isinstance(raw, Brief) else Brief.model_validate(raw)
        draft_set = studio.draft(brief)
        texts = [v.text for v in draft_set.variants]
        for variant in draft_set.variants:
            recheck = studio.check_draft_text(variant.text, brief)
            variants += 1
            passing += variant.passed
            marked_right += variant.passed == recheck.passed
            marked_passing_but_failing += variant.passed and not recheck.passed
            model_wording += variant.wording == "llm"
        sims = [jaccard(a, b) for a, b in itertools.combinations(texts, 2)]
        jaccards += sims
        pair_count += len(sims)
        diverse_pairs += sum(s < DIVERSITY_THRESHOLD for s in sims)
        per_brief.append({"brief": brief.name, "variants": len(texts),
                          "passed": sum(v.passed for v in draft_set.variants),
                          "distinct": distinct_count(texts), "max_jaccard": max(sims, default=0.0)})
    return {
        "briefs": len(per_brief), "variants": variants,
        "share_passing": passing / variants if variants else 0.0,
        "share_marked_correctly": marked_right / variants if variants else 0.0,
        "marked_passing_but_failing": marked_passing_but_failing,
        "share_model_wording": model_wording / variants if variants else 0.0,
        "diversity": {
            "pairs": pair_count, "share_pairs_distinct": diverse_pairs / pair_count if pair_count else 1.0,
            "mean_jaccard": _mean(jaccards), "threshold": DIVERSITY_THRESHOLD,
            "distinct_variants": sum(b["distinct"] for b in per_brief),
        },
        "per_brief": per_brief,
    }


def distinct_count(texts: list[str]) -> int:
    """How many texts differ (Jaccard < threshold) from every text kept before them."""
    kept: list[str] = []
    for text in texts:
        if all(jaccard(text, k) < DIVERSITY_THRESHOLD for k in kept):
            kept.append(text)
    return len(kept)
