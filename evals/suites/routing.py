"""Routing: the router's final decisions (rules, urgency, classifier) on the held-out quarter of
intents.jsonl, through the router's own evaluation (assistant.routing.train.evaluate_routes),
beside two baselines measured in the same run on the same rows:

- tfidf_logreg: TF-IDF (words and bigrams) + logistic regression trained on exactly the router's
  training set (the hand-written examples outside the held-out quarter and the shared data);
- classifier_only: the router's embedding classifier without its rules.

`--data routing=FILE`: every row of a JSON-lines file of {"text", "intent"} is evaluated."""

from __future__ import annotations

import importlib.util
from typing import Any

from evals import metrics as m
from evals.results import SuiteResult
from evals.suites.base import DATASETS, SuiteOptions, SuiteUnavailable, load_jsonl
from evals.system import System

NAME = "routing"
DEFAULT_DATA = DATASETS / "intents.jsonl"

DEFINITIONS = {
    "accuracy": "Messages routed to their labelled intent (answer, eligibility, complaint, handoff, smalltalk, "
                "out_of_scope) by the router's final decision, rules included.",
    "macro_f1": "Unweighted mean of the per-intent F1 scores.",
    "tricky_accuracy": "Accuracy on the rows marked tricky (near-miss pairs such as 'how do I complain?' vs "
                       "'I want to complain').",
    "low_confidence_rate": "Messages on which the router was unsure and would ask a clarifying question.",
    "n": "Evaluation messages.",
}


def run(system: System, options: SuiteOptions) -> SuiteResult:
    if importlib.util.find_spec("assistant.routing.train") is None:
        raise SuiteUnavailable("assistant.routing.train (the router's evaluation) is not built yet")
    from assistant.routing import train as rt
    from assistant.routing.router import Router

    path = options.data_file(DEFAULT_DATA)
    rows = [r for r in load_jsonl(path) if r.get("text") and r.get("intent")]
    if not options.data:
        rows = [r for r in rows if rt.is_held_out(r["text"])]  # the quarter `router train` never saw
    if options.limit:
        rows = rows[: options.limit]
    if not rows:
        raise SuiteUnavailable(f"no labelled rows in {path}")
    router = Router(system.settings)
    report = rt.evaluate_routes(router, rows)
    truth = [r["intent"] for r in rows]
    wrong = {e["text"]: e for e in report.get("errors", [])}
    predicted = [wrong[r["text"]]["got"] if r["text"] in wrong else r["intent"] for r in rows]

    result = SuiteResult(suite=NAME, definitions=dict(DEFINITIONS),
                         note=f"{'held-out quarter of ' if not options.data else ''}{path.name}: {len(rows)} messages")
    result.metrics = {
        "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
        "tricky_accuracy": (report.get("tricky") or {}).get("accuracy"),
        "low_confidence_rate": report.get("low_confidence", 0) / len(rows), "n": float(len(rows)),
    }
    texts = [r["text"] for r in rows]
    baseline_predictions = {"tfidf_logreg": tfidf_baseline(rt, texts), "classifier_only": router.model.predict(
        rt.cached_embedder(system.settings, router.embedder)(texts))}
    for name, guess in baseline_predictions.items():
        result.baselines[name] = {"accuracy": m.accuracy(truth, guess), "macro_f1": m.macro_f1(truth, guess)}
    labels = sorted(set(truth) | set(predicted))
    result.plots = {"confusion": _confusion(truth, predicted, labels),
                    "baseline_confusion": _confusion(truth, baseline_predictions["tfidf_logreg"], labels)}
    result.rows = [{"id": i, "category": t, "question": r["text"], "answer": "", "path": p,
                    "citations": [], "passed": p == t,
                    "why": "" if p == t else f"routed to {p} ({(wrong.get(r['text']) or {}).get('reason', '')})"}
                   for i, (r, t, p) in enumerate(zip(rows, truth, predicted), 1)]
    result.by_category = {intent: {"n": float(truth.count(intent)),
                                   "pass_rate": m.rate(p == t for t, p in zip(truth, predicted) if t == intent)}
                          for intent in sorted(set(truth))}
    return result


def tfidf_baseline(rt: Any, texts: list[str]) -> list[str]:
    """TF-IDF + logistic regression fitted on the router's own training set."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train_texts, train_labels, weights, _ = rt.intent_training_set()
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
    x = vectorizer.fit_transform(train_texts)
    model = LogisticRegression(max_iter=3000, class_weight="balanced", C=4.0).fit(x, train_labels, sample_weight=weights)
    return list(model.predict(vectorizer.transform(texts)))


def _confusion(truth: list[str], predicted: list[str], labels: list[str]) -> dict[str, Any]:
    labels, matrix = m.confusion_matrix(truth, predicted, labels)
    return {"labels": labels, "matrix": matrix}
