"""Marketing studio: drafts grounded in terms.yaml, checked and revised; ranking, exports, CLI.

Fast tests use no model or LangChain's FakeListChatModel (a real chat-model class with canned
replies): the point here is what the studio does with good and bad model output, and the real
embedded model is slow and says something different on every machine. One slow test runs the real
embedded model once. Retrieval uses the real knowledge-base chunks (kb_docs + chunk_documents)
with a keyword ranking, so no embedding model has to load."""

import itertools
import json
import re
import time
from pathlib import Path

import pytest
import typer
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from typer.testing import CliRunner

from assistant.marketing.channels import CHANNELS, check_limits, parse_fields
from assistant.config import PROJECT_ROOT, Settings
from assistant.knowledge.documents import load_documents
from assistant.knowledge.index import chunk_documents
from assistant.marketing.drafting import (
    Brief, BriefError, DraftSet, MarketingStudio, export_draft_set, jaccard, load_copy_pieces,
)
from assistant.cli.marketing import compliance_app, copy_command
from assistant.marketing.evaluate import evaluate_drafts, read_jsonl
from assistant.knowledge.terms import normalise_number

BRIEFS = PROJECT_ROOT / "evals" / "datasets" / "marketing_briefs.jsonl"


@pytest.fixture(scope="module")
def chunks():
    docs = load_documents(PROJECT_ROOT / "knowledge_base")
    return [c for d in docs for c in chunk_documents(d)]


@pytest.fixture(scope="module")
def retrieve(chunks):
    def search(query, k, filters=None):
        wanted = (filters or {}).get("product")
        words = set(re.findall(r"\w+", query.lower()))
        pool = [c for c in chunks if wanted is None or c.product == wanted]
        return sorted(pool, key=lambda c: -len(words & set(re.findall(r"\w+", c.text.lower()))))[:k]
    return search


def settings(tmp_path: Path, **overrides) -> Settings:
    return Settings(data_dir=tmp_path, **overrides)


def studio(tmp_path, retrieve=None, model=None, **overrides) -> MarketingStudio:
    return MarketingStudio(settings(tmp_path, **overrides), model, retrieve)


def fake(*responses: str) -> FakeListChatModel:
    return FakeListChatModel(responses=list(responses))


# --- template drafts ----------------------------------------------------------------------------


@pytest.mark.parametrize("channel, language", list(itertools.product(CHANNELS, ["en", "zh"])))
def test_every_channel_and_language_drafts_pass(tmp_path, retrieve, channel, language):
    product = {"sms": "cash", "push": "flex", "email": "business", "banner": "mall", "social": "cash"}[channel]
    brief = Brief(product=product, audience="gig drivers", channel=channel, language=language, variants=3)
    draft_set = studio(tmp_path, retrieve).draft(brief)
    terms = MarketingStudio(settings(tmp_path), None, None).terms.product(product)
    apr = f"{normalise_number(terms.apr_min_pct)}%-{normalise_number(terms.apr_max_pct)}%"
    assert [v.rank for v in draft_set.variants] == [1, 2, 3]
    for v in draft_set.variants:
        assert v.passed and v.report.passed and v.report.findings == []
        assert apr in v.text
        assert ("Meadow Consumer Finance" if language == "en" else "Meadow消费金融") in v.text
        assert check_limits(parse_fields(v.text, channel), channel) == []
        if CHANNELS[channel].opt_out:
            assert CHANNELS[channel].opt_out[language] in v.text
    for a, b in itertools.combinations(draft_set.variants, 2):
        assert jaccard(a.text, b.text) < 0.8, (a.text, b.text)


def test_drafts_are_grounded_in_terms_and_cite_the_knowledge_base(tmp_path, retrieve):
    brief = Brief(product="cash", audience="new graduates", channel="email", variants=2)
    draft_set = studio(tmp_path, retrieve).draft(brief)
    assert draft_set.sources and all(c.doc_id == "meadow-cash" for c in draft_set.sources)
    apr = next(f for f in draft_set.facts if f.name == "APR")
    assert apr.value == "9.9%-23.9%"
    assert apr.citation is not None and "9.9%" in next(c.text for c in retrieve("APR", 50, {"product": "cash"})
                                                      if c.id == apr.citation.chunk_id)
    for v in draft_set.variants:
        assert "ungrounded-figure" not in v.report.rule_ids
        assert "1% origination fee" in v.text


def test_retrieval_failure_is_a_warning_not_an_error(tmp_path):
    def broken(query, k, filters=None):
        raise RuntimeError("index missing")
    draft_set = studio(tmp_path, broken).draft(Brief(product="flex", audience="riders", channel="sms", variants=1))
    assert draft_set.variants[0].passed and draft_set.sources == []
    assert any("index missing" in w for w in draft_set.warnings)


def test_offer_is_stated_with_its_end_date_and_its_figures_are_allowed(tmp_path):
    brief = Brief(product="cash", audience="returning customers", channel="sms", variants=2,
                  offer={"kind": "coupon", "description": "50 CNY off your first installment", "value": 50,
                         "valid_until": "2026-09-30"})
    draft_set = studio(tmp_path).draft(brief)
    for v in draft_set.variants:
        assert v.passed
        assert "Offer: 50 CNY off your first installment, until 30 Sep 2026." in v.text


def test_ungrounded_figures_are_caught_in_drafts_only(tmp_path):
    st = studio(tmp_path)
    brief = Brief(product="cash", audience="drivers", channel="social", variants=1)
    text = "Meadow Consumer Finance: Meadow Cash: APR 9.9%-23.9%, 1% origination fee. Money in 15 minutes."
    assert st.check_copy(text, "cash", "social").passed
    report = st.check_draft_text(text, brief)
    assert [(f.rule_id, f.span.text) for f in report.findings] == [("ungrounded-figure", "15")]


# --- the model's wording --------------------------------------------------------------------


def test_safe_model_wording_is_used(tmp_path):
    model = fake("Fix the car and get back on the road.")
    draft_set = studio(tmp_path, model=model).draft(Brief(product="cash", audience="gig drivers", channel="sms",
                                                          variants=2))
    assert all(v.wording == "llm" and "get back on the road" in v.text and v.passed for v in draft_set.variants)


@pytest.mark.parametrize("reply", [
    "Guaranteed approval with no credit check!",
    "Borrow 20,000 CNY at 5% today.",
    "Hurry, only 2 hours left!",
    "As an AI language model I cannot write ads.",
    "借钱就找我们！",  # wrong language for an English brief
])
def test_unsafe_or_unusable_model_wording_is_dropped(tmp_path, reply):
    draft_set = studio(tmp_path, model=fake(reply)).draft(
        Brief(product="cash", audience="gig drivers", channel="sms", variants=1))
    [v] = draft_set.variants
    assert v.wording == "fallback" and v.passed
    assert reply.split()[0].rstrip("!,") not in v.text


# --- the revision loop (free writer: the model writes all of it) ------------------------------


def test_wrong_apr_is_caught_and_revised(tmp_path):
    bad = "Meadow Consumer Finance: Meadow Cash, APR 5.9%-23.9%, 1% origination fee. Reply TD to unsubscribe"
    draft_set = studio(tmp_path, model=fake(bad), marketing_writer="free").draft(
        Brief(product="cash", audience="drivers", channel="sms", variants=1))
    for v in draft_set.variants:
        assert "figures-mismatch" in v.history[0].rule_ids
        assert v.passed and "APR 9.9%-23.9%" in v.text and "5.9" not in v.text
        assert [h.strategy for h in v.history][:2] == ["draft", "llm"]


def test_auto_revision_fixes_a_missing_disclosure(tmp_path):
    bad = "Meadow Consumer Finance: Meadow Cash, low rates for drivers! Reply TD to unsubscribe"
    draft_set = studio(tmp_path, model=fake(bad), marketing_writer="free").draft(
        Brief(product="cash", audience="drivers", channel="sms", variants=1))
    for v in draft_set.variants:
        assert v.history[0].rule_ids == ["trigger-terms-disclosure"]
        assert v.passed and v.history[-1].strategy == "fix"
        assert "APR 9.9%-23.9%, 1% origination fee" in v.text and v.text.endswith("Reply TD to unsubscribe")


def test_what_still_fails_is_returned_marked_failing(tmp_path):
    bad = "Meadow Cash: guaranteed approval, no credit check!"
    st = studio(tmp_path, model=fake(bad), marketing_writer="free", marketing_max_revisions=1)
    brief = Brief(product="cash", audience="drivers", channel="sms", variants=2)
    draft_set = st.draft(brief)
    assert draft_set.passed == []
    for v in draft_set.variants:
        assert not v.passed and not v.report.passed and v.revisions == 1
        assert not st.check_draft_text(v.text, brief).passed  # a fresh check agrees
        assert {"guaranteed-approval", "no-credit-check"} <= set(v.report.rule_ids)


def test_revise_copy_fixes_human_copy(tmp_path):
    text, report = studio(tmp_path).revise_copy("Meadow Cash: 12 monthly payments, no credit check!", "cash", "sms")
    assert report.passed, report.findings
    assert "credit check" not in text and "APR 9.9%-23.9%" in text


# --- briefs, ranking, exports ---------------------------------------------------------------


@pytest.mark.parametrize("changes, message", [
    ({"product": "gold"}, "unknown product"),
    ({"product": "flex", "offer": {"kind": "fee_waiver", "description": "fee waived", "value": 1, "unit": "%",
                                   "valid_until": "2026-09-30"}}, "no origination fee to waive"),
    ({"audience": "college students"}, "vulnerable-targeting"),
    ({"goal": "guaranteed approval for all"}, "guaranteed-approval"),
    ({"offer": {"kind": "coupon", "description": "a big coupon", "value": 5000, "valid_until": "2026-09-30"}},
     "not smaller than"),
])
def test_bad_briefs_are_refused_with_a_reason(tmp_path, changes, message):
    brief = Brief.model_validate({"product": "cash", "audience": "drivers", "channel": "sms"} | changes)
    with pytest.raises(BriefError, match=message):
        studio(tmp_path).draft(brief)


def test_brief_accepts_channel_names_marketers_use():
    assert Brief(product="cash", audience="x y", channel="E-mail").channel == "email"
    with pytest.raises(ValueError):
        Brief(product="cash", audience="x y", channel="fax")


def test_passing_variants_rank_first(tmp_path):
    st = studio(tmp_path, model=fake("Meadow Cash: guaranteed approval!"), marketing_writer="free",
                marketing_max_revisions=0)
    brief = Brief(product="cash", audience="drivers", channel="social", variants=2)
    failing = st.draft(brief).variants
    passing = studio(tmp_path).draft(brief).variants
    from assistant.marketing.drafting import rank_variants
    ranked = rank_variants(failing + passing, 3)
    assert [v.passed for v in ranked] == [True, True, False]
    assert ranked[0].score.total > ranked[2].score.total


def test_exports_json_csv_markdown(tmp_path, retrieve):
    draft_set = studio(tmp_path, retrieve).draft(Brief(product="mall", audience="shoppers", channel="push", variants=2))
    paths = export_draft_set(draft_set, tmp_path / "out")
    again = DraftSet.model_validate_json(paths["json"].read_text(encoding="utf-8"))
    assert [v.text for v in again.variants] == [v.text for v in draft_set.variants]
    rows = paths["csv"].read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("rank,id,passed,score") and "title" in rows[0] and len(rows) >= 3
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert markdown.count("PASSES") == 2 and "meadow-mall" in markdown


def test_every_approved_hook_passes_the_rule_pack(tmp_path):
    st = studio(tmp_path)
    pieces = load_copy_pieces(st.settings.prompts_dir)
    for key, product in st.terms.products.items():
        for angle in (a for a in pieces.angles if a.applies_to(product)):
            for language, hooks in angle.hooks.items():
                for hook in hooks:
                    from assistant.marketing.compliance import fill_slots
                    from assistant.marketing.drafting import _term_values
                    text = fill_slots(hook, _term_values(product))
                    report = st.check_copy(text, key)
                    assert set(report.rule_ids) <= {"lender-name-missing", "product-name-missing"}, (key, text)


def test_evaluate_drafts_on_the_brief_set(tmp_path):
    briefs = read_jsonl(BRIEFS)
    assert len(briefs) >= 40
    result = evaluate_drafts(briefs[:8] + briefs[-4:], studio(tmp_path))
    assert result["share_passing"] == 1.0 and result["share_marked_correctly"] == 1.0
    assert result["diversity"]["share_pairs_distinct"] >= 0.9


# --- CLI ------------------------------------------------------------------------------------


@pytest.fixture()
def cli(monkeypatch, tmp_path):
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    app = typer.Typer()
    app.command("copy")(copy_command)
    app.add_typer(compliance_app, name="compliance")
    return lambda *args: CliRunner().invoke(app, [str(a) for a in args])


def test_cli_copy_writes_ranked_drafts(cli, tmp_path):
    result = cli("copy", "--brief", PROJECT_ROOT / "examples" / "brief.yaml", "--out", tmp_path / "out",
                 "--no-llm", "--no-kb", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["passed"] == payload["variants"] == 3
    assert {Path(p).name for p in payload["files"].values()} == {"drafts.json", "drafts.csv", "drafts.md"}


def test_cli_copy_refuses_a_bad_brief(cli, tmp_path):
    brief = tmp_path / "brief.yaml"
    brief.write_text("product: gold\naudience: drivers\nchannel: sms\n", encoding="utf-8")
    result = cli("copy", "--brief", brief, "--out", tmp_path / "out", "--no-llm", "--no-kb")
    assert result.exit_code == 2 and "unknown product" in result.output


def test_cli_compliance_check_gates_on_violations(cli, tmp_path):
    bad, good = tmp_path / "bad.txt", tmp_path / "good.txt"
    bad.write_text("Meadow Cash: guaranteed approval!", encoding="utf-8")
    good.write_text("Meadow Consumer Finance: Meadow Cash: APR 9.9%-23.9%, 1% origination fee. "
                    "Reply TD to unsubscribe", encoding="utf-8")
    assert cli("compliance", "check", good, "--channel", "sms").exit_code == 0
    failed = cli("compliance", "check", bad, "--channel", "sms", "--json")
    assert failed.exit_code == 1
    payload = json.loads(failed.stdout)
    assert payload["failed"] == 1 and "guaranteed-approval" in {f["rule_id"] for f in
                                                                 payload["results"][0]["report"]["findings"]}
    assert cli("compliance", "check", tmp_path / "missing.txt").exit_code == 2
    assert cli("compliance", "check", good, "--channel", "fax").exit_code == 2


def test_cli_compliance_check_reads_jsonl_and_fixes(cli, tmp_path):
    rows = tmp_path / "copy.jsonl"
    rows.write_text(json.dumps({"id": "a", "text": "Meadow Cash from 450 CNY a month", "product": "cash",
                                "channel": "sms"}) + "\n", encoding="utf-8")
    result = cli("compliance", "check", rows, "--fix", "--json")
    assert result.exit_code == 1
    fixed = json.loads(result.stdout)["results"][0]["fixed"]
    assert fixed["passed"] and "APR 9.9%-23.9%" in fixed["text"]


def test_cli_rules_reports_a_broken_rule_file_with_its_line(cli, tmp_path):
    broken = tmp_path / "compliance.yaml"
    source = (PROJECT_ROOT / "knowledge_base/rules/compliance.yaml").read_text(encoding="utf-8")
    broken.write_text(source.replace("'\\bcheapest\\b'", "'(cheapest'"), encoding="utf-8")
    result = cli("compliance", "rules", "--rules", broken)
    assert result.exit_code == 2
    assert "compliance.yaml line" in result.output and "misleading-comparison" in result.output
    assert cli("compliance", "rules", "--json").exit_code == 0


# --- the real embedded model ------------------------------------------------------------------


@pytest.mark.slow
def test_real_embedded_model_drafts_two_variants(tmp_path, retrieve, model_cache):
    from conftest import make_settings

    from assistant.llm.chat_models import make_chat_model

    # the session's converted model (conftest.model_cache) is shared: the conversion runs once per session
    s = make_settings(tmp_path / "data", model_cache, llm_max_new_tokens=32)
    st = MarketingStudio(s, make_chat_model(s), retrieve)
    brief = Brief(product="cash", audience="gig drivers", channel="sms", variants=2)
    started = time.perf_counter()
    draft_set = st.draft(brief)
    elapsed = time.perf_counter() - started
    assert len(draft_set.variants) == 2
    for v in draft_set.variants:
        assert v.passed == st.check_draft_text(v.text, brief).passed  # marked correctly, whatever the model said
        assert v.passed, v.report.findings  # the template writer cannot let the model break a rule
    assert elapsed < 60, elapsed  # drafting itself, model conversion and loading excluded
