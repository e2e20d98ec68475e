"""The scoring tool on the committed scorecard: points table, decisions, reasons, policy rules,
validation, HTTP vs in-process, batch, drift, logging and the CLI. No training here (see
test_scoring_train.py); everything runs against the real committed files."""

from __future__ import annotations

import csv
import json
import logging
import math
import socket
import threading
import time

import httpx
import pandas as pd
import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from assistant.config import PROJECT_ROOT, Settings
from assistant.scoring.applicant import ApplicantError
from assistant.scoring.batch import batch_file
from assistant.scoring.bench import run as run_bench
from assistant.scoring.bench import synthetic_applicants
from assistant.scoring.cli import app as scoring_app
from assistant.scoring.client import HttpScoringClient, InProcessScoringClient, build_scorer, make_scoring_client
from assistant.scoring.model import CSV_NAME, ScorecardModel
from assistant.scoring.monitor import monitor
from assistant.scoring.service import create_app
from assistant.scoring.spec import read_frame

SHARED = PROJECT_ROOT.parent / "shared" / "data"
GERMAN = SHARED / "german_credit_train.csv"

BASE = dict(amount=20000, term_months=12, purpose="used_car", employment="4_to_7_years", housing="own",
            savings=5000, age=35, monthly_income=9000, consent=True)
# Known applicants and the decisions the committed scorecard gives them. A change here means the
# scorecard changed: retrain on purpose, review the model card, then update these.
KNOWN = {
    "strong": (BASE | dict(amount=6000, term_months=6, employment="7_years_plus", savings=20000,
                           checking_account="no_account", credit_history="critical"), "approve", 691, "A"),
    "typical": (BASE, "approve", 586, "A"),
    "long_and_large": (BASE | dict(amount=40000, term_months=36, purpose="new_car", employment="under_1_year",
                                   housing="rent", savings=0), "decline", 475, None),
    "weak_profile": (BASE | dict(checking_account="overdrawn", credit_history="all_paid_here",
                                 other_installment_plans="bank"), "refer", 529, "E"),
    "renting_two_years": (BASE | dict(term_months=24, housing="rent", savings=1000, employment="1_to_4_years"),
                          "refer", 543, "E"),
}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(_env_file=None)


@pytest.fixture(scope="module")
def scorer(settings):
    return build_scorer(settings)


# --- the points table ---------------------------------------------------------------------------

def test_points_table_round_trips_through_json_and_csv(scorer, tmp_path):
    model = scorer.model
    model.save(tmp_path)
    again = ScorecardModel.load(tmp_path)
    assert again.version == model.version
    assert again.points_csv() == model.points_csv()
    from_csv = ScorecardModel.from_points_table(pd.read_csv(tmp_path / CSV_NAME), model.spec)
    assert from_csv.version == model.version
    if GERMAN.exists():
        frame = read_frame(model.spec, GERMAN)
        assert (from_csv.score_frame(frame) == model.score_frame(frame)).all()


def test_committed_csv_is_the_committed_json(settings):
    model = ScorecardModel.load(settings.scorecard_dir)
    assert (settings.scorecard_dir / CSV_NAME).read_text(encoding="utf-8") == model.points_csv()
    assert model.version.startswith("german-")
    # readable: every variable has a row per bin with its points, and a Missing row
    table = model.points_table()
    assert set(table["row"]) >= {"bin", "missing"}
    assert table.groupby("variable")["points"].count().min() >= 2


def test_score_is_600_at_20_to_1_odds_and_20_points_double_the_odds(scorer):
    model = scorer.model
    assert model.pd_of(600) == pytest.approx(1 / 21)
    odds = lambda s: (1 - model.pd_of(s)) / model.pd_of(s)  # noqa: E731
    assert odds(620) / odds(600) == pytest.approx(2.0)


# --- decisions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(KNOWN))
def test_known_applicants_get_stable_decisions(scorer, name):
    applicant, decision, score, band = KNOWN[name]
    result = scorer.score(applicant)
    assert (result.decision, result.score, result.band) == (decision, score, band)
    assert result.model_version == scorer.model.version


def test_reasons_are_at_most_four_in_order_and_in_plain_words(scorer):
    for applicant, *_ in KNOWN.values():
        result = scorer.score(applicant)
        assert len(result.reasons) <= 4
        lost = [r.points_below_max for r in result.reasons]
        assert lost == sorted(lost, reverse=True) and all(x > 0 for x in lost)
        for r in result.reasons:
            assert r.kind == "score" and len(r.text) > 15
            assert "score too low" not in r.text.lower() and "_" not in r.text


def test_unknown_profile_field_is_named_as_a_reason(scorer):
    result = scorer.score(BASE)
    assert any(r.code == "checking_account" and "no record" in r.text for r in result.reasons)


def test_counterfactual_is_a_real_change_of_one_field(scorer):
    for applicant, decision, *_ in KNOWN.values():
        result = scorer.score(applicant)
        if result.counterfactual is None:
            assert decision == "approve"
            continue
        cf = result.counterfactual
        assert cf.current == applicant[cf.field] and cf.suggested != cf.current
        changed = scorer.score(applicant | {cf.field: cf.suggested})
        assert changed.decision == cf.decision != decision


def test_offer_stays_inside_the_product_terms(scorer):
    for a in synthetic_applicants(scorer, 400, seed=1):
        for key in ("cash", "flex"):
            product = scorer.terms.product(key)
            a2 = a | {"product": key, "amount": min(max(a["amount"], product.limit_min), product.limit_max),
                      "term_months": product.term_months[0]}
            d = scorer.score(a2)
            if d.decision == "decline":
                assert d.indicative_limit is None and d.apr_min_pct is None
                continue
            assert product.apr_min_pct <= d.apr_min_pct <= d.apr_max_pct <= product.apr_max_pct
            assert product.limit_min <= d.indicative_limit <= product.limit_max
            assert d.indicative_limit <= max(product.limit_min, a["monthly_income"] * 12)


# --- policy rules and validation ------------------------------------------------------------------

def test_each_policy_failure_is_its_own_reason_and_no_score(scorer):
    result = scorer.score(BASE | dict(age=17, monthly_income=0))
    assert result.decision == "decline" and result.score is None and result.probability_of_default is None
    assert [r.code for r in result.reasons] == ["policy_min_age", "policy_income"]
    assert all(r.kind == "policy" for r in result.reasons)
    assert "18" in result.reasons[0].text  # the product's minimum age, from terms.yaml


def test_no_consent_means_nothing_is_checked(scorer):
    result = scorer.score(BASE | dict(consent=False, age=16))
    assert [r.code for r in result.reasons] == ["policy_consent"]
    assert result.score is None


def test_age_limits_come_from_the_product_and_income_must_cover_the_smallest_loan(scorer):
    assert [r.code for r in scorer.score(BASE | dict(age=70)).reasons] == ["policy_max_age"]
    assert [r.code for r in scorer.score(BASE | dict(monthly_income=50)).reasons] == ["policy_affordability"]
    assert scorer.score(BASE | dict(age=18)).score is not None


@pytest.mark.parametrize("bad, fields", [
    (dict(monthly_income=-100), {"monthly_income"}),
    (dict(age=300), {"age"}),
    (dict(age=300, monthly_income=-1, purpose="spaceship"), {"age", "monthly_income", "purpose"}),
    (dict(consent="yes"), {"consent"}),
    (dict(amount=float("nan")), {"amount"}),
    (dict(favourite_colour="blue"), {"favourite_colour"}),
    (dict(amount=60000), {"amount"}),  # above Meadow Cash's limit
    (dict(term_months=18), {"term_months"}),  # a term Meadow Cash does not offer
    (dict(product="mortgage"), {"product"}),
])
def test_bad_input_gets_a_clear_error_listing_each_bad_field(scorer, bad, fields):
    with pytest.raises(ApplicantError) as caught:
        scorer.score(BASE | bad)
    assert {e.field for e in caught.value.errors} == fields
    assert all(e.message for e in caught.value.errors)


def test_a_missing_field_is_named(scorer):
    applicant = dict(BASE)
    del applicant["housing"], applicant["age"]
    with pytest.raises(ApplicantError) as caught:
        scorer.score(applicant)
    assert {(e.field, e.message) for e in caught.value.errors} == {("housing", "is required"), ("age", "is required")}


# --- HTTP and in-process ------------------------------------------------------------------------------

def _cases():
    cases = [a for a, *_ in KNOWN.values()] + [BASE | dict(age=17), BASE | dict(consent=False)]
    return cases, [BASE | dict(age=300, monthly_income=-5), {"amount": 1}]


def test_http_and_in_process_give_identical_results(scorer):
    local = InProcessScoringClient(scorer)
    with TestClient(create_app(scorer)) as http:
        remote = HttpScoringClient("http://testserver", http=http)
        good, bad = _cases()
        for applicant in good:
            assert remote.score(applicant).model_dump() == local.score(applicant).model_dump()
        for applicant in bad:
            with pytest.raises(ApplicantError) as a:
                local.score(applicant)
            with pytest.raises(ApplicantError) as b:
                remote.score(applicant)
            assert a.value.to_dict() == b.value.to_dict()
        assert remote.info() == local.info()


def test_service_answers_over_a_real_socket(scorer):
    """uvicorn on a free port, httpx over TCP: the same path ASSISTANT_SCORING_URL takes."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(scorer), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "model_version": scorer.model.version}
        client = make_scoring_client(Settings(_env_file=None, scoring_url=url))
        assert isinstance(client, HttpScoringClient)
        assert client.score(BASE).model_dump() == scorer.score(BASE).model_dump()
        response = httpx.post(f"{url}/score", json=BASE | {"age": 300})
        assert response.status_code == 422 and response.json()["fields"][0]["field"] == "age"
        docs = httpx.get(f"{url}/openapi.json").json()
        schema = docs["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert "amount" in schema["properties"] and "consent" in schema["required"]
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def test_service_rejects_non_json(scorer):
    with TestClient(create_app(scorer)) as http:
        assert http.post("/score", content=b"{not json").status_code == 400
        assert http.post("/score", json=[1, 2]).status_code == 422


# --- batch, drift, logging, CLI, speed ------------------------------------------------------------------

def test_batch_gives_the_single_call_result_for_every_row(scorer, tmp_path):
    applicants = synthetic_applicants(scorer, 60, seed=3)
    applicants[5] = applicants[5] | {"age": 300}
    applicants[7] = applicants[7] | {"monthly_income": -10}
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    columns = sorted({k for a in applicants for k in a})
    with source.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", *columns])
        writer.writeheader()
        for i, a in enumerate(applicants):
            writer.writerow({"id": f"A{i}", **a})
    summary = batch_file(scorer, source, target, progress=False)
    assert summary["rows"] == 60 and summary["decisions"]["invalid"] == 2
    out = pd.read_csv(target, keep_default_na=False)
    assert list(out["id"]) == [f"A{i}" for i in range(60)]
    for i, a in enumerate(applicants):
        row = out.iloc[i]
        if i in (5, 7):
            assert row["decision"] == "" and row["error"]
            continue
        single = scorer.score(a)
        assert row["decision"] == single.decision
        assert row["reason_codes"] == ";".join(r.code for r in single.reasons)
        if single.score is not None:
            assert int(row["score"]) == single.score


def test_monitor_reports_stable_then_shifted(scorer):
    if not GERMAN.exists():
        pytest.skip("shared data not present")
    frame = pd.read_csv(GERMAN)
    stable = monitor(scorer.model, frame)
    assert stable["score"]["status"] == "stable"
    assert all(f["status"] == "stable" for f in stable["features"])
    shifted = monitor(scorer.model, frame.assign(credit_amount=frame["credit_amount"] * 4,
                                                 duration_in_month=frame["duration_in_month"] * 2))
    by_name = {f["feature"]: f for f in shifted["features"]}
    assert by_name["credit_amount"]["status"] == "shifted" and by_name["duration_in_month"]["status"] == "shifted"
    assert shifted["score"]["psi"] > stable["score"]["psi"]


def test_monitor_reads_applicant_files_too(scorer):
    frame = pd.DataFrame(synthetic_applicants(scorer, 300, seed=4))
    report = monitor(scorer.model, frame)
    assert report["rows"] == 300 and report["features"]


def test_every_decision_is_logged_with_redacted_inputs(scorer, caplog):
    with caplog.at_level(logging.INFO, logger="assistant.scoring.decisions"):
        decision = scorer.score(BASE, trace_id="tr_test")
    records = [r for r in caplog.records if r.name == "assistant.scoring.decisions"]
    assert len(records) == 1
    logged = records[0].decision
    assert logged["trace_id"] == "tr_test" and logged["model_version"] == decision.model_version
    assert logged["decision"] == decision.decision and logged["score"] == decision.score
    assert logged["reasons"] == [r.code for r in decision.reasons]
    assert logged["inputs"]["age"] == "30-39" and logged["inputs"]["monthly_income"] == "3k-10k"
    assert json.loads(records[0].getMessage()) == json.loads(json.dumps(logged, default=str))


def test_cli_score_json_and_bad_input(monkeypatch):
    monkeypatch.delenv("ASSISTANT_SCORING_URL", raising=False)
    runner = CliRunner()
    ok = runner.invoke(scoring_app, ["score", "--json", json.dumps(BASE)])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["decision"] == "approve"
    bad = runner.invoke(scoring_app, ["score", "--json", json.dumps(BASE | {"age": 300})])
    assert bad.exit_code == 2 and json.loads(bad.stdout)["fields"][0]["field"] == "age"
    assert runner.invoke(scoring_app, ["score", "{nope"]).exit_code == 2


def test_speed_targets(scorer):
    """Targets on a 2-core machine: >= 20,000 applicants/s batch, p50 < 2 ms single call. The test
    asserts the latency target and a loose throughput floor per CPU-second (CI shares its CPUs). The
    bench turns the per-decision log off: with an earlier test's INFO logging it measured 1,812/s."""
    result = run_bench(scorer, rows=5000, calls=300)
    assert result["single"]["p50_ms"] < 2.0, result
    assert result["batch"]["applicants_per_cpu_s"] > 5000, result
    assert math.isfinite(result["batch"]["seconds"])


def test_scoring_and_the_calculator_import_no_llm_and_no_chroma():
    import subprocess
    import sys

    code = ("import sys, assistant.scoring.cli, assistant.scoring.client, assistant.scoring.service, "
            "assistant.scoring.train, assistant.scoring.batch, assistant.scoring.monitor, assistant.loans; "
            "print(sorted(m for m in ('langchain_core', 'langchain_openai', 'chromadb', 'transformers', 'torch', "
            "'sentence_transformers', 'openai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
