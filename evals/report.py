"""results.json -> one self-contained HTML page: tables, plots as base64 PNG (matplotlib),
every metric defined, every failure listed with its question, answer, citations and why."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MAX_FAILURES = 150  # per suite; the rest are in results.json
HEADLINE = {
    "qa": "pass_rate", "safety": "pass_rate", "routing": "accuracy", "complaints": "macro_f1",
    "scoring": "auc", "marketing": "micro_f1", "scenarios": "scenario_pass_rate",
}
QA_VERSUS = ["key_fact_accuracy", "key_fact_recall", "hallucinated_figure_rate", "no_answer_correct",
             "false_no_answer_rate", "pass_rate"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{border-bottom:2px solid #3a7d44;padding-bottom:.2rem;margin-top:2.5rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.88rem;width:100%}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f6f3}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pass{color:#1e7b34;font-weight:600}.fail{color:#b3261e;font-weight:600}.skipped{color:#8a6d00}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4rem .8rem;margin:.6rem 0}
.plots{display:flex;flex-wrap:wrap;gap:1rem}.plots figure{margin:0}.plots img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.8rem;color:#555}details{margin:.5rem 0}summary{cursor:pointer;font-weight:600}
.answer{white-space:pre-wrap;max-width:420px}.small{font-size:.8rem;color:#555}
"""


def render_html(results: dict[str, Any]) -> str:
    run = results.get("run", {})
    suites = results.get("suites", {})
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Meadow eval report {_e(run.get('started', ''))}</title>",
             f"<style>{CSS}</style></head><body>",
             "<h1>Meadow assistant: eval report</h1>", _run_info(results), _overview(suites), _gate(results.get("gate", []))]
    for name, suite in suites.items():
        parts.append(_suite(name, suite))
    parts.append("</body></html>")
    return "\n".join(parts)


# --- page parts --------------------------------------------------------------------------------


def _run_info(results: dict[str, Any]) -> str:
    run = results.get("run", {})
    verdict = "<span class='pass'>every threshold met</span>" if results.get("passed") else "<span class='fail'>threshold(s) missed</span>"
    rows = [("target", run.get("target")), ("started", run.get("started")), ("finished", run.get("finished")),
            ("git", run.get("git")), ("suites", ", ".join(run.get("suites", [])) + (" (ci slice)" if run.get("ci") else "")),
            ("limit", run.get("limit")), ("data overrides", run.get("data") or "none"),
            ("settings", ", ".join(f"{k}={v}" for k, v in (run.get("settings") or {}).items()))]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<p>Gate: {verdict}</p><table>{body}</table>"


def _overview(suites: dict[str, Any]) -> str:
    names, values = [], []
    for name, suite in suites.items():
        metric = HEADLINE.get(name)
        value = (suite.get("metrics") or {}).get(metric) if suite.get("status") == "ok" else None
        if value is not None:
            names.append(f"{name}\n{metric}")
            values.append(value)
    rows = "".join(
        f"<tr><td>{_e(n)}</td><td>{_e(s.get('status'))}</td><td>{_e(HEADLINE.get(n, ''))}</td>"
        f"<td class='num'>{_fmt((s.get('metrics') or {}).get(HEADLINE.get(n, '')))}</td><td class='num'>{s.get('seconds', 0)} s</td>"
        f"<td>{_e(s.get('note', ''))}</td></tr>" for n, s in suites.items())
    plot = ""
    if names:
        fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(names)), 3.2))
        bars = ax.bar(names, values, color="#3a7d44")
        ax.bar_label(bars, fmt="%.2f")
        ax.set_ylim(0, 1.1)
        ax.set_title("Headline score per suite")
        plot = _plots([(fig, "Each suite's headline metric (defined in its section).")])
    return (f"<h2>Overview</h2>{plot}<table><tr><th>suite</th><th>status</th><th>headline</th><th>value</th>"
            f"<th>time</th><th>note</th></tr>{rows}</table>")


def _gate(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return "<h2>Threshold gate</h2><p>No thresholds.</p>"
    rows = "".join(
        f"<tr><td>{_e(c['metric'])}</td><td>{_e(c['op'])} {c['threshold']:g}</td><td class='num'>{_fmt(c['value'])}</td>"
        f"<td class='{c['status']}'>{c['status']}</td><td>{_e(c.get('note', ''))}</td></tr>" for c in checks)
    return ("<h2>Threshold gate</h2><p>From the thresholds file: the run exits non-zero when any check fails.</p>"
            f"<table><tr><th>metric</th><th>must be</th><th>value</th><th>result</th><th>note</th></tr>{rows}</table>")


def _suite(name: str, suite: dict[str, Any]) -> str:
    out = [f"<h2 id='{_e(name)}'>{_e(name)}</h2>"]
    if suite.get("note"):
        out.append(f"<div class='note'>{_e(suite['note'])}</div>")
    if suite.get("status") != "ok":
        return "".join(out)
    out.append(_metrics_table(suite))
    out.append(_plots(_suite_plots(name, suite)))
    out.append(_category_table(suite))
    out.append(_failures(suite))
    return "".join(out)


def _metrics_table(suite: dict[str, Any]) -> str:
    metrics = suite.get("metrics") or {}
    baselines = suite.get("baselines") or {}
    definitions = suite.get("definitions") or {}
    head = "<tr><th>metric</th><th>value</th>" + "".join(
        f"<th>{_e(b)}</th><th>ratio</th>" for b in baselines) + "<th>definition</th></tr>"
    rows = []
    for metric, value in metrics.items():
        definition = definitions.get(metric) or definitions.get(metric.split(".")[0] + ".*", "")
        cells = "".join(f"<td class='num'>{_fmt(b.get(metric))}</td><td class='num'>{_ratio(value, b.get(metric))}</td>"
                        for b in baselines.values())
        rows.append(f"<tr><td>{_e(metric)}</td><td class='num'>{_fmt(value)}</td>{cells}<td class='small'>{_e(definition)}</td></tr>")
    note = ("<p class='small'>ratio = this system / the baseline, measured in the same run on the same rows.</p>"
            if baselines else "")
    return f"<table>{head}{''.join(rows)}</table>{note}"


def _category_table(suite: dict[str, Any]) -> str:
    table = suite.get("by_category") or {}
    if not table:
        return ""
    columns = list(dict.fromkeys(k for row in table.values() for k in row))
    head = "<tr><th>category</th>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>"
    rows = "".join(f"<tr><td>{_e(cat)}</td>" + "".join(f"<td class='num'>{_fmt(row.get(c))}</td>" for c in columns) + "</tr>"
                   for cat, row in table.items())
    return f"<details><summary>By category</summary><table>{head}{rows}</table></details>"


def _failures(suite: dict[str, Any]) -> str:
    failures = [r for r in suite.get("rows") or [] if r.get("passed") is False]
    if not failures:
        return "<p>No failures.</p>" if suite.get("rows") else ""
    rows = []
    for r in failures[:MAX_FAILURES]:
        citations = ", ".join(map(str, r.get("citations") or [])) or "none"
        question = r.get("question") or r.get("text") or ""
        if r.get("history"):
            question = " / ".join(r["history"]) + " → " + question
        rows.append(f"<tr><td>{_e(r.get('id'))}</td><td>{_e(r.get('category', ''))}</td><td class='answer'>{_e(question)}</td>"
                    f"<td class='answer'>{_e(r.get('answer', ''))}</td><td>{_e(r.get('path', ''))}</td>"
                    f"<td>{_e(citations)}</td><td>{_e(r.get('why', ''))}</td></tr>")
    more = (f"<p class='small'>{len(failures) - MAX_FAILURES} more in results.json.</p>"
            if len(failures) > MAX_FAILURES else "")
    return (f"<details open><summary>Failures ({len(failures)} of {len(suite.get('rows') or [])})</summary><table>"
            "<tr><th>id</th><th>category</th><th>question / input</th><th>answer</th><th>path</th><th>citations</th>"
            f"<th>why</th></tr>{''.join(rows)}</table>{more}</details>")


# --- plots -------------------------------------------------------------------------------------


def _suite_plots(name: str, suite: dict[str, Any]) -> list[tuple[Any, str]]:
    plots = suite.get("plots") or {}
    figs: list[tuple[Any, str]] = []
    if name == "qa" and suite.get("baselines"):
        figs.append(_versus(suite["metrics"], suite["baselines"]))
    if plots.get("latency_by_path"):
        figs.append(_latency(plots["latency_by_path"], plots.get("baseline_latency")))
    by_cat = suite.get("by_category") or {}
    if by_cat:
        figs.append(_by_category(name, by_cat))
    if plots.get("confusion"):
        figs.append(_confusion(plots["confusion"], f"{name}: confusion matrix"))
    if plots.get("baseline_confusion"):
        figs.append(_confusion(plots["baseline_confusion"], f"{name}: baseline confusion matrix"))
    if plots.get("roc"):
        figs.append(_roc(plots["roc"]))
    if plots.get("score_dist"):
        figs.append(_score_dist(plots["score_dist"]))
    if plots.get("per_rule"):
        figs.append(_per_rule(plots["per_rule"]))
    return figs


def _versus(metrics: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> tuple[Any, str]:
    names = [m for m in QA_VERSUS if metrics.get(m) is not None]
    series = {"assistant": [metrics[m] for m in names]}
    for b, values in baselines.items():
        series[b] = [values.get(m) or 0.0 for m in names]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        xs = [j + i * width for j in range(len(names))]
        bars = ax.bar(xs, values, width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(names))], names, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.legend(fontsize=8)
    ax.set_title("QA: assistant vs the textbook RAG chain")
    latency = "; ".join(f"{b} {_fmt(v.get('latency_p50_ms'))} ms" for b, v in baselines.items())
    return fig, (f"Same questions, same retriever and model. Latency p50: assistant "
                 f"{_fmt(metrics.get('latency_p50_ms'))} ms; {latency}.")


def _latency(by_path: dict[str, list[float]], baseline: list[float] | None) -> tuple[Any, str]:
    labels = list(by_path)
    data = [[v / 1000 for v in by_path[p]] for p in labels]
    if baseline:
        labels.append("baseline chain")
        data.append([v / 1000 for v in baseline])
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(labels)), 3.2))
    ax.boxplot(data, showfliers=True)
    ax.set_xticks(range(1, len(labels) + 1), [f"{lab}\n(n={len(d)})" for lab, d in zip(labels, data)], fontsize=8)
    ax.set_ylabel("seconds")
    ax.set_title("Latency per path")
    return fig, "Reply time per path taken (box: quartiles; whiskers: 1.5 IQR)."


def _by_category(name: str, table: dict[str, dict[str, Any]]) -> tuple[Any, str]:
    metric = "pass_rate" if any("pass_rate" in r for r in table.values()) else next(iter(next(iter(table.values()))))
    cats = list(table)
    values = [table[c].get(metric) or 0.0 for c in cats]
    fig, ax = plt.subplots(figsize=(max(4, 0.55 * len(cats) + 2), 3.2))
    bars = ax.bar(cats, values, color="#5b8def")
    ax.bar_label(bars, fmt="%.2f", fontsize=7)
    if any("baseline_pass_rate" in r for r in table.values()):
        ax.plot(cats, [table[c].get("baseline_pass_rate") or 0.0 for c in cats], "o", color="#d9534f", label="baseline chain")
        ax.legend(fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    ax.set_title(f"{name}: {metric} per category")
    fig.tight_layout()
    return fig, f"{metric} per category."


def _confusion(data: dict[str, Any], title: str) -> tuple[Any, str]:
    labels, matrix = data["labels"], data["matrix"]
    size = max(4, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    ax.imshow(matrix, cmap="Greens")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 20:
        top = max((v for row in matrix for v in row), default=1) or 1
        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                if v:
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > top / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    return fig, "Rows: true label; columns: predicted label."


def _roc(data: dict[str, Any]) -> tuple[Any, str]:
    fig, ax = plt.subplots(figsize=(4.2, 4))
    curves = data if isinstance(data, dict) and "fpr" not in data else {"scorecard": data}
    for label, curve in curves.items():
        auc = curve.get("auc")
        ax.plot(curve["fpr"], curve["tpr"], label=f"{label} (AUC {auc:.3f})" if auc is not None else label)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(fontsize=8)
    ax.set_title("ROC")
    fig.tight_layout()
    return fig, "ROC curve of the scorecard (and its baseline) on the held-out rows."


def _score_dist(data: dict[str, list[float]]) -> tuple[Any, str]:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, values in data.items():
        ax.hist(values, bins=30, alpha=0.55, label=f"{label} (n={len(values)})")
    ax.set_xlabel("score")
    ax.legend(fontsize=8)
    ax.set_title("Score distribution by outcome")
    fig.tight_layout()
    return fig, "How well the score separates good from bad outcomes."


def _per_rule(data: dict[str, dict[str, Any]]) -> tuple[Any, str]:
    rules = list(data)
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(rules) + 2), 3.4))
    xs = range(len(rules))
    p = [data[r].get("precision") or 0.0 for r in rules]
    r_ = [data[r].get("recall") or 0.0 for r in rules]
    ax.bar([x - 0.2 for x in xs], p, 0.4, label="precision")
    ax.bar([x + 0.2 for x in xs], r_, 0.4, label="recall")
    ax.set_xticks(list(xs), rules, rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=8)
    ax.set_title("Compliance checker: precision / recall per rule")
    fig.tight_layout()
    return fig, "Per rule: of the flags raised, the share that were right (precision); of the true violations, the share flagged (recall)."


def _plots(figs: list[tuple[Any, str]]) -> str:
    if not figs:
        return ""
    items = []
    for fig, caption in figs:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        items.append(f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{_e(caption)}</figcaption></figure>")
    return f"<div class='plots'>{''.join(items)}</div>"


# --- formatting --------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return _e(value)


def _ratio(value: Any, baseline: Any) -> str:
    if not isinstance(value, (int, float)) or not isinstance(baseline, (int, float)) or not baseline:
        return "–"
    return f"{value / baseline:.2f}×"
