"""Discrimination (AUC, Gini, KS), calibration and population stability."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def discrimination(y_bad: np.ndarray, p_bad: np.ndarray) -> dict[str, float]:
    """AUC, Gini = 2*AUC - 1 and KS = max |TPR - FPR|, with `p_bad` rising with risk."""
    auc = float(roc_auc_score(y_bad, p_bad))
    fpr, tpr, _ = roc_curve(y_bad, p_bad)
    return {"auc": round(auc, 4), "gini": round(2 * auc - 1, 4), "ks": round(float(np.max(tpr - fpr)), 4),
            "n": int(len(y_bad)), "bad_rate": round(float(np.mean(y_bad)), 4)}


def calibration_table(y_bad: np.ndarray, p_bad: np.ndarray, groups: int = 10) -> list[dict[str, float]]:
    """Mean predicted vs observed bad rate in equal-size groups of predicted risk."""
    order = np.argsort(p_bad, kind="stable")
    rows = []
    for chunk in np.array_split(order, groups):
        if len(chunk):
            rows.append({"predicted": round(float(p_bad[chunk].mean()), 4),
                         "observed": round(float(y_bad[chunk].mean()), 4), "n": int(len(chunk))})
    return rows


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index between two distributions over the same bins.
    Rule of thumb: < 0.10 stable, 0.10-0.25 watch, > 0.25 shifted."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    e = np.clip(e / max(e.sum(), 1), eps, None)
    a = np.clip(a / max(a.sum(), 1), eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_status(value: float) -> str:
    return "stable" if value < 0.10 else "watch" if value < 0.25 else "shifted"
