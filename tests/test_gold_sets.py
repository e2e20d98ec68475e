"""Checks the FAQ documents and the gold evaluation sets (qa.jsonl, safety.jsonl) stay consistent:
valid rows, known sources, key facts that really are in the cited FAQ, figures that match
terms.yaml, and fake PII that is well-formed (ID check digit, Luhn). Fast; no model."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from assistant.knowledge.terms import load_terms, normalise_number

ROOT = Path(__file__).resolve().parent.parent
KB = ROOT / "knowledge_base"
FAQ_DIR = KB / "faqs"
DATASETS = ROOT / "evals" / "datasets"

FAQ_IDS = {
    "faq-application", "faq-limits", "faq-repayment", "faq-fees-and-rates", "faq-overdue",
    "faq-account", "faq-security", "faq-complaints", "faq-mall", "faq-business",
}
DOC_IDS = {
    "meadow-flex", "meadow-cash", "meadow-mall", "meadow-business", "products-overview",
    "rule-right-to-information", "rule-fair-marketing", "rule-debt-collection", "rule-privacy",
    "rule-complaint-handling", "rule-vulnerable-customers", "rule-anti-fraud",
}
QA_CATEGORIES = {
    "application", "limits", "repayment", "fees", "rates", "overdue", "account", "security",
    "complaints", "mall", "business", "collections", "privacy", "unanswerable", "followup",
}
SAFETY_CATEGORIES = {
    "prompt_injection", "other_customer_data", "system_prompt", "guarantee_approval", "fee_waiver",
    "abuse", "pii", "jailbreak_roleplay", "encoded_payload", "self_harm_hardship",
}
SAFETY_EXPECTED = {"refuse", "redact", "calm_reply", "vulnerable_support", "answer_safely"}
FIXED_STRINGS = ("400-820-6600", "12378", "8:00-21:00")  # contact details, not product figures
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


# ---------- loading ----------

def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:  # pragma: no cover - message for the author
                pytest.fail(f"{path.name}:{n}: not valid JSON: {exc}")
    return rows


def parse_faq(path: Path) -> tuple[dict, list[tuple[str, str]]]:
    text = path.read_text(encoding="utf-8")
    _, front, body = text.split("---", 2)
    meta = yaml.safe_load(front)
    entries = []
    for block in re.split(r"^## ", body, flags=re.M)[1:]:
        heading, _, answer = block.partition("\n")
        entries.append((heading.strip(), answer.strip()))
    return meta, entries


@pytest.fixture(scope="module")
def terms():
    return load_terms(KB / "products" / "terms.yaml")


@pytest.fixture(scope="module")
def faqs() -> dict[str, tuple[dict, list[tuple[str, str]]]]:
    parsed = {}
    for path in sorted(FAQ_DIR.glob("*.md")):
        meta, entries = parse_faq(path)
        parsed[meta["id"]] = (meta, entries)
    return parsed


@pytest.fixture(scope="module")
def qa() -> list[dict]:
    return read_jsonl(DATASETS / "qa.jsonl")


@pytest.fixture(scope="module")
def safety() -> list[dict]:
    return read_jsonl(DATASETS / "safety.jsonl")


def allowed_numbers(terms, product_key: str | None = None) -> set[str]:
    products = [terms.product(product_key)] if product_key else list(terms.products.values())
    allowed = set().union(*(p.figures() for p in products))
    allowed.add(normalise_number(terms.lender.apr_cap_pct))
    for value in (*terms.complaints.values(), *terms.collections.values()):
        if isinstance(value, (int, float)):
            allowed.add(normalise_number(value))
    return allowed


def numbers_in(text: str) -> list[str]:
    for fixed in FIXED_STRINGS:
        text = text.replace(fixed, " ")
    return [normalise_number(n.rstrip(",")) for n in NUMBER.findall(text)]


# ---------- FAQ documents ----------

def test_faq_files_and_front_matter(faqs, terms):
    assert set(faqs) == FAQ_IDS
    for doc_id, (meta, _) in faqs.items():
        assert meta["type"] == "faq", doc_id
        assert meta["title"] and meta["version"] and isinstance(meta["tags"], list), doc_id
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(meta["effective_date"])), doc_id
        if "product" in meta:
            assert meta["product"] in terms.products, doc_id
    assert faqs["faq-mall"][0]["product"] == "mall"
    assert faqs["faq-business"][0]["product"] == "business"


def test_faq_entries_are_short_complete_questions(faqs):
    total = 0
    for doc_id, (_, entries) in faqs.items():
        headings = [h for h, _ in entries]
        assert len(headings) == len(set(headings)), f"{doc_id}: duplicate question"
        for heading, answer in entries:
            assert heading.endswith("?"), f"{doc_id}: {heading!r} is not a question"
            sentences = len(SENTENCE_END.findall(answer))
            assert 1 <= sentences <= 5, f"{doc_id}: {heading!r} has {sentences} sentences"
        total += len(entries)
    assert total >= 150


def test_faq_figures_come_from_terms(faqs, terms):
    for doc_id, (meta, entries) in faqs.items():
        allowed = allowed_numbers(terms, meta.get("product"))
        for heading, answer in entries:
            bad = [n for n in numbers_in(f"{heading}\n{answer}") if n not in allowed]
            assert not bad, f"{doc_id}: {heading!r} quotes {bad}, not in terms.yaml"


def test_faq_figures_match_the_product_named(faqs, terms):
    """A sentence that names exactly one product may only quote that product's % and CNY figures."""
    names = {key: p.name for key, p in terms.products.items()}
    names["mall"] = "Meadow Mall"
    for doc_id, (_, entries) in faqs.items():
        for heading, answer in entries:
            for sentence in re.split(r"(?<=[.!?])\s+", answer):
                named = [key for key, name in names.items() if name in sentence]
                if len(named) != 1:
                    continue
                allowed = allowed_numbers(terms, named[0])
                for number, _unit in re.findall(r"(\d[\d,]*(?:\.\d+)?)\s*(%|CNY)", sentence):
                    assert normalise_number(number) in allowed, \
                        f"{doc_id}: {heading!r}: {number} is not a {named[0]} figure: {sentence!r}"


def test_faqs_parse_with_the_knowledge_base_loader():
    kb_docs = pytest.importorskip("assistant.knowledge.documents")
    for path in sorted(FAQ_DIR.glob("*.md")):
        doc = kb_docs.parse_document(path, KB)
        assert doc.type == "faq" and len(doc.sections) >= 15


# ---------- qa.jsonl ----------

def test_qa_rows_are_well_formed(qa):
    assert len(qa) >= 200
    ids = [row["id"] for row in qa]
    assert len(ids) == len(set(ids))
    for row in qa:
        assert re.fullmatch(r"qa-\d{4}", row["id"]), row["id"]
        for field in ("question", "key_facts", "sources", "category", "answerable", "expected_path"):
            assert field in row, f"{row['id']}: no {field}"
        assert row["question"].strip(), row["id"]
        assert row["category"] in QA_CATEGORIES, row["id"]
        assert row["expected_path"] == ("answer" if row["answerable"] else "no_answer"), row["id"]
        assert (row["category"] == "unanswerable") == (not row["answerable"]), row["id"]
        if row["answerable"]:
            assert row["key_facts"] and row["sources"], row["id"]
        else:
            assert row["key_facts"] == [] and row["sources"] == [], row["id"]
        if row["category"] == "followup":
            assert row.get("history") and all(isinstance(m, str) and m for m in row["history"]), row["id"]


def test_qa_counts(qa):
    counts = Counter(row["category"] for row in qa)
    assert counts["unanswerable"] >= 35
    assert counts["followup"] >= 22
    for category in QA_CATEGORIES:
        assert counts[category] >= 5, f"only {counts[category]} {category} rows"


def test_qa_sources_are_known_documents(qa):
    for row in qa:
        unknown = set(row["sources"]) - FAQ_IDS - DOC_IDS
        assert not unknown, f"{row['id']}: unknown source {unknown}"


def test_qa_key_facts_are_in_the_cited_faq(qa, faqs):
    texts = {doc_id: "\n".join(f"{h}\n{a}" for h, a in entries).lower()
             for doc_id, (_, entries) in faqs.items()}
    for row in qa:
        if not row["answerable"]:
            continue
        cited = [s for s in row["sources"] if s in FAQ_IDS]
        assert cited, f"{row['id']}: cite at least one FAQ so its key facts can be checked"
        for fact in row["key_facts"]:
            assert any(fact.lower() in texts[s] for s in cited), \
                f"{row['id']}: key fact {fact!r} not in {cited}"


def test_qa_key_fact_figures_are_real(qa, terms):
    allowed = allowed_numbers(terms)
    for row in qa:
        for fact in row["key_facts"]:
            bad = [n for n in numbers_in(fact) if n not in allowed]
            assert not bad, f"{row['id']}: key fact {fact!r} quotes {bad}, not in terms.yaml"


# ---------- safety.jsonl ----------

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_check_digit_ok(number: str) -> bool:
    """GB 11643 (ISO 7064 MOD 11-2) check digit of an 18-character resident ID number."""
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], ID_WEIGHTS))
    return "10X98765432"[total % 11] == number[17].upper()


def luhn_ok(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char) * (2 if index % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def test_check_digit_helpers():
    assert id_check_digit_ok("11010519491231002X")  # the GB 11643 standard's own example
    assert not id_check_digit_ok("110105194912310021")
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_safety_rows_are_well_formed(safety):
    assert len(safety) >= 80
    ids = [row["id"] for row in safety]
    assert len(ids) == len(set(ids))
    for row in safety:
        assert re.fullmatch(r"safety-\d{3}", row["id"]), row["id"]
        for field in ("category", "input", "expected", "must_not_contain", "pii", "notes"):
            assert field in row, f"{row['id']}: no {field}"
        assert row["category"] in SAFETY_CATEGORIES, row["id"]
        assert row["expected"] in SAFETY_EXPECTED, row["id"]
        assert row["input"].strip() and row["notes"].strip(), row["id"]
        assert isinstance(row["must_not_contain"], list) and isinstance(row["pii"], list), row["id"]
    counts = Counter(row["category"] for row in safety)
    assert all(counts[c] >= 5 for c in SAFETY_CATEGORIES), counts
    assert all(row["expected"] == "vulnerable_support" for row in safety
               if row["category"] == "self_harm_hardship")
    assert all(row["pii"] and row["expected"] == "redact" for row in safety if row["category"] == "pii")


def test_safety_pii_values_are_well_formed(safety):
    for row in safety:
        for value in row["pii"]:
            assert value in row["input"], f"{row['id']}: {value!r} not in the input"
            assert value in row["must_not_contain"], f"{row['id']}: {value!r} may appear in the reply"
            if re.fullmatch(r"\d{17}[\dXx]", value):
                assert id_check_digit_ok(value), f"{row['id']}: bad ID check digit {value}"
            elif re.fullmatch(r"\d{16,19}", value):
                assert luhn_ok(value), f"{row['id']}: card {value} fails Luhn"
            elif re.fullmatch(r"\d{11}", value):
                assert re.fullmatch(r"1[3-9]\d{9}", value), f"{row['id']}: not a mobile number {value}"
            elif re.fullmatch(r"\d+", value):
                assert len(value) == 6, f"{row['id']}: verification codes have 6 digits: {value}"
