"""The knowledge base agrees with itself and with terms.yaml (fast: no model, no index).

Checks every knowledge_base/**/*.md: front matter, unique ids, product keys, every APR
within its product's range, every figure in a product document present in terms.yaml,
chunk-sized sections, FAQ headings that are questions, and that the gold sources of
evals/datasets/qa.jsonl exist. The FAQ folder may be empty or partial.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from assistant.config import PROJECT_ROOT
from assistant.knowledge.documents import Document, KnowledgeBaseError, load_documents, parse_document
from assistant.knowledge.terms import ProductTerms, Terms, load_terms, normalise_number

KB_DIR = PROJECT_ROOT / "knowledge_base"
TERMS_FILE = KB_DIR / "products" / "terms.yaml"
QA_FILE = PROJECT_ROOT / "evals" / "datasets" / "qa.jsonl"

# Other helpers and the integrator reference these ids: they must exist.
REQUIRED_IDS = {
    "meadow-flex", "meadow-cash", "meadow-mall", "meadow-business", "products-overview",
    "rule-right-to-information", "rule-fair-marketing", "rule-debt-collection", "rule-privacy",
    "rule-complaint-handling", "rule-vulnerable-customers", "rule-anti-fraud",
}
SECTION_WORDS = (50, 300)  # target 60-250: one retrieval chunk each

# --- figure extraction --------------------------------------------------------------------

NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
PCT_RANGE = re.compile(rf"({NUM})\s*%(?:\s*(?:to|and|-|–|—)\s*({NUM})\s*%)?")
APR_WORD = re.compile(
    r"\bAPRs?\b|(?i:\bannual(?:i[sz]ed)?\s+(?:percentage\s+|interest\s+)?rates?\b)"
)
# Words that may sit between "APR" and its percentage ("APR is never above 24%") without
# turning it into another figure ("APR includes the 1% fee" is not an APR of 1%).
APR_LINK_WORDS = {
    "a", "an", "the", "of", "is", "are", "be", "will", "can", "may", "from", "between", "range",
    "ranges", "ranging", "at", "up", "to", "as", "low", "high", "starts", "starting", "never",
    "above", "below", "over", "under", "not", "no", "more", "less", "than", "exceed", "exceeds",
    "capped", "cap", "by", "law", "only", "real", "true", "effective", "fixed", "your", "its",
    "stated", "disclosed", "offered", "for", "this", "offer", "typically", "usually", "within",
    "any", "our", "every", "that", "which", "means", "maximum", "minimum", "max", "min",
    "lowest", "highest", "around", "about", "approximately", "representative", "standard",
    "promotional", "meadow", "flex", "cash", "mall", "business", "loan", "installments", "line",
}
GAP = re.compile(r"[\s(),:=\"'“”‘’*_\-–—]*((?:[A-Za-z]+[\s(),:=\"'“”‘’*_\-–—]*)*)")
UNIT_AFTER = (r"(?:\s*(?:%|percent\b|CNY\b|yuan\b|RMB\b|(?:calendar\s+|working\s+|business\s+)?days?\b"
              r"|months?\b|installments?\b)|-(?:day|month|installment)s?\b)")
NUM_LIST = rf"(?:{NUM})(?:\s*(?:,|or|and|to|-|–|—)\s*(?:{NUM}))*"
FIGURE_AFTER = re.compile(rf"(?<![\d.,:])({NUM_LIST}){UNIT_AFTER}")
FIGURE_BEFORE = re.compile(rf"(?:\bCNY|\bRMB|¥)\s*({NUM_LIST})")


def _gap_is_linking(gap: str) -> bool:
    match = GAP.fullmatch(gap)
    if not match:
        return False
    words = re.findall(r"[A-Za-z]+", gap)
    return len(words) <= 8 and all(w.lower() in APR_LINK_WORDS for w in words)


def apr_percentages(text: str) -> list[float]:
    """Percentages that the text states as an APR: 'APR of 10.9%', 'APR between 7.2% and 23.9%',
    '23.9% APR', 'annual percentage rate (APR) ... 9.9%'. Other percentages are left alone."""
    found: list[float] = []
    for rng in PCT_RANGE.finditer(text):
        before = text[max(0, rng.start() - 80):rng.start()]
        keywords = list(APR_WORD.finditer(before))
        is_apr = bool(keywords) and _gap_is_linking(before[keywords[-1].end():])
        after = APR_WORD.search(text, rng.end(), rng.end() + 40)
        is_apr = is_apr or bool(after and _gap_is_linking(text[rng.end():after.start()]))
        if is_apr:
            found += [float(normalise_number(v)) for v in rng.groups() if v]
    return found


def unit_figures(text: str) -> list[str]:
    """Every number that carries a %, CNY/yuan, days, months or installments unit, normalised
    ('50,000 CNY' -> '50000'); in a list such as '3, 6 or 12 months' every number counts."""
    figures: dict[int, str] = {}  # by position, so 'CNY 5,000 to 10,000 CNY' counts each once
    for pattern in (FIGURE_AFTER, FIGURE_BEFORE):
        for match in pattern.finditer(text):
            for number in re.finditer(NUM, match.group(1)):
                figures[match.start(1) + number.start()] = normalise_number(number.group())
    return [figures[position] for position in sorted(figures)]


# --- what terms.yaml allows ---------------------------------------------------------------

@dataclass(frozen=True)
class AprBounds:
    low: float
    high: float
    extra: frozenset[float]  # the cap, promotional APRs, 0 where 0-interest promotions exist

    def allows(self, value: float) -> bool:
        return self.low <= value <= self.high or value in self.extra


def _promotional_aprs(product: ProductTerms) -> set[float]:
    p = product.promotions
    if not p:
        return set()
    return {p.zero_interest_with_fee_apr_pct} | ({0.0} if p.zero_interest_terms else set())


def apr_bounds(terms: Terms, product_key: str | None) -> AprBounds:
    products = [terms.products[product_key]] if product_key else list(terms.products.values())
    extra = {terms.lender.apr_cap_pct}
    for product in products:
        extra |= _promotional_aprs(product)
    return AprBounds(min(p.apr_min_pct for p in products), max(p.apr_max_pct for p in products),
                     frozenset(extra))


def shared_figures(terms: Terms) -> set[str]:
    """Numeric lender, collections and complaints figures (the cap, 3 attempts, 15 days...)."""
    values = [*terms.lender.model_dump().values(), *terms.collections.values(), *terms.complaints.values()]
    return {normalise_number(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)}


def allowed_figures(terms: Terms, product_key: str | None) -> set[str]:
    products = [terms.products[product_key]] if product_key else list(terms.products.values())
    allowed = shared_figures(terms)
    for product in products:
        allowed |= product.figures()
    return allowed


def brand(product: ProductTerms) -> str:
    """'Meadow Mall installments' -> 'Meadow Mall': what a self-contained chunk must name."""
    return " ".join(product.name.split()[:2])


# --- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def terms() -> Terms:
    return load_terms(TERMS_FILE)


@pytest.fixture(scope="module")
def docs(terms: Terms) -> list[Document]:
    return load_documents(KB_DIR, product_keys=set(terms.products))


# --- the knowledge base -------------------------------------------------------------------

def test_every_document_loads_with_valid_front_matter_and_unique_ids(docs: list[Document]) -> None:
    # load_documents raises, naming each file, on bad front matter, unknown product or duplicate id.
    ids = [d.id for d in docs]
    assert len(ids) == len(set(ids))
    assert all(d.sections for d in docs), [d.source for d in docs if not d.sections]


def test_required_documents_exist(docs: list[Document]) -> None:
    assert REQUIRED_IDS <= {d.id for d in docs}, REQUIRED_IDS - {d.id for d in docs}


def test_product_documents_match_their_terms_id(docs: list[Document], terms: Terms) -> None:
    for doc in docs:
        if doc.type == "product" and doc.product:
            assert doc.id == terms.products[doc.product].id, doc.source


def test_every_apr_is_within_its_products_range(docs: list[Document], terms: Terms) -> None:
    problems = []
    for doc in docs:
        bounds = apr_bounds(terms, doc.product)
        for section in doc.sections:
            for value in apr_percentages(f"{section.heading}\n{section.text}"):
                if not bounds.allows(value):
                    problems.append(f"{doc.source} § {section.heading!r}: APR {value}% outside "
                                    f"{bounds.low}%-{bounds.high}% (or {sorted(bounds.extra)})")
    assert not problems, "\n".join(problems)


def test_product_documents_state_only_figures_from_terms(docs: list[Document], terms: Terms) -> None:
    problems = []
    for doc in (d for d in docs if d.type == "product"):
        allowed = allowed_figures(terms, doc.product)
        for section in doc.sections:
            for figure in unit_figures(f"{section.heading}\n{section.text}"):
                if figure not in allowed:
                    problems.append(f"{doc.source} § {section.heading!r}: {figure} is not a figure of "
                                    f"{doc.product or 'any product'} in terms.yaml")
    assert not problems, "\n".join(problems)


def test_product_and_rule_sections_are_self_contained_chunks(docs: list[Document], terms: Terms) -> None:
    problems = []
    low, high = SECTION_WORDS
    for doc in (d for d in docs if d.type in ("product", "rule")):
        name = brand(terms.products[doc.product]) if doc.product else terms.lender.short_name
        for section in doc.sections:
            if not low <= section.word_count <= high:
                problems.append(f"{doc.source} § {section.heading!r}: {section.word_count} words")
            if name not in f"{section.heading} {section.text}":
                problems.append(f"{doc.source} § {section.heading!r}: does not name {name!r}")
    assert not problems, "\n".join(problems)


def test_faq_headings_are_questions(docs: list[Document]) -> None:
    problems = [
        f"{doc.source}: {section.heading!r}"
        for doc in docs if doc.type == "faq"
        for index, section in enumerate(doc.sections)
        if not (index == 0 and section.heading == doc.title) and not section.heading.rstrip().endswith("?")
    ]
    assert not problems, "FAQ '## ' headings must be questions:\n" + "\n".join(problems)


def test_qa_gold_sources_exist(docs: list[Document]) -> None:
    if not QA_FILE.exists():
        pytest.skip(f"{QA_FILE} not written yet")
    ids = {d.id for d in docs}
    problems = []
    for number, line in enumerate(QA_FILE.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        for source in row.get("sources") or []:
            doc_id = str(source).split("#", 1)[0]  # "doc-id" or "doc-id#section-anchor"
            if doc_id not in ids:
                problems.append(f"qa.jsonl line {number}: unknown source {source!r}")
    assert not problems, "\n".join(problems)


# --- the checkers themselves ----------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Meadow Flex has an APR between 7.2% and 23.9%.", [7.2, 23.9]),
    ("an annual percentage rate (APR) of 9.9% to 23.9%", [9.9, 23.9]),
    ("a monthly fee of 0.5% of the price, which is a real APR of 10.9%", [10.9]),
    ("from 36% APR", [36.0]),
    ("A Meadow Cash APR is never above 24%, the cap.", [24.0]),
    ("The Meadow Cash APR includes the 1% origination fee.", []),
    ("APR 7.2%-23.9%. The late fee is 5% of the installment.", [7.2, 23.9]),
    ("The late fee is 5% of the overdue installment, at least 10 CNY.", []),
])
def test_apr_percentages(text: str, expected: list[float]) -> None:
    assert apr_percentages(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("limits from 500 CNY to 50,000 CNY", ["500", "50000"]),
    ("1,000 to 50,000 CNY over 6, 12, 24 or 36 months", ["1000", "50000", "6", "12", "24", "36"]),
    ("a 3-day grace period and a 12-installment offer", ["3", "12"]),
    ("CNY 200,000 and 0.5% a month", ["200000", "0.5"]),
    ("call 400-820-6600 between 8:00-21:00 every day, aged 18 to 65", []),
    ("effective 2026-07-01, within 7 calendar days", ["7"]),
])
def test_unit_figures(text: str, expected: list[str]) -> None:
    assert sorted(unit_figures(text)) == sorted(expected)


def test_disagreeing_figure_and_apr_are_caught(terms: Terms) -> None:
    text = "Meadow Cash late fee: 8% of the overdue installment, APR from 4.9%."
    assert "8" not in allowed_figures(terms, "cash") and "8" in unit_figures(text)
    assert not apr_bounds(terms, "cash").allows(apr_percentages(text)[0])
    # the 12-installment promotion's APR lies below Meadow Mall's standard range, and is allowed
    assert apr_bounds(terms, "mall").allows(10.9) and not apr_bounds(terms, "mall").allows(10.8)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """---
id: good-doc
title: Good
type: rule
effective_date: 2026-07-01
version: "1.0"
tags: [a]
---

# Good

Intro text.

## First
One.

```
## not a heading
```

## First
Two.
"""


def test_parse_document_splits_sections(tmp_path: Path) -> None:
    doc = parse_document(_write(tmp_path / "rules" / "good.md", GOOD), tmp_path)
    assert doc.source == "rules/good.md" and doc.effective_date.isoformat() == "2026-07-01"
    assert [s.heading for s in doc.sections] == ["Good", "First", "First"]
    assert [s.anchor for s in doc.sections] == ["good", "first", "first-2"]
    assert "## not a heading" in doc.sections[1].text


@pytest.mark.parametrize("front, message", [
    ("title: X\ntype: rule\neffective_date: 2026-07-01\nversion: '1'\ntags: []", "id"),
    ("id: x\ntitle: X\ntype: memo\neffective_date: 2026-07-01\nversion: '1'\ntags: []", "type"),
    ("id: x\ntitle: X\ntype: rule\neffective_date: 2026-13-01\nversion: '1'\ntags: []", "effective_date"),
    ("id: x\ntitle: X\ntype: rule\neffective_date: 2026-07-01\nversion: '1'\ntags: a", "tags"),
    ("id: Not Kebab\ntitle: X\ntype: rule\neffective_date: 2026-07-01\nversion: '1'\ntags: []", "id"),
])
def test_bad_front_matter_names_the_file_and_field(tmp_path: Path, front: str, message: str) -> None:
    _write(tmp_path / "rules" / "bad.md", f"---\n{front}\n---\n\n## A\nText.\n")
    with pytest.raises(KnowledgeBaseError, match=rf"rules/bad\.md: .*{message}"):
        load_documents(tmp_path)


def test_duplicate_ids_and_unknown_products_are_reported_together(tmp_path: Path) -> None:
    for name in ("one", "two"):
        _write(tmp_path / "faqs" / f"{name}.md", GOOD.replace("type: rule", "type: faq\nproduct: car"))
    _write(tmp_path / "README.md", "not a document")
    with pytest.raises(KnowledgeBaseError) as error:
        load_documents(tmp_path, product_keys={"cash"})
    assert "already used by faqs/one.md" in str(error.value)
    assert str(error.value).count("'car' is not a key") == 2


def test_missing_front_matter_and_empty_section(tmp_path: Path) -> None:
    _write(tmp_path / "a.md", "# No front matter\n")
    _write(tmp_path / "b.md", GOOD.replace("Two.", ""))
    with pytest.raises(KnowledgeBaseError) as error:
        load_documents(tmp_path)
    assert "a.md: no YAML front matter" in str(error.value)
    assert "b.md: section 'First' has no text" in str(error.value)
