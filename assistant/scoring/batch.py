"""Batch scoring: a CSV of applicants (one column per applicant field, any extra columns such as an
id are passed through) -> the same rows with the decision, score, reasons and offer."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from assistant.scoring.applicant import ApplicantError
from assistant.scoring.decision import MAX_REASONS, Scorer

CHUNK = 5000
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def read_applicants(scorer: Scorer, path: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    frame = pd.read_csv(path, dtype=object, keep_default_na=True)
    names = [f.name for f in scorer.info.fields]
    missing = [f.name for f in scorer.info.fields if f.required and f.name not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing applicant columns: {', '.join(missing)}")
    kinds = {f.name: f.kind for f in scorer.info.fields}
    records = []
    for row in frame[[c for c in names if c in frame.columns]].to_dict("records"):
        records.append({k: _cell(v, kinds[k]) for k, v in row.items() if not _blank(v)})
    return frame, records


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value == ""


def _cell(value: Any, kind: str) -> Any:
    """CSV text -> the field's type; anything unreadable stays as text so validation names it."""
    text = str(value).strip()
    if kind == "bool":
        low = text.lower()
        return True if low in _TRUE else False if low in _FALSE else text
    if kind in ("number", "integer"):
        try:
            number = float(text.replace(",", ""))
        except ValueError:
            return text
        return int(number) if kind == "integer" and number.is_integer() else number
    return text


def flatten(result: dict[str, Any] | ApplicantError) -> dict[str, Any]:
    if isinstance(result, ApplicantError):
        return {"decision": "", "error": str(result)}
    row = {k: result.get(k) for k in ("decision", "score", "probability_of_default", "band", "indicative_limit",
                                      "apr_min_pct", "apr_max_pct", "model_version")}
    reasons = result.get("reasons", [])
    row["reason_codes"] = ";".join(r["code"] for r in reasons)
    for i in range(MAX_REASONS):
        row[f"reason_{i + 1}"] = reasons[i]["text"] if i < len(reasons) else ""
    row["counterfactual"] = (result.get("counterfactual") or {}).get("text", "")
    row["error"] = ""
    return row


def score_records(scorer: Scorer, records: list[dict[str, Any]], progress: bool = True) -> list[dict[str, Any]]:
    from tqdm import tqdm

    out: list[dict[str, Any]] = []
    with tqdm(total=len(records), unit="applicant", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(records), CHUNK):
            chunk = records[start:start + CHUNK]
            out += [flatten(r) for r in scorer.score_many(chunk)]
            bar.update(len(chunk))
    return out


def batch_file(scorer: Scorer, source: Path, target: Path, progress: bool = True) -> dict[str, Any]:
    frame, records = read_applicants(scorer, source)
    started = time.perf_counter()
    results = score_records(scorer, records, progress)
    seconds = time.perf_counter() - started
    results_frame = pd.DataFrame(results)
    if "score" in results_frame:
        results_frame["score"] = results_frame["score"].astype("Int64")  # whole points, blank when none
    scored = pd.concat([frame.reset_index(drop=True), results_frame], axis=1)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    scored.to_csv(target, index=False)
    counts = scored["decision"].replace("", "invalid").value_counts().to_dict()
    return {"input": str(source), "output": str(target), "rows": len(records), "seconds": round(seconds, 3),
            "applicants_per_s": round(len(records) / max(seconds, 1e-9)), "decisions": counts,
            "model_version": scorer.model.version}
