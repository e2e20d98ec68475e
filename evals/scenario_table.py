"""The scenario suite's per-conversation results as a Markdown table (`scenarios.md` in each
report folder; docs/evals.md quotes one): id, skill, turns passed, and why the first failing
turn failed."""

from __future__ import annotations

from typing import Any


def scenario_rows(suite: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for row in suite.get("rows") or []:
        turns = row.get("turns") or []
        failed = next((i for i, t in enumerate(turns) if not t.get("passed")), None)
        out.append({"id": row.get("id"), "skill": row.get("category"), "turns": len(turns),
                    "turns_passed": sum(1 for t in turns if t.get("passed")), "passed": bool(row.get("passed")),
                    "why": row.get("why") or (turns[failed].get("why") if failed is not None else "")})
    return sorted(out, key=lambda r: (r["skill"] or "", r["id"] or ""))


def scenario_markdown(suite: dict[str, Any]) -> str:
    rows = scenario_rows(suite)
    passed = sum(r["passed"] for r in rows)
    lines = [f"{passed} of {len(rows)} conversations pass; "
             f"{sum(r['turns_passed'] for r in rows)} of {sum(r['turns'] for r in rows)} turns.", "",
             "| scenario | skill | turns passed | result |", "|---|---|---|---|"]
    for r in rows:
        result = "pass" if r["passed"] else "FAIL: " + str(r["why"]).replace("|", "/")[:160]
        lines.append(f"| {r['id']} | {r['skill']} | {r['turns_passed']}/{r['turns']} | {result} |")
    return "\n".join(lines) + "\n"
