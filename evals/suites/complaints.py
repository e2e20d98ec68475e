"""Complaints: product and issue classification of complaint narratives, beside the TF-IDF +
logistic regression baseline trained on the same rows in the same run, through the complaints
module's own evaluation (assistant.complaints.classifier.evaluation_report).

Default: the test split it makes from the CFPB files in ../shared/data. `--data complaints=FILE`:
any CSV in the CFPB column format (Product, Issue, Consumer complaint narrative)."""

from __future__ import annotations

import importlib.util
from typing import Any

from evals import metrics as m
from evals.results import SuiteResult
from evals.suites.base import SHARED_DATA, SuiteOptions, SuiteUnavailable
from evals.system import System

NAME = "complaints"
TASKS = ("product", "issue")

DEFINITIONS = {
    "product_accuracy": "Complaints whose product (Meadow's taxonomy, mapped from the CFPB label) is predicted right.",
    "product_macro_f1": "Unweighted mean F1 over the products.",
    "issue_accuracy": "Complaints whose issue (which decides the owning team) is predicted right.",
    "issue_macro_f1": "Unweighted mean F1 over the issues (headline: macro_f1).",
    "macro_f1": "Mean of the product and issue macro-F1.",
    "n": "Test complaints.",
}


def run(system: System, options: SuiteOptions) -> SuiteResult:
    if importlib.util.find_spec("assistant.complaints.classifier") is None:
        raise SuiteUnavailable("assistant.complaints.classifier is not built yet")
    from assistant.complaints import classifier as cm
    if options.data is None and not any(SHARED_DATA.glob("cfpb_*.csv")):
        raise SuiteUnavailable(f"no CFPB files in {SHARED_DATA}")
    data = options.data_file(options.data) if options.data else None
    report = cm.evaluation_report(system.settings, data, (), SHARED_DATA, embedder=_shared_cache_embedder(system),
                                  keep_predictions=True)
    result = SuiteResult(suite=NAME, definitions=dict(DEFINITIONS),
                         note=f"{report['data']}: {report['n_test']} complaints, trained on {report['n_train']}")
    baseline: dict[str, float | None] = {}
    for task in TASKS:
        if task not in report:
            continue
        for name, target in (("model", result.metrics), ("baseline", baseline)):
            target[f"{task}_accuracy"] = report[task][name]["accuracy"]
            target[f"{task}_macro_f1"] = report[task][name]["macro_f1"]
    for target in (result.metrics, baseline):
        target["macro_f1"] = m.mean(target.get(f"{t}_macro_f1") for t in TASKS)
    result.metrics["n"] = float(report["n_test"])
    result.baselines["tfidf_logreg"] = baseline
    predictions = (report.get("issue") or {}).get("predictions")
    if predictions:
        result.plots["confusion"] = _confusion(predictions["truth"], predictions["model"])
        result.plots["baseline_confusion"] = _confusion(predictions["truth"], predictions["baseline"])
        truth, ours = predictions["truth"], predictions["model"]
        result.by_category = {issue: {"n": float(truth.count(issue)),
                                      "pass_rate": m.rate(p == t for t, p in zip(truth, ours) if t == issue)}
                              for issue in sorted(set(truth))}
    return result


def _shared_cache_embedder(system: System) -> Any:
    """Embeddings cached in the default data dir, not the run's temporary one: embedding the
    narratives takes minutes on two cores, and an embedding depends only on the model and text."""
    from assistant.config import Settings
    from assistant.knowledge.embeddings import load_embedder
    from assistant.routing.textclf import CachedEmbedder

    cache = Settings().data_dir / "cache" / "embeddings"
    return CachedEmbedder(load_embedder(system.settings), system.settings.embedding_model, cache)


def _confusion(truth: list[str], predicted: list[str]) -> dict[str, Any]:
    labels, matrix = m.confusion_matrix(truth, predicted)
    return {"labels": labels, "matrix": matrix}
