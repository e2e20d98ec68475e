"""Scoring: the committed scorecard (assistant/scoring/model/) on held-out rows, beside a
logistic regression and gradient boosting fitted in the same run on the same training split.

Default rows: the held-out split of the scorecard's training file (same seed as training).
`--data scoring=PATH`: every row of a file in the training data's format (e.g. a test set
kept elsewhere); the baselines are still fitted on the training split."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from evals import metrics as m
from evals.results import SuiteResult
from evals.suites.base import SHARED_DATA, SuiteOptions, SuiteUnavailable
from evals.system import System

NAME = "scoring"
MAX_CURVE_POINTS = 400

DEFINITIONS = {
    "auc": "Area under the ROC curve of the scorecard's probability of default on the evaluation rows "
           "(probability that a random bad applicant scores riskier than a random good one).",
    "gini": "2 × AUC − 1.",
    "ks": "Kolmogorov–Smirnov: the largest gap between the bad and good applicants' cumulative score distributions.",
    "bad_rate": "Share of bad outcomes among the evaluation rows.",
    "n": "Evaluation rows.",
}


def run(system: System, options: SuiteOptions) -> SuiteResult:
    if importlib.util.find_spec("assistant.scoring.model") is None:
        raise SuiteUnavailable("assistant.scoring is not built yet")
    from assistant.scoring.evaluate import baseline_metrics, fit_baselines  # noqa: F401 (checked here)
    from assistant.scoring.model import ScorecardModel
    from assistant.scoring.spec import read_frame, target_of
    from assistant.scoring.train import split_data

    try:
        model = ScorecardModel.load(system.settings.scorecard_dir)
    except FileNotFoundError as exc:
        raise SuiteUnavailable(str(exc)) from exc
    spec = model.spec
    train_file = spec.data_path(SHARED_DATA)
    if not train_file.exists():
        raise SuiteUnavailable(f"training data {train_file} not found")
    split = split_data(spec, read_frame(spec, train_file))
    if options.data:
        frame = read_frame(spec, Path(options.data))
        x, y, where = frame, target_of(spec, frame), f"all rows of {options.data}"
    else:
        x, y, where = split.test, split.y_test, f"held-out split of {train_file.name} (seed {spec.seed})"
    y = [int(v) for v in y]
    p_bad = [float(v) for v in model.pd_of(model.score_frame(x))]
    points = [float(v) for v in model.score_frame(x)]
    result = SuiteResult(suite=NAME, definitions=dict(DEFINITIONS), note=f"{spec.name} scorecard {model.version}; {where}")
    result.metrics = discrimination(y, p_bad)
    curves = {"scorecard": _curve(y, p_bad)}
    fitted = fit_baselines(spec, split.train[spec.columns], split.y_train)
    for name, estimator in fitted.items():
        from assistant.scoring.evaluate import _as_strings, _kinds  # same preprocessing as their fit

        cats, _ = _kinds(spec)
        probs = [float(v) for v in estimator.predict_proba(_as_strings(x[spec.columns], cats))[:, 1]]
        result.baselines[name.replace(" ", "_")] = discrimination(y, probs)
        curves[name] = _curve(y, probs)
    result.plots = {
        "roc": curves,
        "score_dist": {"good (repaid)": [s for s, t in zip(points, y) if not t],
                       "bad (defaulted)": [s for s, t in zip(points, y) if t]},
    }
    return result


def discrimination(y: list[int], p_bad: list[float]) -> dict[str, float | None]:
    auc = m.roc_auc(y, p_bad)
    return {"auc": auc, "gini": None if auc is None else 2 * auc - 1, "ks": m.ks_statistic(y, p_bad),
            "bad_rate": m.mean(y), "n": float(len(y))}


def _curve(y: list[int], scores: list[float]) -> dict[str, Any]:
    fpr, tpr = m.roc_curve(y, scores)
    step = max(1, len(fpr) // MAX_CURVE_POINTS)
    keep = list(range(0, len(fpr), step)) + ([len(fpr) - 1] if (len(fpr) - 1) % step else [])
    return {"fpr": [fpr[i] for i in keep], "tpr": [tpr[i] for i in keep], "auc": m.roc_auc(y, scores)}
