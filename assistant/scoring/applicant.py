"""The applicant: the fields a chat form or an API call supplies, in the customer's own units,
their validation, and how each maps onto the data's columns. All of it is derived from the
scorecard's spec, so the form, the API schema and the tool's args schema cannot disagree."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from assistant.scoring.model import ScorecardModel
from assistant.scoring.spec import FeatureSpec

FieldKind = Literal["number", "integer", "choice", "bool"]


class FieldInfo(BaseModel):
    """What a form or a client needs to know about one applicant field."""

    name: str
    source: Literal["product", "chat", "policy", "profile"]
    kind: FieldKind
    label: str
    unit: str = ""
    required: bool = True
    default: Any = None
    choices: list[str] | None = None
    min: float | None = None
    max: float | None = None
    controllable: bool = False


class ScorecardInfo(BaseModel):
    name: str
    version: str
    currency: str
    fields: list[FieldInfo]

    def field(self, name: str) -> FieldInfo:
        return next(f for f in self.fields if f.name == name)

    @property
    def asked(self) -> list[FieldInfo]:
        """Fields a chat asks for, in order (product is inferred, profile fields come from records)."""
        return [f for f in self.fields if f.source in ("chat", "policy")]


class FieldError(BaseModel):
    field: str
    message: str


class ApplicantError(ValueError):
    """Invalid applicant: one entry per bad field, never a score."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("invalid applicant: " + "; ".join(f"{e.field}: {e.message}" for e in errors))

    def to_dict(self) -> dict[str, Any]:
        return {"error": "invalid applicant", "fields": [e.model_dump() for e in self.errors]}


def used_features(model: ScorecardModel) -> list[FeatureSpec]:
    """Spec features the scorecard reads, directly or through a derived feature, in spec order."""
    spec = model.spec
    needed = set(model.by_column)
    for column in list(needed):
        feature = spec.feature(column)
        if feature.derive is not None:
            needed |= set(feature.derive.columns())
    return [f for f in spec.features if f.column in needed and f.source != "derived"]


def scorecard_info(model: ScorecardModel, products: list[str], default_product: str) -> ScorecardInfo:
    fields = [FieldInfo(name="product", source="product", kind="choice", label="the product",
                        required=False, default=default_product, choices=products)]
    features = used_features(model)
    fields += [_feature_field(model, f) for f in features if f.source == "chat"]
    for name, p in model.spec.policy.fields.items():
        fields.append(FieldInfo(name=name, source="policy", kind=p.kind, label=p.label, unit=p.unit,
                                min=p.min, max=p.max))
    fields += [_feature_field(model, f) for f in features if f.source == "profile"]
    return ScorecardInfo(name=model.spec.name, version=model.version, currency=model.spec.currency.applicant,
                         fields=fields)


def _feature_field(model: ScorecardModel, f: FeatureSpec) -> FieldInfo:
    common = dict(name=f.name, source=f.source, label=f.label, unit=f.unit, required=f.source == "chat",
                  controllable=f.controllable)
    if f.kind == "categorical":
        return FieldInfo(kind="choice", choices=[str(c) for c in _codes(model, f)], **common)
    return FieldInfo(kind="integer" if f.integer else "number", min=f.min, max=f.max, **common)


def _codes(model: ScorecardModel, f: FeatureSpec) -> list[Any]:
    if f.values:
        return list(f.values)
    variable = model.by_column.get(f.column)
    if variable is None:
        return []
    return [c for b in variable.bins if b.row == "bin" for c in (b.categories or [])]


def applicant_model(info: ScorecardInfo) -> type[BaseModel]:
    """A pydantic model for the applicant: unknown fields, wrong types and out-of-range values fail."""
    fields: dict[str, Any] = {}
    for f in info.fields:
        fields[f.name] = (_annotation(f), _field(f))
    return create_model("Applicant", __config__=ConfigDict(extra="forbid"), **fields)


def _annotation(f: FieldInfo) -> Any:
    base: Any
    if f.kind == "choice":
        base = Literal[tuple(f.choices or [""])]  # type: ignore[misc]
    else:
        base = {"number": float, "integer": int, "bool": bool}[f.kind]
    return base if f.required else base | None


def _field(f: FieldInfo) -> Any:
    kwargs: dict[str, Any] = {"description": f.label + (f" ({f.unit})" if f.unit else "")}
    if f.min is not None:
        kwargs["ge"] = f.min
    if f.max is not None:
        kwargs["le"] = f.max
    if f.kind == "number":
        kwargs["allow_inf_nan"] = False
    if f.kind == "bool":
        kwargs["strict"] = True  # consent must be an explicit true, not "yes" or 1
    if f.required:
        return Field(..., **kwargs)
    return Field(f.default, **kwargs)


def errors_of(exc: ValidationError) -> list[FieldError]:
    out: dict[str, list[str]] = {}
    for e in exc.errors():
        name = ".".join(str(p) for p in e["loc"]) or "applicant"
        message = "is required" if e["type"] == "missing" else \
            "is not a field of this form" if e["type"] == "extra_forbidden" else e["msg"]
        out.setdefault(name, []).append(message)
    return [FieldError(field=k, message="; ".join(v)) for k, v in out.items()]


# --- applicant value -> data value -----------------------------------------------------------

def map_value(f: FeatureSpec, value: Any, identity: dict[str, Any] | None = None) -> Any:
    """One applicant value in the data's units and levels (None stays None: missing)."""
    if value is None:
        return None
    if f.kind == "categorical":
        if f.values:
            return f.values.get(value)
        return (identity or {}).get(str(value), value)
    x = float(value) * f.scale + f.offset
    if f.clip is not None:
        x = min(max(x, f.clip[0]), f.clip[1])
    if f.kind == "banded":
        for band in f.bands or []:
            if band.below is None or x < band.below:
                return band.level
    return x


def identity_maps(model: ScorecardModel) -> dict[str, dict[str, Any]]:
    """For categorical fields without a value map: the field's string form -> the data's level."""
    maps = {}
    for f in used_features(model):
        if f.kind == "categorical" and not f.values:
            maps[f.column] = {str(c): c for c in _codes(model, f)}
    return maps


def data_columns(model: ScorecardModel, applicants: list[dict[str, Any]],
                 identity: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Applicants -> data-space columns (with derived features), ready for the points table."""
    columns: dict[str, Any] = {}
    for f in used_features(model):
        name = f.name
        if f.kind == "categorical" and f.values:  # the common case, inlined for batch speed
            lookup = f.values
            values = [lookup.get(a.get(name)) for a in applicants]
        else:
            ident = identity.get(f.column)
            values = [map_value(f, a.get(name), ident) for a in applicants]
        if f.kind == "numerical":
            columns[f.column] = np.array([math.nan if v is None else v for v in values], dtype=float)
        else:
            columns[f.column] = np.array(values, dtype=object)
    for f in model.spec.features:
        if f.derive is not None and f.column in model.by_column:
            columns[f.column] = f.derive.apply(columns)
    return columns
