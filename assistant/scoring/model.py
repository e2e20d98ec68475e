"""The scorecard as a points table: one row per (variable, bin) with its points. Scoring is a
table look-up and a sum, so the file a risk team reviews is exactly what runs in production.

`scorecard.json` holds the table plus what scoring needs (spec, scaling, cut-offs, training
distributions for drift); `scorecard.csv` is the same table for people and spreadsheets."""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd

from assistant.scoring.spec import DatasetSpec

FORMAT = "meadow-scorecard/1"
JSON_NAME = "scorecard.json"
CSV_NAME = "scorecard.csv"
TABLE_COLUMNS = [
    "variable", "kind", "bin_id", "bin", "row", "lower", "upper", "categories", "codes",
    "count", "event_rate", "woe", "points",
]


@dataclass
class BinRow:
    row: Literal["bin", "special", "missing"]
    label: str
    points: float
    count: int = 0
    event_rate: float = 0.0
    woe: float = 0.0
    lower: float | None = None  # numerical bins: [lower, upper)
    upper: float | None = None
    categories: list[Any] | None = None  # categorical bins
    codes: list[float] | None = None  # special bins


@dataclass
class Variable:
    column: str
    kind: Literal["numerical", "categorical"]
    bins: list[BinRow]
    iv: float = 0.0
    coefficient: float = 0.0

    def __post_init__(self) -> None:
        regular = [i for i, b in enumerate(self.bins) if b.row == "bin"]
        self.points = np.array([b.points for b in self.bins], dtype=float)
        self.missing_index = next(i for i, b in enumerate(self.bins) if b.row == "missing")
        self.regular = regular
        self.max_points = float(max(self.bins[i].points for i in range(len(self.bins)) if self.bins[i].row != "missing"))
        self.best_bin = max(regular, key=lambda i: self.bins[i].points)
        self.specials = {c: i for i, b in enumerate(self.bins) if b.row == "special" for c in (b.codes or [])}
        if self.kind == "numerical":
            self.splits = np.array([self.bins[i].lower for i in regular[1:]], dtype=float)
            self._split_list = self.splits.tolist()
        else:
            self.categories = {}
            for i in regular:
                for c in self.bins[i].categories or []:
                    self.categories[c] = i
                    self.categories[str(c)] = i

    def index_of(self, value: Any) -> int:
        """Bin of one value (the single-applicant path: no numpy overhead)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return self.missing_index
        if self.kind == "categorical":
            return self.categories.get(value, self.missing_index)
        if value in self.specials:
            return self.specials[value]
        return self.regular[bisect.bisect_right(self._split_list, value)]

    def indices(self, values: Any) -> np.ndarray:
        """Bins of a column (the batch path)."""
        if self.kind == "categorical":
            get, miss = self.categories.get, self.missing_index
            return np.fromiter((get(v, miss) if v is not None else miss for v in values), dtype=np.int64,
                               count=len(values))
        x = np.asarray(values, dtype=float)
        out = np.asarray(self.regular, dtype=np.int64)[np.searchsorted(self.splits, x, side="right")]
        for code, i in self.specials.items():
            out[x == code] = i
        out[np.isnan(x)] = self.missing_index
        return out

    def direction(self, index: int) -> str:
        """Whether the best bin lies above ('low': the value is too low) or below ('high')."""
        if self.kind != "numerical" or self.bins[index].row != "bin":
            return "other"
        return "low" if self.regular.index(self.best_bin) > self.regular.index(index) else "high"


@dataclass
class ScorecardModel:
    spec: DatasetSpec
    variables: list[Variable]
    training: dict[str, Any] = field(default_factory=dict)  # distributions, for drift
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        scaling = self.spec.scaling
        self.factor, self.offset = scaling.factor, scaling.offset
        self.approve_score = self.score_of_pd(self.spec.decision.approve_max_pd)
        self.decline_score = self.score_of_pd(self.spec.decision.decline_min_pd)
        self.version = f"{self.spec.name}-{hashlib.sha256(self.points_csv().encode()).hexdigest()[:10]}"
        self.by_column = {v.column: v for v in self.variables}

    # --- score <-> probability of default ------------------------------------------------
    def pd_of(self, score: np.ndarray | float) -> np.ndarray | float:
        return 1.0 / (1.0 + np.exp((np.asarray(score) - self.offset) / self.factor))

    def score_of_pd(self, pd_: float) -> float:
        return self.offset + self.factor * math.log((1 - pd_) / pd_)

    # --- scoring --------------------------------------------------------------------------
    def bin_indices(self, columns: Mapping[str, Any]) -> np.ndarray:
        """(rows, variables) bin index matrix from data-space columns."""
        return np.column_stack([v.indices(_column(columns, v.column)) for v in self.variables])

    def points_of(self, indices: np.ndarray) -> np.ndarray:
        return np.column_stack([v.points[indices[:, j]] for j, v in enumerate(self.variables)])

    def score_frame(self, frame: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        return self.points_of(self.bin_indices(frame)).sum(axis=1)

    def row_indices(self, row: Mapping[str, Any]) -> list[int]:
        return [v.index_of(row.get(v.column)) for v in self.variables]

    def row_points(self, indices: list[int]) -> list[float]:
        return [v.bins[i].points for v, i in zip(self.variables, indices)]

    @property
    def max_score(self) -> float:
        return sum(v.max_points for v in self.variables)

    # --- tables and files -------------------------------------------------------------------
    def points_table(self) -> pd.DataFrame:
        rows = []
        for v in self.variables:
            for i, b in enumerate(v.bins):
                rows.append({
                    "variable": v.column, "kind": v.kind, "bin_id": i, "bin": b.label, "row": b.row,
                    "lower": b.lower, "upper": b.upper,
                    "categories": json.dumps(b.categories, ensure_ascii=False) if b.categories is not None else "",
                    "codes": json.dumps(b.codes) if b.codes is not None else "",
                    "count": b.count, "event_rate": round(b.event_rate, 6), "woe": round(b.woe, 6),
                    "points": b.points,
                })
        return pd.DataFrame(rows, columns=TABLE_COLUMNS)

    def points_csv(self) -> str:
        buffer = io.StringIO()
        self.points_table().to_csv(buffer, index=False, lineterminator="\n")
        return buffer.getvalue()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.spec.name,
            "version": self.version,
            "scaling": {**self.spec.scaling.model_dump(), "factor": self.factor, "offset": self.offset},
            "cutoffs": {"approve_min_score": self.approve_score, "decline_below_score": self.decline_score},
            "spec": self.spec.model_dump(mode="json"),
            "variables": [
                {"column": v.column, "kind": v.kind, "iv": v.iv, "coefficient": v.coefficient,
                 "bins": [asdict(b) for b in v.bins]}
                for v in self.variables
            ],
            "training": self.training,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ScorecardModel":
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file (format={data.get('format')!r})")
        variables = [
            Variable(v["column"], v["kind"], [BinRow(**b) for b in v["bins"]], v.get("iv", 0.0),
                     v.get("coefficient", 0.0))
            for v in data["variables"]
        ]
        return cls(DatasetSpec.model_validate(data["spec"]), variables, data.get("training", {}),
                   data.get("metrics", {}))

    @classmethod
    def from_points_table(cls, table: pd.DataFrame, spec: DatasetSpec) -> "ScorecardModel":
        """Rebuild from the CSV table alone (the round trip a reviewer can do by hand)."""
        variables = []
        for column, rows in table.groupby("variable", sort=False):
            bins = [
                BinRow(
                    row=r["row"], label=str(r["bin"]), points=float(r["points"]), count=int(r["count"]),
                    event_rate=float(r["event_rate"]), woe=float(r["woe"]),
                    lower=_float_or_none(r["lower"]), upper=_float_or_none(r["upper"]),
                    categories=json.loads(r["categories"]) if isinstance(r["categories"], str) and r["categories"] else None,
                    codes=json.loads(r["codes"]) if isinstance(r["codes"], str) and r["codes"] else None,
                )
                for _, r in rows.sort_values("bin_id").iterrows()
            ]
            variables.append(Variable(str(column), rows["kind"].iloc[0], bins))
        return cls(spec, variables)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / JSON_NAME).write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
        (directory / CSV_NAME).write_text(self.points_csv(), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "ScorecardModel":
        path = Path(directory) / JSON_NAME
        if not path.exists():
            raise FileNotFoundError(f"no scorecard at {path}; train one with `assistant scoring train`")
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _column(columns: Mapping[str, Any], name: str) -> Any:
    if isinstance(columns, pd.DataFrame):
        series = columns[name]
        return series.to_numpy(dtype=object) if series.dtype == object or str(series.dtype) in ("str", "string") \
            else series.to_numpy()
    return columns[name]


def _float_or_none(value: Any) -> float | None:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)
