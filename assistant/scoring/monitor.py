"""Drift: population stability (PSI) of each feature's bins and of the score, new data against
the training data the scorecard keeps in its JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from assistant.scoring.applicant import data_columns, identity_maps, used_features
from assistant.scoring.metrics import psi, psi_status
from assistant.scoring.model import ScorecardModel
from assistant.scoring.spec import add_derived


def columns_of(model: ScorecardModel, frame: pd.DataFrame) -> Mapping[str, Any]:
    """Data-space columns from a file in either format: the training data's columns, or the
    applicant fields (amount, term_months, ...) that the API and `scoring batch` take."""
    spec = model.spec
    if all(c in frame.columns for c in spec.raw_columns()):
        return add_derived(spec, frame)
    fields = [f.name for f in used_features(model)]
    if any(f in frame.columns for f in fields):
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        return data_columns(model, records, identity_maps(model))
    raise ValueError(f"the file has neither the training columns of {spec.name!r} nor its applicant fields "
                     f"({', '.join(fields)})")


def monitor(model: ScorecardModel, frame: pd.DataFrame) -> dict[str, Any]:
    columns = columns_of(model, frame)
    indices = model.bin_indices(columns)
    features = []
    for j, v in enumerate(model.variables):
        expected = np.array([b.count for b in v.bins], dtype=float)
        actual = np.bincount(indices[:, j], minlength=len(v.bins)).astype(float)
        value = psi(expected, actual)
        features.append({"feature": v.column, "psi": round(value, 4), "status": psi_status(value),
                         "missing_share": round(float(actual[v.missing_index] / max(actual.sum(), 1)), 4)})
    scores = model.points_of(indices).sum(axis=1)
    edges = np.asarray(model.training["score_edges"])
    actual = np.bincount(np.searchsorted(edges, scores, side="right"), minlength=len(edges) + 1)
    score_psi = psi(np.asarray(model.training["score_counts"]), actual)
    return {
        "model_version": model.version, "rows": int(len(scores)),
        "score": {"psi": round(score_psi, 4), "status": psi_status(score_psi),
                  "mean": round(float(scores.mean()), 1)},
        "features": sorted(features, key=lambda r: -r["psi"]),
    }


def monitor_file(model: ScorecardModel, path: Path) -> dict[str, Any]:
    return {"file": str(path), **monitor(model, pd.read_csv(path))}
