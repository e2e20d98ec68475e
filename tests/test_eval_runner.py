"""The eval runner: the threshold gate's exit code, the compare output, and the HTML report
rendered in a real headless Chromium with its plots decoded.

Fast tests run the marketing suite (the compliance checker on ad_copy.jsonl: no model) through
the real runner; the slow test runs the QA suite end to end with the real model and index."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from evals import compare as compare_mod
from evals import gate
from evals.report import render_html
from evals.results import SuiteResult
from evals.runner import main
from evals.scenario_table import scenario_markdown

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _thresholds(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "thresholds.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _run(tmp_path: Path, *args: str) -> int:
    return main(["--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "reports"), "--quiet", *args])


# "ci,marketing": the marketing suite's fast slice (the checker only; drafts need the LLM).
MARKETING = "ci,marketing"


def _only_report(tmp_path: Path) -> Path:
    (folder,) = list((tmp_path / "reports").iterdir())
    return folder


# --- the gate ----------------------------------------------------------------------------------

def test_gate_passes_when_thresholds_are_met(tmp_path, capsys):
    thresholds = _thresholds(tmp_path, "marketing.micro_f1: {min: 0.0}\nqa.key_fact_accuracy: {min: 0.9}\n")
    assert _run(tmp_path, "--suite", MARKETING, "--thresholds", str(thresholds)) == 0
    results = json.loads((_only_report(tmp_path) / "results.json").read_text())
    statuses = {c["metric"]: c["status"] for c in results["gate"]}
    assert statuses == {"marketing.micro_f1": "pass", "qa.key_fact_accuracy": "skipped"}  # qa did not run
    assert "every threshold met" in capsys.readouterr().out


def test_gate_exits_non_zero_when_a_threshold_is_missed(tmp_path, capsys):
    thresholds = _thresholds(tmp_path, "marketing.micro_f1: {min: 1.01}\n")
    assert _run(tmp_path, "--suite", MARKETING, "--thresholds", str(thresholds)) == 1
    assert "threshold(s) missed" in capsys.readouterr().out
    # --no-gate reports the miss but exits 0
    assert _run(tmp_path, "--suite", MARKETING, "--thresholds", str(thresholds), "--no-gate") == 0


def test_json_output_is_one_object(tmp_path, capsys):
    thresholds = _thresholds(tmp_path, "marketing.micro_f1: {max: -1}\n")
    assert _run(tmp_path, "--suite", MARKETING, "--thresholds", str(thresholds), "--json") == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["passed"] is False and "rows" not in payload["suites"]["marketing"]
    assert payload["suites"]["marketing"]["metrics"]["n"] > 0


def test_bad_usage_exits_2(tmp_path, capsys):
    assert _run(tmp_path, "--suite", "nope") == 2
    assert _run(tmp_path, "--data", "marketing") == 2
    assert _run(tmp_path, "--data", f"marketing={tmp_path / 'missing.jsonl'}") == 2
    assert "unknown suite" in capsys.readouterr().err


def test_data_option_swaps_the_file(tmp_path):
    rows = [{"id": "x1", "channel": "sms", "product": "cash", "language": "en", "labels": [], "compliant": True,
             "text": "Meadow Consumer Finance: Meadow Cash lends 1,000-50,000 CNY. APR 9.9%-23.9%, 1% origination "
                     "fee. Apply in the Meadow app. Reply TD to unsubscribe"}]
    data = tmp_path / "ads.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert _run(tmp_path, "--suite", MARKETING, "--data", f"marketing={data}", "--no-gate") == 0
    results = json.loads((_only_report(tmp_path) / "results.json").read_text())
    assert [r["id"] for r in results["suites"]["marketing"]["rows"]] == ["x1"]


def test_a_crashed_suite_fails_the_gate_and_a_missing_one_is_skipped():
    suites = {"routing": SuiteResult.failed("routing", "KeyError: 'x'"),
              "complaints": SuiteResult.unavailable("complaints", "module not built")}
    checks = gate.check(suites, {"routing.accuracy": {"min": 0.5}, "complaints.macro_f1": {"min": 0.5}})
    assert [c.status for c in checks] == ["fail", "skipped"]
    assert not gate.passed(checks)


def test_ci_overrides_in_the_thresholds_file(tmp_path):
    path = _thresholds(tmp_path, "qa.pass_rate: {min: 0.9}\nci:\n  qa.pass_rate: {min: 0.5}\n")
    assert gate.load_thresholds(path)["qa.pass_rate"] == {"min": 0.9}
    assert gate.load_thresholds(path, ci=True)["qa.pass_rate"] == {"min": 0.5}
    with pytest.raises(ValueError):
        gate.load_thresholds(_thresholds(tmp_path, "qa.pass_rate: {at_least: 0.9}\n"))


# --- compare -----------------------------------------------------------------------------------

def _results(pass_rate: float, rows: list[dict]) -> dict:
    suite = SuiteResult(suite="qa", metrics={"pass_rate": pass_rate, "hallucinated_figure_rate": 0.0}, rows=rows)
    return {"run": {"started": "t", "git": "abc"}, "suites": {"qa": suite.as_dict()}, "gate": [], "passed": True}


def test_compare_shows_deltas_and_changed_rows(tmp_path, capsys):
    a = _results(0.5, [{"id": "q1", "question": "apr?", "passed": True, "why": ""},
                       {"id": "q2", "question": "fee?", "passed": False, "why": "missing key facts: 5%"}])
    b = _results(0.5, [{"id": "q1", "question": "apr?", "passed": False, "why": "invented figures: 3%"},
                       {"id": "q2", "question": "fee?", "passed": True, "why": ""}])
    b["suites"]["qa"]["metrics"]["hallucinated_figure_rate"] = 0.25
    for name, data in (("A", a), ("B", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(data))
    result = compare_mod.compare(a, b)
    assert {(c["id"], c["change"]) for c in result["changed"]} == {("q1", "broken"), ("q2", "fixed")}
    assert result["regressions"] == ["qa.hallucinated_figure_rate"]  # lower is better: a rise is worse

    assert main(["--compare", str(tmp_path / "A"), str(tmp_path / "B")]) == 0
    out = capsys.readouterr().out
    assert "qa.hallucinated_figure_rate" in out and "+0.250" in out and "broken" in out and "fixed" in out
    assert main(["--compare", str(tmp_path / "A"), str(tmp_path / "missing")]) == 2


# --- the HTML report in a real browser -------------------------------------------------------------

def _every_plot_kind() -> dict:
    qa = SuiteResult(
        suite="qa", metrics={"key_fact_accuracy": 0.6, "hallucinated_figure_rate": 0.0, "no_answer_correct": 0.9,
                             "pass_rate": 0.7, "latency_p50_ms": 900.0},
        baselines={"langchain_rag": {"key_fact_accuracy": 0.1, "hallucinated_figure_rate": 0.3,
                                     "no_answer_correct": 0.2, "pass_rate": 0.1, "latency_p50_ms": 5000.0}},
        by_category={"rates": {"pass_rate": 0.8, "baseline_pass_rate": 0.1}, "fees": {"pass_rate": 0.5}},
        plots={"latency_by_path": {"faq": [400.0, 500.0], "generated": [4000.0, 9000.0]},
               "baseline_latency": [5000.0, 6000.0]},
        rows=[{"id": "q1", "question": "what's <the> APR?", "answer": "29.9%", "citations": ["meadow-cash"],
               "path": "generated", "passed": False, "why": "invented figures: 29.9%"}],
        definitions={"pass_rate": "rows passed"})
    routing = SuiteResult(suite="routing", metrics={"accuracy": 0.8},
                          plots={"confusion": {"labels": ["answer", "complaint"], "matrix": [[8, 2], [1, 9]]}})
    scoring = SuiteResult(suite="scoring", metrics={"auc": 0.8},
                          plots={"roc": {"scorecard": {"fpr": [0, 0.2, 1], "tpr": [0, 0.7, 1], "auc": 0.8}},
                                 "score_dist": {"good": [500, 520, 560], "bad": [420, 450, 500]}})
    marketing = SuiteResult(suite="marketing", metrics={"micro_f1": 0.9},
                            plots={"per_rule": {"apr_disclosure": {"precision": 1.0, "recall": 0.8}}})
    return {"run": {"started": "2026-01-01T00:00:00", "target": "test", "suites": ["qa"]},
            "suites": {s.suite: s.as_dict() for s in (qa, routing, scoring, marketing)},
            "gate": [gate.Check("qa.pass_rate", "min", 0.5, 0.7, "pass").as_dict()], "passed": True}


# overview, QA vs baseline, latency, QA per category, confusion, ROC, score distribution, per rule
EXPECTED_PLOTS = 8
IMAGE_PROBE = """<script>window.addEventListener('load', function () {
  var imgs = [].slice.call(document.images);
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-decoded', imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length);
});</script>"""


def test_the_scenario_table_lists_every_conversation_with_the_first_failure():
    suite = {"rows": [
        {"id": "b-pass", "category": "complaint", "passed": True, "why": "",
         "turns": [{"passed": True}, {"passed": True}]},
        {"id": "a-fail", "category": "complaint", "passed": False, "why": "",
         "turns": [{"passed": True}, {"passed": False, "why": "path: ticket | wanted answer"}, {"passed": False}]}]}
    table = scenario_markdown(suite)
    assert table.startswith("1 of 2 conversations pass; 3 of 5 turns.")
    lines = table.splitlines()
    assert lines[4] == "| a-fail | complaint | 1/3 | FAIL: path: ticket / wanted answer |"
    assert lines[5] == "| b-pass | complaint | 2/2 | pass |"


def test_report_escapes_text_and_embeds_every_plot():
    page = render_html(_every_plot_kind())
    assert page.count("<img ") == EXPECTED_PLOTS and page.count("data:image/png;base64,") == EXPECTED_PLOTS
    assert "what&#x27;s &lt;the&gt; APR?" in page and "<the>" not in page
    assert "rows passed" in page  # metric definitions are in the report
    assert "src='http" not in page and 'src="http' not in page  # self-contained


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    # The probe is appended to a copy: the report itself carries no script.
    page = tmp_path / "report.html"
    page.write_text(render_html(_every_plot_kind()) + IMAGE_PROBE, encoding="utf-8")
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert f'data-images="{EXPECTED_PLOTS}"' in dom, dom[:500]
    assert f'data-decoded="{EXPECTED_PLOTS}"' in dom  # every PNG decoded by the browser
    assert "Threshold gate" in dom and "langchain_rag" in dom


# --- the QA suite end to end ---------------------------------------------------------------------

@pytest.mark.slow
def test_qa_suite_end_to_end_with_the_real_model(tmp_path, model_cache):
    """Three questions through the real pipeline and the baseline chain: an FAQ question, a
    follow-up and an unanswerable one; the report has the assistant beside the baseline."""
    rows = [
        {"id": "t1", "question": "What is the APR of Meadow Cash?", "key_facts": ["9.9%", "23.9%"],
         "sources": ["faq-fees-and-rates", "meadow-cash"], "category": "rates", "answerable": True,
         "expected_path": "answer"},
        {"id": "t2", "question": "and what about early repayment?", "history": ["what is the apr of meadow cash?"],
         "key_facts": ["0%"], "sources": ["faq-repayment", "meadow-cash"], "category": "followup",
         "answerable": True, "expected_path": "answer"},
        {"id": "t3", "question": "whats my current balance", "key_facts": [], "sources": [],
         "category": "unanswerable", "answerable": False, "expected_path": "no_answer"},
    ]
    data = tmp_path / "qa.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "models").symlink_to(model_cache, target_is_directory=True)
    thresholds = _thresholds(tmp_path, "qa.hit_at_5: {min: 0.5}\nqa.no_answer_correct: {min: 1.0}\n")
    assert _run(tmp_path, "--suite", "qa", "--data", f"qa={data}", "--thresholds", str(thresholds)) == 0
    folder = _only_report(tmp_path)
    qa = json.loads((folder / "results.json").read_text())["suites"]["qa"]
    assert qa["status"] == "ok", qa["note"]
    assert [r["id"] for r in qa["rows"]] == ["t1", "t2", "t3"]
    assert qa["rows"][2]["path"] == "no_answer" and qa["rows"][2]["passed"]
    assert set(qa["baselines"]["langchain_rag"]) >= {"key_fact_accuracy", "hallucinated_figure_rate", "no_answer_correct"}
    assert all("baseline" in r for r in qa["rows"])
    assert qa["metrics"]["recall_at_5"] is not None and qa["metrics"]["mrr_dense"] is not None
    assert "LLM-as-judge skipped" in qa["note"] or "LLM-as-judge" in qa["note"]
    assert (folder / "report.html").read_text().count("data:image/png;base64,") >= 3


# --- an OpenAI-compatible endpoint over real HTTP ---------------------------------------------------

CASH_PASSAGE = "What is the APR of Meadow Cash?\nMeadow Cash has an APR between 9.9% and 23.9%."


def _endpoint_app():
    """A small OpenAI-compatible server shaped like the assistant's own /v1/chat/completions
    (the `meadow` extra field); its first request is rate limited, to exercise the retry."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()
    calls = {"n": 0}

    @app.post("/v1/chat/completions")
    def completions(body: dict):
        calls["n"] += 1
        if calls["n"] == 1:
            return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "0"})
        question = body["messages"][-1]["content"].lower()
        if "apr" in question:
            text, meadow = "Meadow Cash has an APR between 9.9% and 23.9%.", {
                "path": "faq", "citations": [{"doc_id": "faq-fees-and-rates", "chunk_id": "c1", "text": CASH_PASSAGE}]}
        else:
            text, meadow = "I don't know that from Meadow's documents. Call 400-820-6600.", {"path": "no_answer"}
        return {"choices": [{"message": {"role": "assistant", "content": text}}], "meadow": meadow}

    return app


def test_qa_suite_against_an_openai_compatible_endpoint(tmp_path):
    import socket
    import threading
    import time as _time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_endpoint_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        _time.sleep(0.05)
    try:
        rows = [{"id": "e1", "question": "what is the apr of meadow cash", "key_facts": ["9.9%", "23.9%"],
                 "sources": ["faq-fees-and-rates"], "category": "rates", "answerable": True},
                {"id": "e2", "question": "whats my balance", "key_facts": [], "sources": [],
                 "category": "unanswerable", "answerable": False}]
        data = tmp_path / "qa.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        code = _run(tmp_path, "--suite", "qa", "--data", f"qa={data}", "--endpoint", f"http://127.0.0.1:{port}/v1",
                    "--no-judge", "--no-gate")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert code == 0
    qa = json.loads((_only_report(tmp_path) / "results.json").read_text())["suites"]["qa"]
    assert qa["status"] == "ok", qa["note"]
    assert qa["metrics"]["key_fact_accuracy"] == 1.0 and qa["metrics"]["no_answer_correct"] == 1.0
    assert qa["metrics"]["hallucinated_figure_rate"] == 0.0 and qa["metrics"]["citation_precision"] == 1.0
    assert "recall_at_5" not in qa["metrics"]  # retrieval needs the local index
    assert [r["path"] for r in qa["rows"]] == ["faq", "no_answer"]
