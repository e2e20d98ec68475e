"""Train a scorecard with optbinning (optimal binning + logistic regression on WoE, points
scaled by PDO/odds) and turn it into the points table that scoring reads."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from assistant.scoring.model import BinRow, ScorecardModel, Variable
from assistant.scoring.spec import DatasetSpec, read_frame, target_of

log = logging.getLogger(__name__)


@dataclass
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray


@dataclass
class TrainResult:
    model: ScorecardModel
    split: Split
    frame: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


def split_data(spec: DatasetSpec, frame: pd.DataFrame) -> Split:
    """Stratified, seeded split: the same rows every run (and in `evaluate`)."""
    y = target_of(spec, frame)
    train, test, y_train, y_test = train_test_split(
        frame, y, test_size=spec.test_size, random_state=spec.seed, stratify=y)
    return Split(train, test, y_train, y_test)


def fit_optbinning(spec: DatasetSpec, x: pd.DataFrame, y: np.ndarray):
    from optbinning import BinningProcess, Scorecard  # heavy import, only when training

    columns = spec.columns
    process = BinningProcess(
        columns,
        categorical_variables=[f.column for f in spec.features if f.is_categorical_in_data],
        special_codes=spec.special_codes,
        max_n_prebins=spec.binning.max_n_prebins,
        min_prebin_size=spec.binning.min_prebin_size,
        selection_criteria={"iv": {"min": spec.binning.min_iv}},
        binning_fit_params={f.column: f.binning for f in spec.features if f.binning} or None,
    )
    scorecard = Scorecard(
        process, LogisticRegression(max_iter=2000),
        scaling_method="pdo_odds",
        scaling_method_params={"pdo": spec.scaling.pdo, "odds": spec.scaling.odds,
                               "scorecard_points": spec.scaling.points},
    )
    # "empirical": special values (HELOC's -7/-8/-9) get their own observed WoE, not 0
    scorecard.fit(x[columns], y, metric_special="empirical", metric_missing="empirical")
    return scorecard


def to_model(scorecard, spec: DatasetSpec) -> ScorecardModel:
    table = scorecard.table(style="detailed")
    process = scorecard.binning_process_
    variables = []
    for name in process.get_support(names=True):
        binned = process.get_binned_variable(name)
        rows = table[table["Variable"] == name].reset_index(drop=True)
        kind = "categorical" if binned.dtype == "categorical" else "numerical"
        n_regular = len(binned.splits) + (1 if kind == "numerical" else 0)
        bins = [_bin_row(spec, kind, binned.splits, i, r, n_regular, len(rows)) for i, r in rows.iterrows()]
        bins = [b for b in bins if b.row != "special" or b.codes]  # no special codes: no special row
        variables.append(Variable(str(name), kind, bins, iv=round(float(rows["IV"].sum()), 4),
                                  coefficient=round(float(rows["Coefficient"].iloc[0]), 6)))
    return ScorecardModel(spec, variables)


def _bin_row(spec: DatasetSpec, kind: str, splits, i: int, r: pd.Series, n_regular: int, n_rows: int) -> BinRow:
    common = dict(points=round(float(r["Points"]), 4), count=int(r["Count"]),
                  event_rate=float(r["Event rate"]), woe=float(r["WoE"]))
    if i == n_rows - 1:
        return BinRow(row="missing", label="Missing", **common)
    if i >= n_regular:
        label = str(r["Bin"])
        codes = (spec.special_codes or {}).get(label, [])
        return BinRow(row="special", label=label, codes=[float(c) for c in codes], **common)
    if kind == "categorical":
        categories = [_plain(c) for c in list(splits[i])]
        return BinRow(row="bin", label=", ".join(map(str, categories)), categories=categories, **common)
    lower = float(splits[i - 1]) if i > 0 else None
    upper = float(splits[i]) if i < len(splits) else None
    return BinRow(row="bin", label=_interval(lower, upper), lower=lower, upper=upper, **common)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _interval(lower: float | None, upper: float | None) -> str:
    if lower is None:
        return f"< {upper:g}"
    if upper is None:
        return f">= {lower:g}"
    return f"{lower:g} to < {upper:g}"


def train(spec: DatasetSpec, data_path: Path) -> TrainResult:
    """Fit on the training part of a seeded split; everything reported is on the held-out part."""
    frame = read_frame(spec, data_path)
    split = split_data(spec, frame)
    scorecard = fit_optbinning(spec, split.train, split.y_train)
    model = to_model(scorecard, spec)
    _check_same_scores(model, scorecard, split.test)
    model.training = training_distribution(model, split.train, data_path, len(split.test))
    return TrainResult(model, split, frame)


def _check_same_scores(model: ScorecardModel, scorecard, frame: pd.DataFrame) -> None:
    """The points table must reproduce optbinning's own scores (up to the 4-decimal rounding)."""
    ours = model.score_frame(frame)
    theirs = scorecard.score(frame[model.spec.columns])
    gap = float(np.max(np.abs(ours - theirs)))
    if gap > 0.01:
        raise RuntimeError(f"points table disagrees with optbinning by {gap:.4f} points")


def training_distribution(model: ScorecardModel, train: pd.DataFrame, data_path: Path, test_rows: int) -> dict:
    scores = model.score_frame(train)
    edges = np.unique(np.quantile(scores, np.linspace(0.1, 0.9, 9)).round(4))
    counts = np.bincount(np.searchsorted(edges, scores, side="right"), minlength=len(edges) + 1)
    return {
        "data_file": Path(data_path).name,
        "data_sha256": hashlib.sha256(Path(data_path).read_bytes()).hexdigest(),
        "rows": int(len(train)),
        "test_rows": int(test_rows),
        "score_edges": edges.tolist(),
        "score_counts": counts.tolist(),
    }
