"""The compliance rule pack and checker: every rule fires on a crafted positive and stays quiet on a
crafted negative (a near miss); figures come from terms.yaml; deterministic fixes; rule-file errors
name the line; precision/recall on the labelled ad_copy.jsonl."""

import json
from pathlib import Path

import pytest

from assistant.marketing.compliance import (
    ComplianceChecker, ComplianceReport, RulePackError, apply_fixes, default_rules_path, load_rule_pack,
)
from assistant.config import PROJECT_ROOT
from assistant.marketing.evaluate import evaluate_checker, read_jsonl
from assistant.knowledge.terms import load_terms

RULES = default_rules_path(PROJECT_ROOT / "knowledge_base")
AD_COPY = PROJECT_ROOT / "evals" / "datasets" / "ad_copy.jsonl"
OK = "Meadow Consumer Finance: Meadow Cash: APR 9.9%-23.9%, 1% origination fee."


@pytest.fixture(scope="module")
def checker() -> ComplianceChecker:
    return ComplianceChecker(load_rule_pack(RULES), load_terms(PROJECT_ROOT / "knowledge_base/products/terms.yaml"))


# rule id -> (positive, negative, product, channel); the negative is a near miss of the positive
CASES = {
    "guaranteed-approval": (
        f"{OK} Guaranteed approval for everyone!",
        f"{OK} Approval is not guaranteed: we assess every application.", "cash", None),
    "guaranteed-approval/zh": (
        "【Meadow消费金融】Meadow Cash包过，年化利率9.9%-23.9%，手续费1%。",
        "【Meadow消费金融】Meadow Cash不保证通过，年化利率9.9%-23.9%，手续费1%。", "cash", None),
    "no-credit-check": (
        f"{OK} No credit check needed.",
        f"{OK} We check your credit history with the credit reference center.", "cash", None),
    "no-credit-check/zh": (
        "【Meadow消费金融】Meadow Cash不查征信，年化利率9.9%-23.9%，手续费1%。",
        "【Meadow消费金融】Meadow Cash需查询征信，年化利率9.9%-23.9%，手续费1%。", "cash", None),
    "free-money": (
        f"{OK} It's free money for your holiday.",
        f"{OK} It's credit you repay, with no annual fee.", "cash", None),
    "pressure-urgency": (
        f"{OK} Hurry, last chance: only 2 hours left!",
        f"{OK} Offer ends 31 August 2026.", "cash", None),
    "pressure-urgency/zh": (
        "【Meadow消费金融】Meadow Cash仅限今日！年化利率9.9%-23.9%，手续费1%。",
        "【Meadow消费金融】Meadow Cash活动截至2026年8月31日。年化利率9.9%-23.9%，手续费1%。", "cash", None),
    "vulnerable-targeting": (
        f"{OK} Made for college students.",
        f"{OK} Meadow Cash is not available to students.", "cash", None),
    "vulnerable-targeting/zh": (
        "【Meadow消费金融】大学生专享Meadow Cash，年化利率9.9%-23.9%，手续费1%。",
        "【Meadow消费金融】应届毕业生可申请Meadow Cash，年化利率9.9%-23.9%，手续费1%。", "cash", None),
    "misleading-comparison": (
        f"{OK} Cheaper than any bank.",
        f"{OK} Compare our APR with other lenders' APRs.", "cash", None),
    "rate-not-apr": (
        f"{OK} Only 0.03% interest a day.",
        f"{OK} Interest is included in the APR.", "cash", None),
    "rate-not-apr/zh": (
        "【Meadow消费金融】Meadow Cash日息低至万分之三！年化利率9.9%-23.9%，手续费1%。",
        "【Meadow消费金融】Meadow Cash年化利率9.9%-23.9%，手续费1%。", "cash", None),
    "trigger-terms-disclosure": (
        "Meadow Consumer Finance: Meadow Cash from 450 CNY a month.",
        "Meadow Consumer Finance: Meadow Cash from 450 CNY a month. APR 9.9%-23.9%, 1% origination fee.",
        "cash", None),
    "trigger-terms-disclosure/zh": (
        "【Meadow消费金融】Meadow Cash可分12期，年化利率9.9%-23.9%。",
        "【Meadow消费金融】Meadow Cash可分12期，年化利率9.9%-23.9%，手续费1%。", "cash", None),
    "figures-mismatch": (
        "Meadow Consumer Finance: Meadow Cash: APR 5.9%-23.9%, 1% origination fee.",
        OK, "cash", None),
    "figures-mismatch/zh": (
        "【Meadow消费金融】Meadow Mall全场12期免息，年化利率11.9%-21.9%，无手续费。",
        "【Meadow消费金融】Meadow Mall 3期、6期免息，年化利率11.9%-21.9%，无手续费。", "mall", None),
    "fake-endorsement": (
        f"{OK} A government-backed loan.",
        f"{OK} A licensed consumer-finance company.", "cash", None),
    "lender-name-missing": (
        "Meadow Cash: APR 9.9%-23.9%, 1% origination fee.", OK, "cash", None),
    "product-name-missing": (
        "Meadow Consumer Finance: a cash loan, APR 9.9%-23.9%, 1% origination fee.", OK, "cash", None),
    "opt-out-missing": (OK, f"{OK} Reply TD to unsubscribe", "cash", "sms"),
    "opt-out-missing/zh": (
        "【Meadow消费金融】Meadow Cash年化利率9.9%-23.9%，手续费1%。",
        "【Meadow消费金融】Meadow Cash年化利率9.9%-23.9%，手续费1%。回复TD退订", "cash", "sms"),
    "channel-limits": (
        f"Title: {'A very long push title that goes on and on and on and on'}\n\n{OK}",
        f"Title: Plan it, know the cost\n\n{OK}", "cash", "push"),
    "channel-limits/plain": (
        f"{OK} " * 3, OK, "cash", "push"),
    "trigger-terms-disclosure/payment": (
        "Meadow Consumer Finance: Meadow Cash - repay just 458 a month.",
        "Meadow Consumer Finance: Meadow Cash - repay just 458 a month. APR 9.9%-23.9%, 1% origination fee.",
        "cash", None),
    "rate-not-apr/daily": (
        f"{OK} Daily interest as low as 0.02%.", f"{OK} Interest is charged daily on what you owe.", "cash", None),
    "misleading-comparison/lowest": (
        f"{OK} The lowest around.", f"{OK} The lowest APR in our range is 9.9%.", "cash", None),
    "pre-approved": (
        "Meadow Consumer Finance: Pre-approved: 50,000 yuan reserved in your name with Meadow Cash. "
        "APR 9.9%-23.9%, 1% origination fee.",
        f"{OK} Nobody is pre-approved: every application is assessed.", "cash", None),
    "expert-endorsement": (
        f"{OK} Our chief economist says now is the time to borrow.",
        f"{OK} Talk to us about whether a loan fits your budget.", "cash", None),
    "expert-endorsement/celebrity": (
        f"{OK} Our brand ambassador loves it.", f"{OK} Customers rate the app 4.8.", "cash", None),
    "free-claim": (
        "Meadow Consumer Finance: Meadow Mall, 0% interest on 3 or 6 installments, totally free! "
        "APR 11.9%-21.9%, no fee if paid on time.",
        "Meadow Consumer Finance: Meadow Mall, 0% interest on 3 or 6 installments, no fee if paid on time. "
        "APR 11.9%-21.9%.", "mall", None),
    "fair-lending": (f"{OK} For male shop owners only.", f"{OK} For shop owners.", "cash", None),
    "fair-lending/region": (f"{OK} We reject applicants from Henan.", f"{OK} Open to applicants in Henan province.",
                            "cash", None),
    "fair-lending/age": (f"{OK} Teenagers welcome, even under 16.", f"{OK} For customers aged 18 to 65.", "cash", None),
    "fair-lending/marital": (f"{OK} No single mothers.", f"{OK} Whatever your family looks like.", "cash", None),
    "fair-lending/zh": ("【Meadow消费金融】Meadow Cash仅限男性，年化利率9.9%-23.9%，手续费1%。",
                        "【Meadow消费金融】Meadow Cash年化利率9.9%-23.9%，手续费1%。", "cash", None),
    "product-name-missing/description": (
        "Meadow Consumer Finance: loans for your shop. APR 10.8%-23.9%, 1.5% origination fee.",
        "Meadow Consumer Finance: our small-business loan for shop owners. APR 10.8%-23.9%, 1.5% origination fee.",
        "business", None),
}


def test_every_rule_in_the_pack_has_a_crafted_case(checker):
    covered = {key.split("/")[0] for key in CASES} | {"ungrounded-figure"}  # drafts only: test_marketing
    assert covered == {r.id for r in checker.pack.rules}


@pytest.mark.parametrize("case", list(CASES))
def test_rule_fires_on_positive_and_not_on_negative(checker, case):
    rule_id = case.split("/")[0]
    positive, negative, product, channel = CASES[case]
    fired = checker.check_copy(positive, product=product, channel=channel)
    quiet = checker.check_copy(negative, product=product, channel=channel)
    assert rule_id in fired.rule_ids and not fired.passed
    assert rule_id not in quiet.rule_ids, [f.message for f in quiet.findings]


def test_compliant_copy_passes(checker):
    report = checker.check_copy(f"{OK} Reply TD to unsubscribe", product="cash", channel="sms")
    assert report.passed and report.findings == []
    assert report.metrics[0].segments == 1


def test_spans_point_at_the_offending_text(checker):
    text = f"{OK} Guaranteed approval, no credit check!"
    for finding in checker.check_copy(text, product="cash").findings:
        assert text[finding.span.start:finding.span.end] == finding.span.text
        assert finding.fix


def test_wrong_apr_is_caught_with_the_right_figure_suggested(checker):
    text = "Meadow Consumer Finance: Meadow Flex: APR 7.2%-29.9%, no annual fee."
    report = checker.check_copy(text, product="flex")
    [finding] = [f for f in report.findings if f.rule_id == "figures-mismatch"]
    assert finding.span.text == "29.9" and finding.severity == "critical"
    assert "23.9" in finding.fix


def test_figures_are_checked_against_the_product_advertised(checker):
    text = "Meadow Consumer Finance: Meadow Flex: APR 9.9%-23.9%, no annual fee."  # Cash's APR on Flex
    assert "figures-mismatch" in checker.check_copy(text, product="flex").rule_ids
    assert "figures-mismatch" not in checker.check_copy(text.replace("Flex", "Cash"), product="cash").rule_ids


def test_product_is_inferred_from_the_copy_when_not_given(checker):
    report = checker.check_copy("Meadow Consumer Finance: Meadow Business loan: APR 10.8%-23.9%, no fees.")
    assert report.product == "business"
    assert "figures-mismatch" in report.rule_ids  # Business has a 1.5% origination fee


def test_apr_above_the_cap_is_caught_even_without_a_product(checker):
    report = checker.check_copy("Meadow Consumer Finance: loans at APR 10%-36%.")
    assert report.product is None and "figures-mismatch" in report.rule_ids


def test_full_width_percent_in_chinese_copy_is_read(checker):
    report = checker.check_copy("【Meadow消费金融】Meadow Cash年化利率9.9％-29.9％，手续费1％。", product="cash")
    assert [f.span.text for f in report.findings if f.rule_id == "figures-mismatch"] == ["29.9"]


def test_report_is_json_serialisable(checker):
    report = checker.check_copy("Guaranteed approval!", channel="sms")
    again = ComplianceReport.model_validate(json.loads(report.model_dump_json()))
    assert again == report


# --- deterministic fixes --------------------------------------------------------------------


def _fix_until_stable(checker, text, product, channel, rounds=3):
    report = checker.check_copy(text, product=product, channel=channel)
    for _ in range(rounds):
        if report.passed:
            break
        text = apply_fixes(checker, text, report, product, channel)
        report = checker.check_copy(text, product=product, channel=channel)
    return text, report


def test_fix_inserts_a_missing_disclosure(checker):
    text = "Meadow Consumer Finance: Meadow Cash from 450 CNY a month. Reply TD to unsubscribe"
    before = checker.check_copy(text, product="cash", channel="sms")
    assert before.rule_ids == ["trigger-terms-disclosure"]
    fixed, after = _fix_until_stable(checker, text, "cash", "sms")
    assert after.passed, after.findings
    assert "APR 9.9%-23.9%, 1% origination fee" in fixed
    assert fixed.endswith("Reply TD to unsubscribe")  # the opt-out line still closes the SMS


def test_fix_removes_banned_claims_and_adds_name_and_opt_out(checker):
    text = "Meadow Cash: guaranteed approval, no credit check! Apply in the app."
    fixed, after = _fix_until_stable(checker, text, "cash", "sms")
    assert after.passed, after.findings
    assert "guaranteed" not in fixed.lower() and "credit check" not in fixed.lower()
    assert fixed.startswith("Meadow Consumer Finance") and fixed.endswith("Reply TD to unsubscribe")


def test_fix_replaces_a_wrong_figure_with_the_nearest_true_one(checker):
    text = "Meadow Consumer Finance: Meadow Business loan up to 300,000 CNY. APR 10.8%-23.9%, 1.5% origination fee."
    fixed, after = _fix_until_stable(checker, text, "business", None)
    assert after.passed and "up to 200,000 CNY" in fixed


def test_fix_in_chinese_uses_chinese_insertions(checker):
    text = "Meadow Cash每月只需还880元！"
    fixed, after = _fix_until_stable(checker, text, "cash", "sms")
    assert after.passed, after.findings
    assert fixed.startswith("【Meadow消费金融】") and "年化利率9.9%-23.9%，手续费1%" in fixed
    assert fixed.endswith("回复TD退订")


def test_a_limit_violation_is_not_fixed_by_guessing(checker):
    text = f"Title: {'x' * 60}\n\n{OK}"
    fixed, after = _fix_until_stable(checker, text, "cash", "push")
    assert not after.passed and after.rule_ids == ["channel-limits"]


# --- the rule file is data: errors name the line ---------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "compliance.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_invalid_regex_error_names_line_and_rule(tmp_path):
    source = RULES.read_text(encoding="utf-8").replace("'\\bhurry\\b'", "'\\bhurry['")
    with pytest.raises(RulePackError) as error:
        load_rule_pack(_write(tmp_path, source))
    line = _line_of(source, "'\\bhurry['")
    assert str(error.value).startswith(f"compliance.yaml line {line}: rule 'pressure-urgency': pattern '\\bhurry['")
    assert "is not a valid regex" in str(error.value)


@pytest.mark.parametrize("old, new, needle, expected", [
    ("severity: major\n    kind: banned_phrase", "severity: urgent\n    kind: banned_phrase", "severity: urgent",
     "rule 'pressure-urgency': Input should be"),
    ("  - id: free-money", "  - id: guaranteed-approval", "  - id: guaranteed-approval\n    description: >-\n"
     "      Copy must not describe", "rule 'guaranteed-approval': duplicate rule id"),
    ("en: ['{{lender_name}}']", "en: ['{{lender}}']", "en: ['{{lender}}']", "unknown placeholder"),
    ("kind: channel_limits", "kind: banned_phrase", "  - id: channel-limits", "needs patterns"),
])
def test_schema_errors_name_the_line(tmp_path, old, new, needle, expected):
    source = RULES.read_text(encoding="utf-8")
    assert old in source
    source = source.replace(old, new, 1)
    with pytest.raises(RulePackError) as error:
        load_rule_pack(_write(tmp_path, source))
    message = str(error.value)
    assert expected in message
    line = int(message.split(" line ")[1].split(":")[0])
    assert abs(line - _line_of(source, needle)) <= 1, message


def test_broken_yaml_names_the_line(tmp_path):
    source = "version: '1'\nrules:\n  - id: x\n    kind: [banned_phrase\n"
    with pytest.raises(RulePackError, match=r"compliance.yaml line \d+: not valid YAML"):
        load_rule_pack(_write(tmp_path, source))


def test_a_compliance_officer_changes_rules_without_code(tmp_path, checker):
    source = RULES.read_text(encoding="utf-8")
    source = source.replace("        - '\\bhurry\\b'\n", "        - '\\bhurry\\b'\n        - '\\bsnap\\s+it\\s+up\\b'\n")
    source = source.replace("  - id: misleading-comparison\n", "  - id: misleading-comparison\n    enabled: false\n")
    edited = ComplianceChecker(load_rule_pack(_write(tmp_path, source)), checker.terms)
    text = f"{OK} Snap it up! The cheapest loan around."
    assert "pressure-urgency" not in checker.check_copy(text).rule_ids
    assert edited.check_copy(text).rule_ids == ["pressure-urgency"]


# --- against copy labelled by people ---------------------------------------------------------


def test_checker_precision_and_recall_on_labelled_copy(checker):
    rows = read_jsonl(AD_COPY)
    assert len(rows) >= 100
    assert 0.4 <= sum(not r["labels"] for r in rows) / len(rows) <= 0.6  # about half compliant
    result = evaluate_checker(rows, checker)
    assert result["micro"]["precision"] >= 0.95 and result["micro"]["recall"] >= 0.95, result["errors"]
    assert result["macro"]["precision"] >= 0.95 and result["macro"]["recall"] >= 0.95
    known = {r.id for r in checker.pack.rules}
    assert {label for r in rows for label in r["labels"]} <= known
