"""Dataset spec (YAML): the data file, its target, the features, how an applicant's answers map
onto the data's columns, and the credit policy. The same training code reads any spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

SPECS_DIR = Path(__file__).resolve().parent / "specs"


class Band(BaseModel):
    below: float | None = None  # upper edge in data units; None for the last band
    level: str


class Derive(BaseModel):
    """A feature computed from other columns (kept to a few readable operations)."""

    op: Literal["max", "sum", "count_above", "count_equal", "ratio"]
    of: list[str] = Field(default_factory=list)
    value: float = 0.0
    numerator: "Derive | None" = None
    denominator: "Derive | None" = None

    def columns(self) -> list[str]:
        if self.op == "ratio":
            return [*self.numerator.columns(), *self.denominator.columns()]  # type: ignore[union-attr]
        return list(self.of)

    def apply(self, frame: pd.DataFrame | dict[str, np.ndarray]) -> np.ndarray:
        if self.op == "ratio":
            num = self.numerator.apply(frame)  # type: ignore[union-attr]
            den = self.denominator.apply(frame)  # type: ignore[union-attr]
            return num / np.maximum(den, 1.0)  # bills can be 0 or negative
        block = np.column_stack([np.asarray(frame[c], dtype=float) for c in self.of])
        if self.op == "max":
            return block.max(axis=1)
        if self.op == "sum":
            return block.sum(axis=1)
        if self.op == "count_above":
            return (block > self.value).sum(axis=1).astype(float)
        return (block == self.value).sum(axis=1).astype(float)


class FeatureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str
    source: Literal["chat", "profile", "derived"]
    kind: Literal["numerical", "categorical", "banded"]
    field: str | None = None  # applicant field name; defaults to the column
    label: str
    unit: str = ""
    # applicant value -> data value
    values: dict[str, Any] | None = None  # categorical: applicant code -> data level
    bands: list[Band] | None = None  # banded: number -> data level
    scale: float = 1.0
    offset: float = 0.0
    clip: tuple[float, float] | None = None
    integer: bool = False
    min: float | None = None  # applicant bounds (validation)
    max: float | None = None
    derive: Derive | None = None
    role: Literal["amount", "term"] | None = None  # the loan's amount / term, checked against the product
    # counterfactuals
    controllable: bool = False
    choices_from_product: str | None = None  # e.g. term_months: candidates are the product's terms
    step: float = 1.0  # suggested values are multiples of this (e.g. CNY 100)
    change: str | None = None
    # training
    binning: dict[str, Any] = Field(default_factory=dict)
    # reason texts
    reason: str | None = None
    reason_high: str | None = None
    reason_low: str | None = None

    @model_validator(mode="after")
    def _check(self) -> "FeatureSpec":
        if self.kind == "banded" and not self.bands:
            raise ValueError(f"{self.column}: a banded feature needs bands")
        if self.source == "derived" and self.derive is None:
            raise ValueError(f"{self.column}: a derived feature needs derive")
        if not (self.reason or self.reason_high):
            raise ValueError(f"{self.column}: give a reason text")
        return self

    @property
    def name(self) -> str:
        return self.field or self.column

    @property
    def is_categorical_in_data(self) -> bool:
        return self.kind in ("categorical", "banded")

    def reason_text(self, direction: str) -> str:
        if direction == "high":
            return self.reason_high or self.reason or ""
        if direction == "low":
            return self.reason_low or self.reason or ""
        return self.reason or self.reason_high or ""


class PolicyField(BaseModel):
    kind: Literal["integer", "number", "bool"]
    min: float | None = None
    max: float | None = None
    label: str
    unit: str = ""


POLICY_RULES = ("consent", "min_age", "max_age", "income", "affordability")


class Policy(BaseModel):
    income_multiple: float = Field(12, gt=0)
    fields: dict[str, PolicyField]
    reasons: dict[str, str]

    @model_validator(mode="after")
    def _complete(self) -> "Policy":
        missing = [k for k in ("age", "monthly_income", "consent") if k not in self.fields]
        missing += [k for k in POLICY_RULES if k not in self.reasons]
        if missing:
            raise ValueError(f"policy: missing {', '.join(missing)}")
        return self


class Scaling(BaseModel):
    points: float = 600
    odds: float = 20
    pdo: float = 20

    @property
    def factor(self) -> float:
        return self.pdo / float(np.log(2))

    @property
    def offset(self) -> float:
        return self.points - self.factor * float(np.log(self.odds))


class DecisionRule(BaseModel):
    approve_max_pd: float = Field(gt=0, lt=1)
    decline_min_pd: float = Field(gt=0, lt=1)


class Pricing(BaseModel):
    pd_bands: list[float]
    limit_share: list[float]

    @model_validator(mode="after")
    def _same_length(self) -> "Pricing":
        if len(self.pd_bands) != len(self.limit_share):
            raise ValueError("pricing: pd_bands and limit_share need the same length")
        return self


class Currency(BaseModel):
    data: str
    applicant: str
    data_per_applicant_unit: float = 1.0


class FairnessGroup(BaseModel):
    name: str
    column: str
    bins: list[float] | None = None
    labels: list[str] | None = None
    map: dict[Any, str] | None = None


class Binning(BaseModel):
    min_iv: float = 0.02
    max_n_prebins: int = 20
    min_prebin_size: float = 0.05


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    title: str
    file: str
    target: str
    bad_value: Any
    seed: int = 42
    test_size: float = Field(0.25, gt=0, lt=1)
    currency: Currency
    scaling: Scaling = Scaling()
    binning: Binning = Binning()
    special_codes: dict[str, list[float]] | None = None
    policy: Policy
    decision: DecisionRule
    pricing: Pricing
    excluded: dict[str, str] = Field(default_factory=dict)
    fairness: list[FairnessGroup] = Field(default_factory=list)
    reason_missing: str = "We have no record of {label}"
    features: list[FeatureSpec]

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.features]

    def feature(self, column: str) -> FeatureSpec:
        for f in self.features:
            if f.column == column:
                return f
        raise KeyError(column)

    def raw_columns(self) -> list[str]:
        """Columns a data file must hold: the non-derived features and those derivations read."""
        needed = [f.column for f in self.features if f.source != "derived"]
        for f in self.features:
            if f.derive is not None:
                needed += [c for c in f.derive.columns() if c not in needed]
        return needed

    def data_path(self, data_dir: Path) -> Path:
        path = Path(self.file)
        return path if path.is_absolute() else Path(data_dir) / path


def load_spec(name_or_path: str | Path) -> DatasetSpec:
    """'german' -> the shipped spec; anything else is a path to a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SPECS_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SPECS_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"no dataset spec {name_or_path!r} (shipped: {known})")
    return DatasetSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def read_frame(spec: DatasetSpec, path: Path) -> pd.DataFrame:
    """Read a data file in the training data's format and add the derived features."""
    frame = pd.read_csv(path)
    missing = [c for c in spec.raw_columns() if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns for spec {spec.name!r}: {', '.join(missing)}")
    return add_derived(spec, frame)


def add_derived(spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    derived = {f.column: f.derive.apply(frame) for f in spec.features if f.derive is not None}
    return frame.assign(**derived) if derived else frame


def target_of(spec: DatasetSpec, frame: pd.DataFrame) -> np.ndarray:
    """1 = bad (the event the scorecard predicts), 0 = good."""
    if spec.target not in frame.columns:
        raise ValueError(f"the data has no target column {spec.target!r}")
    column = frame[spec.target]
    bad = spec.bad_value
    if pd.api.types.is_numeric_dtype(column) and not isinstance(bad, str):
        return (column.astype(float) == float(bad)).to_numpy(dtype=int)
    return (column.astype(str) == str(bad)).to_numpy(dtype=int)
