"""Product terms: `knowledge_base/products/terms.yaml`, typed. The calculator, the verify step
and the compliance checker read figures from here, so they cannot disagree with the documents."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field


class Promotions(BaseModel):
    zero_interest_terms: list[int] = Field(default_factory=list)
    zero_interest_with_fee_terms: list[int] = Field(default_factory=list)
    zero_interest_monthly_fee_pct: float = 0.0
    zero_interest_with_fee_apr_pct: float = 0.0


class ProductTerms(BaseModel):
    model_config = ConfigDict(extra="allow")

    key: str = ""
    id: str
    name: str
    kind: str
    aliases: list[str] = Field(default_factory=list)
    descriptions: list[str] = Field(default_factory=list)  # documented descriptions (ads may name it so)
    apr_min_pct: float = Field(ge=0, le=36)
    apr_max_pct: float = Field(ge=0, le=36)
    limit_min: float
    limit_max: float
    term_months: list[int]
    repayment_method: str = "equal_installment"
    repayment_methods_allowed: list[str] = Field(default_factory=lambda: ["equal_installment"])
    origination_fee_pct: float = 0
    annual_fee: float = 0
    late_fee_pct: float
    late_fee_min: float
    late_fee_max: float
    grace_period_days: int
    cooling_off_days: int
    early_repayment_fee_pct: float = 0
    early_repayment_free_after_months: int = 0
    min_age: int = 18
    max_age: int = 65
    min_months_trading: int | None = None
    credit_bureau_report_after_days: int = 3
    promotions: Promotions | None = None

    def figures(self) -> set[str]:
        """Every figure a document or a draft may quote for this product, as normalised strings."""
        values: list[float] = [
            self.apr_min_pct, self.apr_max_pct, self.limit_min, self.limit_max, self.origination_fee_pct,
            self.annual_fee, self.late_fee_pct, self.late_fee_min, self.late_fee_max,
            self.grace_period_days, self.cooling_off_days, self.early_repayment_fee_pct,
            self.early_repayment_free_after_months, self.min_age, self.max_age, *self.term_months,
        ]
        if self.min_months_trading:
            values.append(self.min_months_trading)
        if self.promotions:
            p = self.promotions
            values += [*p.zero_interest_terms, *p.zero_interest_with_fee_terms,
                       p.zero_interest_monthly_fee_pct, p.zero_interest_with_fee_apr_pct]
        return {normalise_number(v) for v in values}


class Lender(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    short_name: str
    currency: str
    hotline: str
    apr_cap_pct: float


class Terms(BaseModel):
    model_config = ConfigDict(extra="allow")
    lender: Lender
    products: dict[str, ProductTerms]
    collections: dict[str, object] = Field(default_factory=dict)
    complaints: dict[str, object] = Field(default_factory=dict)

    def products_mentioned(self, text: str) -> list[str]:
        """Product keys named in a text, by name or alias, in order of first mention."""
        lowered = text.lower()
        found: list[tuple[int, str]] = []
        for key, product in self.products.items():
            positions = [m.start() for a in [product.name, *product.aliases]
                         for m in [re.search(rf"\b{re.escape(a.lower())}\b", lowered)] if m]
            if positions:
                found.append((min(positions), key))
        return [key for _, key in sorted(found)]

    def product(self, key_or_id: str) -> ProductTerms:
        for key, product in self.products.items():
            if key_or_id in (key, product.id, product.name):
                return product
        raise KeyError(f"unknown product {key_or_id!r}; known: {', '.join(self.products)}")


def normalise_number(value: float | str) -> str:
    """'1,000' / '1000.0' / 1000 -> '1000'; '7.20' -> '7.2'."""
    text = str(value).replace(",", "").strip()
    number = float(text)
    return str(int(number)) if number == int(number) else f"{number:g}"


def load_terms(path: Path) -> Terms:
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    terms = Terms.model_validate(raw)
    for key, product in terms.products.items():
        product.key = key
        if product.apr_max_pct > terms.lender.apr_cap_pct:
            raise ValueError(f"{path}: {key} APR {product.apr_max_pct}% is above the cap")
    return terms


@lru_cache(maxsize=8)
def cached_terms(path: str) -> Terms:
    return load_terms(Path(path))
