"""Training and measuring the router's classifier.

The intent model learns from the hand-written examples in evals/datasets/intents.jsonl (a stable
quarter of them is held out for evaluation) plus real customer messages from the shared data:
banking77 and bank-FAQ questions are `answer` messages, CFPB complaint narratives (their opening
sentences, the length of a chat message) are `complaint` messages. The same code trains on any
labelled CSV (`train_csv`), e.g. banking77's 77 intents."""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from assistant.config import PROJECT_ROOT, Settings
from assistant.public_data import resolve_datasets_dir
from assistant.routing.textclf import (
    CachedEmbedder, DataError, EmbeddingClassifier, fit_with_validation, in_holdout, metrics, read_labelled,
)
from assistant.types import Conversation

INTENTS_FILE = PROJECT_ROOT / "evals" / "datasets" / "intents.jsonl"
SHARED_DATA = resolve_datasets_dir()  # fetched copy (assistant data fetch), else ../shared/data
HOLDOUT_PERCENT = 25  # of the hand-written examples, never trained on by `train_intents`
BANKING77_PER_CLASS = 6
BANK_FAQ_CLASSES = {"accounts", "cards", "fundstransfer", "loans", "security"}
BANK_FAQ_MAX = 300
CFPB_MAX = 700
HANDWRITTEN_WEIGHT = 3.0  # our own examples are closest to Meadow's customers


def cached_embedder(settings: Settings, embedder: Any = None) -> CachedEmbedder:
    if embedder is None:
        from assistant.knowledge.embeddings import load_embedder

        embedder = load_embedder(settings)
    return CachedEmbedder(embedder, settings.embedding_model, settings.data_dir / "cache" / "embeddings")


# --- the six-intent router ------------------------------------------------------------------------

def handwritten(path: Path = INTENTS_FILE, split: str = "train") -> list[dict[str, Any]]:
    """Hand-written examples: split "train", "test" (the held-out quarter) or "all"."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if split == "all":
        return rows
    return [r for r in rows if is_held_out(r["text"]) == (split == "test")]


def is_held_out(text: str) -> bool:
    return in_holdout(text, HOLDOUT_PERCENT, salt="intents")


def shared_examples(shared_dir: Path = SHARED_DATA) -> list[tuple[str, str, str]]:
    """(text, intent, source) from the real customer messages in the shared data (may be absent)."""
    found: list[tuple[str, str, str]] = []
    banking = shared_dir / "banking77_train.csv"
    if banking.is_file():
        by_class: dict[str, list[str]] = {}
        for row in _csv(banking):
            by_class.setdefault(row["category"], []).append(row["text"])
        for texts in by_class.values():
            found += [(t, "answer", "banking77") for t in _sample(texts, BANKING77_PER_CLASS)]
    faq = shared_dir / "bank_faq_train.csv"
    if faq.is_file():
        questions = [r["Question"] for r in _csv(faq) if r.get("Class") in BANK_FAQ_CLASSES]
        found += [(q, "answer", "bank_faq") for q in _sample(questions, BANK_FAQ_MAX)]
    narratives: list[str] = []
    for name in ("cfpb_complaints_train.csv", "cfpb_narratives_product4_train.csv"):
        if (shared_dir / name).is_file():
            narratives += [r["Consumer complaint narrative"] for r in _csv(shared_dir / name)
                           if (r.get("Consumer complaint narrative") or "").strip()]
    found += [(opening_sentences(n), "complaint", "cfpb") for n in _sample(narratives, CFPB_MAX)]
    return found


def opening_sentences(narrative: str, max_chars: int = 300) -> str:
    """The first sentences of a complaint narrative, without CFPB's XXXX redaction marks."""
    text = re.sub(r"\s+", " ", re.sub(r"\bX{2,}[X/]*\b|\{\$[\d.,]+\}", "", narrative)).strip()
    sentences = re.split(r"(?<=[.!?])\s+", text)
    out = ""
    for sentence in sentences:
        if out and len(out) + len(sentence) > max_chars:
            break
        out = f"{out} {sentence}".strip()
    return out[:max_chars]


def intent_training_set(intents_file: Path = INTENTS_FILE, shared_dir: Path = SHARED_DATA,
                        include_holdout: bool = False) -> tuple[list[str], list[str], np.ndarray, dict[str, int]]:
    rows = handwritten(intents_file, "all" if include_holdout else "train")
    texts = [r["text"] for r in rows]
    labels = [r.get("base_intent") or r["intent"] for r in rows]  # urgency is the rules' job
    weights = [HANDWRITTEN_WEIGHT] * len(rows)
    counts = {"handwritten": len(rows)}
    for text, intent, source in shared_examples(shared_dir):
        texts.append(text), labels.append(intent), weights.append(1.0)
        counts[source] = counts.get(source, 0) + 1
    return texts, labels, np.asarray(weights), counts


def train_intents(settings: Settings, out: Path, embedder: Any = None, intents_file: Path = INTENTS_FILE,
                  shared_dir: Path = SHARED_DATA, include_holdout: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    texts, labels, weights, counts = intent_training_set(intents_file, shared_dir, include_holdout)
    vectors = cached_embedder(settings, embedder)(texts)
    model, report = fit_with_validation(vectors, labels, texts, sample_weight=weights)
    model.meta.update(embedding_model=settings.embedding_model, trained_on=counts, task="intents",
                      holdout_percent=0 if include_holdout else HOLDOUT_PERCENT)
    model.save(out)
    return {"model": str(out), "labels": model.labels, "sources": counts, **report,
            "seconds": round(time.perf_counter() - started, 1)}


def evaluate_routes(router: Any, rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The router's final decision (rules + classifier, empty conversation) against each row's intent."""
    rows = list(rows)
    scores = router.classify_many([r["text"] for r in rows]) if rows else []
    decisions = [router.decide(Conversation(), r["text"], s) for r, s in zip(rows, scores)]
    truth = [r["intent"] for r in rows]
    predicted = [d.intent for d in decisions]
    report = metrics(truth, predicted)
    report["low_confidence"] = sum(d.reason == "low_confidence" for d in decisions)
    report["errors"] = [{"text": r["text"], "expected": r["intent"], "got": d.intent, "reason": d.reason,
                         "confidence": d.confidence}
                        for r, d in zip(rows, decisions) if d.intent != r["intent"]]
    tricky = [(t, p) for r, t, p in zip(rows, truth, predicted) if r.get("tricky")]
    if tricky:
        report["tricky"] = metrics(*zip(*tricky))
    return report


def evaluation_report(settings: Settings, data: Path = INTENTS_FILE, embedder: Any = None,
                      model_path: Path | None = None, shared_dir: Path = SHARED_DATA) -> dict[str, Any]:
    """The routing eval: on the held-out quarter of the hand-written examples, the router's final
    decisions (rules, urgency, classifier) against `intent`; its classifier alone and a TF-IDF +
    logistic-regression baseline trained on the same training set against `base_intent`."""
    from assistant.routing.router import Router

    test = handwritten(data, "test")
    if not test:
        raise DataError(f"{data}: no held-out examples")
    if model_path is not None:
        settings = settings.model_copy(update={"router_model": model_path})
    router = Router(settings, embedder)
    report = evaluate_routes(router, test)
    base_truth = [r.get("base_intent") or r["intent"] for r in test]
    texts = [r["text"] for r in test]
    classifier = [max(s, key=s.get) for s in router.classify_many(texts)]
    train_texts, train_labels, weights, _ = intent_training_set(data, shared_dir)
    report["classifier"] = metrics(base_truth, classifier)
    report["baseline"] = metrics(base_truth, _tfidf_baseline(train_texts, train_labels, weights, texts))
    report["per_intent"] = _per_label_f1([r["intent"] for r in test], [e for e in _predicted(report, test)])
    return report


def _tfidf_baseline(texts: list[str], labels: list[str], weights: np.ndarray, test: list[str]) -> list[str]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
    clf = LogisticRegression(C=10.0, max_iter=3000, class_weight="balanced")
    clf.fit(vec.fit_transform(texts), labels, sample_weight=weights)
    return list(clf.predict(vec.transform(test)))


def _predicted(report: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    wrong = {e["text"]: e["got"] for e in report["errors"]}
    return [wrong.get(r["text"], r["intent"]) for r in rows]


def _per_label_f1(truth: list[str], predicted: list[str]) -> dict[str, float]:
    from sklearn.metrics import f1_score

    labels = sorted(set(truth))
    scores = f1_score(truth, predicted, labels=labels, average=None, zero_division=0)
    return {label: round(float(x), 4) for label, x in zip(labels, scores)}


# --- any labelled CSV -------------------------------------------------------------------------------

def train_csv(settings: Settings, data: Path, out: Path, text_col: str = "text", label_col: str = "label",
              val_percent: int = 10, embedder: Any = None) -> dict[str, Any]:
    started = time.perf_counter()
    texts, labels = read_labelled(data, text_col, label_col)
    vectors = cached_embedder(settings, embedder)(texts)
    model, report = fit_with_validation(vectors, labels, texts, val_percent=val_percent, class_weight=None)
    model.meta.update(embedding_model=settings.embedding_model, task=f"csv:{Path(data).name}",
                      text_col=text_col, label_col=label_col)
    model.save(out)
    return {"model": str(out), "n_labels": len(model.labels), **report,
            "seconds": round(time.perf_counter() - started, 1)}


def evaluate_csv(settings: Settings, model_path: Path, data: Path, text_col: str = "text",
                 label_col: str = "label", embedder: Any = None) -> dict[str, Any]:
    model = EmbeddingClassifier.load(model_path)
    trained_on = model.meta.get("embedding_model")
    if trained_on and trained_on != settings.embedding_model:
        raise DataError(f"{model_path} was trained on {trained_on!r} embeddings; "
                        f"settings.embedding_model is {settings.embedding_model!r}")
    texts, labels = read_labelled(data, text_col, label_col)
    predicted = model.predict(cached_embedder(settings, embedder)(texts))
    report = metrics(labels, predicted)
    report["unknown_labels"] = sorted(set(labels) - set(model.labels))
    return report


def _csv(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def _sample(items: list[str], n: int) -> list[str]:
    """A stable sample: the n items with the smallest hash (no random state to carry around)."""
    import hashlib

    unique = sorted(set(items), key=lambda t: hashlib.sha256(t.encode()).hexdigest())
    return unique[:n]
