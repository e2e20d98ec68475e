"""Approval rate by group (age band, sex) and the disparate-impact ratio (four-fifths rule).
Decisions here are the score's alone (the data has no income or consent to run the policy on)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from assistant.scoring.model import ScorecardModel
from assistant.scoring.spec import FairnessGroup

FOUR_FIFTHS = 0.8
MIN_GROUP = 30  # smaller groups are shown but left out of the ratio


def group_labels(group: FairnessGroup, frame: pd.DataFrame) -> pd.Series:
    column = frame[group.column]
    if group.bins:
        return pd.cut(column, bins=group.bins, labels=group.labels, right=False).astype(str)
    mapping = {str(k): v for k, v in (group.map or {}).items()}
    return column.astype(str).map(mapping).fillna("other")


def approval_by_group(model: ScorecardModel, frame: pd.DataFrame) -> list[dict[str, Any]]:
    scores = model.score_frame(frame)
    approved = scores >= model.approve_score
    declined = scores < model.decline_score
    report = []
    for group in model.spec.fairness:
        if group.column not in frame.columns:
            continue
        labels = group_labels(group, frame)
        rows = []
        for label in (group.labels or sorted(labels.unique())):
            mask = (labels == label).to_numpy()
            if mask.sum() == 0:
                continue
            rows.append({"group": label, "n": int(mask.sum()), "approve_rate": round(float(approved[mask].mean()), 3),
                         "decline_rate": round(float(declined[mask].mean()), 3)})
        rates = [r["approve_rate"] for r in rows if r["n"] >= MIN_GROUP]
        ratio = round(min(rates) / max(rates), 3) if rates and max(rates) > 0 else None
        report.append({"name": group.name, "column": group.column, "rows": rows, "disparate_impact": ratio,
                       "passes_four_fifths": ratio is not None and ratio >= FOUR_FIFTHS})
    return report


def decision_mix(model: ScorecardModel, frame: pd.DataFrame) -> dict[str, float]:
    scores = model.score_frame(frame)
    approve = float(np.mean(scores >= model.approve_score))
    decline = float(np.mean(scores < model.decline_score))
    return {"approve": round(approve, 3), "refer": round(1 - approve - decline, 3), "decline": round(decline, 3)}
