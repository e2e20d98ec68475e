"""Held-out comparison: the scorecard beside a plain logistic regression (one-hot / standardised)
and gradient boosting (HistGradientBoosting), all fitted on the same training split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from assistant.scoring.metrics import discrimination
from assistant.scoring.model import ScorecardModel
from assistant.scoring.spec import DatasetSpec, load_spec, read_frame, target_of
from assistant.scoring.train import TrainResult, train

SPECS = ("german", "heloc", "taiwan")
# One OpenMP thread: on a shared machine gradient boosting's threads contend (10x slower), and on
# these data sizes one thread takes about a second.
THREADS = 1
TOLERANCE = 0.01  # the scorecard should be within this AUC of the better baseline


def _kinds(spec: DatasetSpec) -> tuple[list[str], list[str]]:
    cats = [f.column for f in spec.features if f.is_categorical_in_data]
    return cats, [c for c in spec.columns if c not in cats]


def fit_baselines(spec: DatasetSpec, x: pd.DataFrame, y: np.ndarray) -> dict[str, Any]:
    cats, nums = _kinds(spec)
    x = _as_strings(x, cats)
    logistic = make_pipeline(
        ColumnTransformer([
            ("cat", OneHotEncoder(handle_unknown="ignore"), cats),
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums),
        ]),
        LogisticRegression(max_iter=3000),
    )
    boosting = make_pipeline(
        ColumnTransformer([
            ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan), cats),
            ("num", "passthrough", nums),
        ]),
        HistGradientBoostingClassifier(categorical_features=list(range(len(cats))), random_state=spec.seed),
    )
    with threadpool_limits(limits=THREADS, user_api="openmp"):
        return {"logistic regression": logistic.fit(x, y), "gradient boosting": boosting.fit(x, y)}


def _as_strings(x: pd.DataFrame, cats: list[str]) -> pd.DataFrame:
    return x.assign(**{c: x[c].astype(str) for c in cats}) if cats else x


def baseline_metrics(spec: DatasetSpec, fitted: dict[str, Any], x: pd.DataFrame, y: np.ndarray) -> dict[str, dict]:
    cats, _ = _kinds(spec)
    x = _as_strings(x, cats)
    with threadpool_limits(limits=THREADS, user_api="openmp"):
        return {name: discrimination(y, model.predict_proba(x)[:, 1]) for name, model in fitted.items()}


def scorecard_metrics(model: ScorecardModel, x: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    return discrimination(y, model.pd_of(model.score_frame(x)))


def compare(spec: DatasetSpec, data_path: Path, extra: Path | None = None,
            result: TrainResult | None = None) -> dict[str, Any]:
    """Train the three models on the spec's training split; report each on the held-out split
    (and on `extra`, a file in the same format, such as a test set kept elsewhere)."""
    extra_part = None
    if extra is not None:  # read it first: a bad file fails before any training
        frame = read_frame(spec, extra)
        extra_part = (Path(extra).name, (frame, target_of(spec, frame)))
    result = result or train(spec, data_path)
    split = result.split
    fitted = fit_baselines(spec, split.train[spec.columns], split.y_train)
    parts = {"held-out": (split.test, split.y_test)}
    if extra_part is not None:
        parts[extra_part[0]] = extra_part[1]
    rows = []
    for part, (x, y) in parts.items():
        found = {"scorecard": scorecard_metrics(result.model, x, y),
                 **baseline_metrics(spec, fitted, x[spec.columns], y)}
        best = max(found["logistic regression"]["auc"], found["gradient boosting"]["auc"])
        for name, m in found.items():
            rows.append({"dataset": spec.name, "split": part, "model": name, **m,
                         **({"gap_to_best": round(m["auc"] - best, 4)} if name == "scorecard" else {})})
    return {"dataset": spec.name, "model_version": result.model.version, "rows": rows,
            "within_tolerance": all(r["gap_to_best"] >= -TOLERANCE for r in rows if r["model"] == "scorecard")}


def score_file(model: ScorecardModel, path: Path) -> dict[str, Any]:
    """Score a file in the training data's format with a committed scorecard (no training)."""
    frame = read_frame(model.spec, path)
    y = target_of(model.spec, frame)
    return {"dataset": model.spec.name, "model_version": model.version, "file": str(path),
            "rows": [{"dataset": model.spec.name, "split": Path(path).name, "model": "scorecard (committed)",
                      **scorecard_metrics(model, frame, y)}]}


def evaluate_all(data_dir: Path, names: tuple[str, ...] = SPECS) -> list[dict[str, Any]]:
    return [compare(spec, spec.data_path(data_dir)) for spec in (load_spec(n) for n in names)]
