"""Complaint classification into Meadow's taxonomy (knowledge_base/rules/complaint_taxonomy.yaml):
product x issue, and the team that owns the issue.

Two linear classifiers (assistant/routing/textclf.py) on the sentence embedding of the whole complaint
(the mean of its chunks) beside word and character TF-IDF features (3,000 chi-squared-selected
terms each), trained on CFPB complaint narratives whose CFPB product and issue labels the
taxonomy maps to Meadow's own. A complaint
that names a Meadow product ("Meadow Mall", "business loan") takes that product. Severity and
escalation come from the complaint rules (assistant/complaints/rules.py), not from here.

`evaluate` measures the classifier on any file in the CFPB column format, beside a TF-IDF +
logistic-regression baseline trained on the same rows in the same run."""

from __future__ import annotations

import csv
import re
import time
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml
from pydantic import BaseModel, Field, field_validator

from assistant.config import Settings
from assistant.public_data import resolve_datasets_dir
from assistant.routing.textclf import (
    CachedEmbedder, DataError, EmbeddingClassifier, embed_long, fit_with_validation, in_holdout, metrics,
)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
PRODUCT_MODEL, ISSUE_MODEL = "complaint_product.npz", "complaint_issue.npz"
SHARED_DATA = resolve_datasets_dir()  # fetched copy (assistant data fetch), else ../shared/data
CFPB_FILES = ("cfpb_complaints_train.csv", "cfpb_narratives_product4_train.csv")
NARRATIVE, PRODUCT, ISSUE, ID = "Consumer complaint narrative", "Product", "Issue", "Complaint ID"
TEST_PERCENT = 20  # the shared data's test split for the eval runner
BASELINE_C_GRID = (1.0, 10.0, 100.0)
VOCABULARY_SIZE = 3000  # per TF-IDF block (words, characters)
C_GRID = (4.0, 10.0)


# --- taxonomy ------------------------------------------------------------------------------------

class ProductDef(BaseModel):
    name: str
    keywords: list[str] = Field(default_factory=list)
    cfpb: list[str] = Field(default_factory=list)


class IssueDef(BaseModel):
    name: str
    team: str
    cfpb: list[str] = Field(default_factory=list)
    asks: list[str] = Field(default_factory=list)  # regexes: what a customer asks for in chat ("remove the late fee")

    @field_validator("asks")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        # a bad pattern fails at load, never in the middle of a customer's complaint
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad pattern {pattern!r}: {exc}") from exc
        return patterns


class Taxonomy(BaseModel):
    version: str = "1"
    teams: dict[str, str]
    customer_teams: dict[str, str] = Field(default_factory=dict)  # what a customer reads
    products: dict[str, ProductDef]
    issues: dict[str, IssueDef]
    fallback_issue: str

    def model_post_init(self, _context: Any) -> None:
        for key, issue in self.issues.items():
            if issue.team not in self.teams:
                raise ValueError(f"issue {key}: unknown team {issue.team!r}")
        if self.fallback_issue not in self.issues:
            raise ValueError(f"fallback_issue {self.fallback_issue!r} is not an issue")
        self._product_of = {_norm(c): k for k, p in self.products.items() for c in p.cfpb}
        self._issue_of = {_norm(c): k for k, i in self.issues.items() for c in i.cfpb}

    def product_for_cfpb(self, label: str) -> str | None:
        return self._product_of.get(_norm(label))

    def issue_for_cfpb(self, label: str) -> str:
        return self._issue_of.get(_norm(label), self.fallback_issue)

    def product_named_in(self, text: str) -> str | None:
        lowered = text.lower()
        for key, product in self.products.items():
            if any(re.search(rf"\b{re.escape(k)}\b", lowered) for k in product.keywords):
                return key
        return None

    def issue_asked_in(self, text: str) -> str | None:
        """The issue whose `asks` pattern the message matches: what the customer asks us to do."""
        lowered = text.lower()
        for key, issue in self.issues.items():
            if any(re.search(p, lowered) for p in issue.asks):
                return key
        return None

    def team_for(self, issue: str) -> str:
        return self.issues[issue].team

    def customer_team(self, team: str) -> str:
        """A team as a customer reads it ("Billing team"), never the internal taxonomy."""
        return self.customer_teams.get(team) or "Complaints team"

    def customer_product(self, product: str | None) -> str:
        """A product's name when Meadow offers it (it has keywords), else "" (the CFPB-only
        categories such as secured loans are internal)."""
        found = self.products.get(product or "")
        return found.name if found and found.keywords else ""


def taxonomy_file(settings: Settings) -> Path:
    return settings.knowledge_dir / "rules" / "complaint_taxonomy.yaml"


def load_taxonomy(path: Path) -> Taxonomy:
    return _load_taxonomy(Path(path).resolve())


@lru_cache(maxsize=8)
def _load_taxonomy(path: Path) -> Taxonomy:
    return Taxonomy.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def _norm(label: str) -> str:
    return re.sub(r"\s+", " ", str(label)).strip().lower()


# --- classifier ------------------------------------------------------------------------------------

class Classification(BaseModel):
    product: str
    product_name: str
    issue: str
    issue_name: str
    team: str
    team_name: str
    product_confidence: float
    issue_confidence: float
    product_source: str = "model"  # or "named" when the customer named a Meadow product
    issue_source: str = "model"  # or "asked" when the customer asked for something the taxonomy names


class ComplaintClassifier:
    def __init__(self, settings: Settings, embedder: Any = None, product_model: EmbeddingClassifier | None = None,
                 issue_model: EmbeddingClassifier | None = None, taxonomy: Taxonomy | None = None):
        self.settings = settings
        self._embedder = embedder
        self._models = (product_model, issue_model)
        self.taxonomy = taxonomy or load_taxonomy(taxonomy_file(settings))

    @cached_property
    def models(self) -> tuple[EmbeddingClassifier, EmbeddingClassifier]:
        folder = self.settings.complaint_model_dir or MODELS_DIR
        product = self._models[0] or EmbeddingClassifier.load(folder / PRODUCT_MODEL)
        issue = self._models[1] or EmbeddingClassifier.load(folder / ISSUE_MODEL)
        for model, known in ((product, self.taxonomy.products), (issue, self.taxonomy.issues)):
            unknown = set(model.labels) - set(known)
            if unknown:
                raise ValueError(f"complaint model labels {sorted(unknown)} are not in the taxonomy: retrain it")
        return product, issue

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from assistant.knowledge.embeddings import load_embedder

            self._embedder = load_embedder(self.settings)
        return self._embedder

    def classify(self, text: str) -> Classification:
        """One customer's message. What they ask for ("remove the late fee": the issue's `asks` in the
        taxonomy) wins over the model's issue, as a named product wins over its product. (Only here:
        classify_many, which the CFPB evaluation measures, is the model alone.)"""
        found = self.classify_many([text])[0]
        asked = self.taxonomy.issue_asked_in(text)
        if asked is None or asked == found.issue:
            return found
        team = self.taxonomy.team_for(asked)
        return found.model_copy(update={"issue": asked, "issue_name": self.taxonomy.issues[asked].name, "team": team,
                                        "team_name": self.taxonomy.teams[team], "issue_confidence": 1.0,
                                        "issue_source": "asked"})

    def classify_many(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> list[Classification]:
        from assistant.knowledge.embeddings import embed

        product_model, issue_model = self.models
        cleaned = [clean_narrative(t) for t in texts]
        if vectors is None:
            vectors = embed_long(lambda chunks: embed(self.embedder, list(chunks)), cleaned)
        p_probs, i_probs = product_model.proba(vectors, cleaned), issue_model.proba(vectors, cleaned)
        return [self._classification(text, p, i) for text, p, i in zip(texts, p_probs, i_probs)]

    def _classification(self, text: str, p_probs: np.ndarray, i_probs: np.ndarray) -> Classification:
        product_model, issue_model = self.models
        named = self.taxonomy.product_named_in(text)
        product = named or product_model.labels[int(p_probs.argmax())]
        issue = issue_model.labels[int(i_probs.argmax())]
        team = self.taxonomy.team_for(issue)
        return Classification(
            product=product, product_name=self.taxonomy.products[product].name, issue=issue,
            issue_name=self.taxonomy.issues[issue].name, team=team, team_name=self.taxonomy.teams[team],
            product_confidence=1.0 if named else round(float(p_probs.max()), 4),
            issue_confidence=round(float(i_probs.max()), 4), product_source="named" if named else "model")


def clean_narrative(text: str) -> str:
    """CFPB narratives mask names and numbers as XXXX and amounts as {$12.00}: drop the masks."""
    return re.sub(r"\s+", " ", re.sub(r"\bX{2,}[X/]*\b|\{\$[\d.,]+\}", " ", text)).strip()


# --- data ------------------------------------------------------------------------------------------

@dataclass
class ComplaintRow:
    text: str
    product: str | None  # Meadow's label, None when the CFPB product maps to none
    issue: str | None  # None when the file has no issue column
    key: str


def read_cfpb(path: Path, taxonomy: Taxonomy) -> list[ComplaintRow]:
    """Rows with a narrative from a file in the CFPB column format (Product, Issue, narrative)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            if NARRATIVE not in columns or PRODUCT not in columns:
                raise DataError(f"{path}: not in the CFPB format: needs columns {PRODUCT!r} and {NARRATIVE!r} "
                                f"(and {ISSUE!r} for issues); it has {columns}")
            rows = []
            for r in reader:
                text = clean_narrative(r.get(NARRATIVE) or "")
                if not text:
                    continue
                issue = taxonomy.issue_for_cfpb(r[ISSUE]) if r.get(ISSUE) else None
                rows.append(ComplaintRow(text=text, product=taxonomy.product_for_cfpb(r.get(PRODUCT) or ""),
                                         issue=issue, key=r.get(ID) or text))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read it as CSV ({exc})") from exc
    return rows


def shared_rows(taxonomy: Taxonomy, shared_dir: Path = SHARED_DATA) -> list[ComplaintRow]:
    rows: list[ComplaintRow] = []
    for name in CFPB_FILES:
        if (shared_dir / name).is_file():
            rows += read_cfpb(shared_dir / name, taxonomy)
    if not rows:
        raise DataError(f"no CFPB complaint files in {shared_dir}")
    return _dedupe(rows)


def shared_split(taxonomy: Taxonomy, shared_dir: Path = SHARED_DATA) -> tuple[list[ComplaintRow], list[ComplaintRow]]:
    """(train, test): a stable split of the shared complaint data by complaint id (or text)."""
    rows = shared_rows(taxonomy, shared_dir)
    test = [r for r in rows if in_holdout(r.key, TEST_PERCENT, salt="complaints")]
    return [r for r in rows if not in_holdout(r.key, TEST_PERCENT, salt="complaints")], test


def _dedupe(rows: list[ComplaintRow]) -> list[ComplaintRow]:
    seen: set[str] = set()
    out = []
    for r in rows:
        k = r.text.lower()
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


# --- training and evaluation ----------------------------------------------------------------------

def train_models(rows: list[ComplaintRow], vectors: np.ndarray, embedding_model: str) -> tuple[
        EmbeddingClassifier, EmbeddingClassifier, dict[str, Any]]:
    keys = [r.key for r in rows]
    p_idx = [i for i, r in enumerate(rows) if r.product]
    i_idx = [i for i, r in enumerate(rows) if r.issue]
    product, p_report = fit_with_validation(vectors[p_idx], [rows[i].product for i in p_idx], [keys[i] for i in p_idx],
                                            c_grid=C_GRID, texts=[rows[i].text for i in p_idx],
                                            vocabulary_size=VOCABULARY_SIZE)
    issue, i_report = fit_with_validation(vectors[i_idx], [rows[i].issue for i in i_idx], [keys[i] for i in i_idx],
                                          c_grid=C_GRID, texts=[rows[i].text for i in i_idx],
                                          vocabulary_size=VOCABULARY_SIZE)
    for model, n in ((product, len(p_idx)), (issue, len(i_idx))):
        model.meta.update(embedding_model=embedding_model, n_train=n, task="complaints")
    return product, issue, {"product": p_report, "issue": i_report}


def train(settings: Settings, out_dir: Path, rows: list[ComplaintRow], embedder: Any = None) -> dict[str, Any]:
    started = time.perf_counter()
    vectors = embed_long(_embedder(settings, embedder), [r.text for r in rows])
    product, issue, report = train_models(rows, vectors, settings.embedding_model)
    product.save(Path(out_dir) / PRODUCT_MODEL)
    issue.save(Path(out_dir) / ISSUE_MODEL)
    return {"out_dir": str(out_dir), "n": len(rows), "products": product.labels, "issues": issue.labels,
            **report, "seconds": round(time.perf_counter() - started, 1)}


def evaluate(settings: Settings, test: list[ComplaintRow], train_rows: list[ComplaintRow],
             embedder: Any = None, taxonomy: Taxonomy | None = None, keep_predictions: bool = False) -> dict[str, Any]:
    """Train our classifier and the TF-IDF baseline on `train_rows` (minus any text also in
    `test`), measure both on `test`: product and issue accuracy and macro-F1."""
    started = time.perf_counter()
    if not test:
        raise DataError("no complaint narratives to evaluate")
    held = {r.text.lower() for r in test}
    train_rows = [r for r in train_rows if r.text.lower() not in held]
    embed = _embedder(settings, embedder)
    product, issue, _ = train_models(train_rows, embed_long(embed, [r.text for r in train_rows]),
                                     settings.embedding_model)
    clf = ComplaintClassifier(settings, embedder=embed.embedder, product_model=product, issue_model=issue,
                              taxonomy=taxonomy)
    predicted = clf.classify_many([r.text for r in test], vectors=embed_long(embed, [r.text for r in test]))
    report: dict[str, Any] = {"n_test": len(test), "n_train": len(train_rows)}
    for task in ("product", "issue"):
        pairs = [(getattr(r, task), getattr(p, task)) for r, p in zip(test, predicted) if getattr(r, task)]
        if not pairs:
            continue
        truth, ours = zip(*pairs)
        base = _baseline_predictions(train_rows, [r for r in test if getattr(r, task)], task)
        report[task] = {"model": metrics(truth, ours), "baseline": metrics(truth, base)}
        if keep_predictions:  # per-row labels, for the eval report's confusion matrices
            report[task]["predictions"] = {"truth": list(truth), "model": list(ours), "baseline": list(base)}
        report[task]["beats_baseline"] = (report[task]["model"]["macro_f1"] > report[task]["baseline"]["macro_f1"]
                                          and report[task]["model"]["accuracy"] >= report[task]["baseline"]["accuracy"])
    report["unmapped_products"] = sum(1 for r in test if r.product is None)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def evaluation_report(settings: Settings, data: Path | None = None, train_files: Sequence[Path] = (),
                      shared_dir: Path = SHARED_DATA, embedder: Any = None,
                      keep_predictions: bool = False) -> dict[str, Any]:
    """The complaints eval: on `data` (any CFPB-format file; default the test split made from the
    shared data), our classifier beside the TF-IDF baseline, both trained on `train_files`
    (default the shared data, minus the test rows)."""
    taxonomy = load_taxonomy(taxonomy_file(settings))
    if data is None:
        train_rows, test = shared_split(taxonomy, shared_dir)
    else:
        test = read_cfpb(data, taxonomy)
        train_rows = ([r for path in train_files for r in read_cfpb(path, taxonomy)] if train_files
                      else shared_rows(taxonomy, shared_dir))
    report = {"data": str(data) if data else f"shared split ({TEST_PERCENT}%)",
              **evaluate(settings, test, train_rows, embedder=embedder, taxonomy=taxonomy,
                         keep_predictions=keep_predictions)}
    report["beats_baseline"] = all(report[t]["beats_baseline"] for t in ("product", "issue") if t in report)
    return report


def _baseline_predictions(train_rows: list[ComplaintRow], test: list[ComplaintRow], task: str) -> list[str]:
    """TF-IDF (words and bigrams) + logistic regression, C picked on the same validation split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    rows = [r for r in train_rows if getattr(r, task)]
    val = np.array([in_holdout(r.key, 10, salt="val") for r in rows])
    texts, labels = [r.text for r in rows], np.array([getattr(r, task) for r in rows])

    def fit(idx: np.ndarray, c: float):
        vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
        x = vec.fit_transform([texts[i] for i in np.flatnonzero(idx)])
        return vec, LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x, labels[idx])

    best_c, best = BASELINE_C_GRID[0], -1.0
    if val.any() and len(set(labels[~val])) >= 2:
        for c in BASELINE_C_GRID:
            vec, clf = fit(~val, c)
            score = f1_score(labels[val], clf.predict(vec.transform([texts[i] for i in np.flatnonzero(val)])),
                             average="macro", zero_division=0)
            if score > best:
                best, best_c = score, c
    vec, clf = fit(np.ones(len(rows), dtype=bool), best_c)
    return list(clf.predict(vec.transform([r.text for r in test])))


def _embedder(settings: Settings, embedder: Any = None) -> CachedEmbedder:
    if isinstance(embedder, CachedEmbedder):
        return embedder
    if embedder is None:
        from assistant.knowledge.embeddings import load_embedder

        embedder = load_embedder(settings)
    return CachedEmbedder(embedder, settings.embedding_model, settings.data_dir / "cache" / "embeddings")
