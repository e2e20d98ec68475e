"""score(applicant) -> EligibilityDecision: policy rules, then the score, the decision, reason
codes, a counterfactual, and an indicative limit and APR band from the product terms."""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Literal, Mapping

import numpy as np
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from assistant.scoring.applicant import (
    ApplicantError, FieldError, ScorecardInfo, applicant_model, data_columns, errors_of, identity_maps,
    map_value, scorecard_info,
)
from assistant.scoring.model import ScorecardModel
from assistant.scoring.spec import FeatureSpec
from assistant.knowledge.terms import ProductTerms, Terms

decision_log = logging.getLogger("assistant.scoring.decisions")

Outcome = Literal["approve", "refer", "decline"]
RANK = {"decline": 0, "refer": 1, "approve": 2}
MAX_REASONS = 4
BAND_LABELS = "ABCDEFGHIJ"


class ReasonCode(BaseModel):
    code: str
    kind: Literal["policy", "score"]
    text: str
    field: str | None = None
    points_below_max: float | None = None


class Counterfactual(BaseModel):
    field: str
    current: float
    suggested: float
    decision: Outcome
    text: str


class EligibilityDecision(BaseModel):
    decision: Outcome
    product: str
    product_name: str
    score: int | None = None
    probability_of_default: float | None = Field(None, description="for staff and logs; never shown to customers")
    band: str | None = None
    reasons: list[ReasonCode] = Field(default_factory=list)
    counterfactual: Counterfactual | None = None
    indicative_limit: float | None = None
    apr_min_pct: float | None = None
    apr_max_pct: float | None = None
    requested_amount: float | None = None
    currency: str
    model_version: str

    @property
    def policy_declined(self) -> bool:
        return any(r.kind == "policy" for r in self.reasons)


class Scorer:
    """The in-process scoring tool. Holds only read-only things: the scorecard and the terms."""

    def __init__(self, model: ScorecardModel, terms: Terms, default_product: str = "cash"):
        terms.product(default_product)  # fail early on a bad setting
        self.model, self.terms = model, terms
        self.info: ScorecardInfo = scorecard_info(model, list(terms.products), default_product)
        self.Applicant = applicant_model(self.info)
        self._many = TypeAdapter(list[self.Applicant])  # type: ignore[name-defined]
        self._identity = identity_maps(model)
        self._features = [model.spec.feature(v.column) for v in model.variables]
        self._reasons = [[self._reason(f, v, i) for i in range(len(v.bins))]
                         for f, v in zip(self._features, model.variables)]
        self._max_points = np.array([v.max_points for v in model.variables])
        self._amount_field = next((f.name for f in self._features if f.role == "amount"), None)
        self._term_field = next((f.name for f in self._features if f.role == "term"), None)
        self._products = {**terms.products, **{p.id: p for p in terms.products.values()}}
        self._default_product = default_product if default_product in self._products else \
            terms.product(default_product).key
        self._controllable = [(j, f, v) for j, (f, v) in enumerate(zip(self._features, model.variables))
                              if f.controllable]
        self._moves = self._all_moves()

    # --- validation ------------------------------------------------------------------------------
    def validate(self, applicant: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
        raw = applicant.model_dump() if isinstance(applicant, BaseModel) else dict(applicant)
        errors: list[FieldError] = []
        try:
            valid = self.Applicant.model_validate(raw).model_dump()
        except ValidationError as exc:
            errors, valid = errors_of(exc), raw
        errors += [e for e in self._product_errors(valid) if e.field not in {x.field for x in errors}]
        if errors:
            raise ApplicantError(errors)
        return valid

    def _product_errors(self, a: dict[str, Any]) -> list[FieldError]:
        """The amount and term must be ones the product offers (figures from terms.yaml)."""
        try:
            product = self._products[a.get("product") or self._default_product]
        except (KeyError, TypeError):
            return []
        errors = []
        amount = a.get(self._amount_field) if self._amount_field else None
        if _number(amount) and not product.limit_min <= amount <= product.limit_max:
            errors.append(FieldError(field=self._amount_field, message=(
                f"{product.name} lends {self.terms.lender.currency} {product.limit_min:,.0f} "
                f"to {product.limit_max:,.0f}")))
        term = a.get(self._term_field) if self._term_field else None
        if _number(term) and term not in product.term_months:
            terms = ", ".join(str(t) for t in product.term_months)
            errors.append(FieldError(field=self._term_field, message=f"{product.name} is offered over {terms} months"))
        return errors

    def validate_many(self, rows: list[dict[str, Any]]) -> list[dict[str, Any] | ApplicantError]:
        try:  # fast path: every row passes the schema in one call
            valid = [a.model_dump() for a in self._many.validate_python(rows)]
        except ValidationError:
            return [self._validate_or_error(row) for row in rows]
        out: list[dict[str, Any] | ApplicantError] = []
        for a in valid:
            errors = self._product_errors(a)
            out.append(ApplicantError(errors) if errors else a)
        return out

    def _validate_or_error(self, row: dict[str, Any]) -> dict[str, Any] | ApplicantError:
        try:
            return self.validate(row)
        except ApplicantError as exc:
            return exc

    # --- scoring -----------------------------------------------------------------------------------
    def score(self, applicant: Mapping[str, Any] | BaseModel, trace_id: str | None = None) -> EligibilityDecision:
        valid = self.validate(applicant)
        decision = self.decide([valid])[0]
        self._log(decision, valid, trace_id)
        return EligibilityDecision.model_validate(decision)

    def score_many(self, rows: list[dict[str, Any]], trace_id: str | None = None) -> list[dict[str, Any] | ApplicantError]:
        """Batch scoring: each row's decision as a dict, or its ApplicantError."""
        checked = self.validate_many(rows)
        valid = [c for c in checked if not isinstance(c, ApplicantError)]
        decisions = iter(self.decide(valid)) if valid else iter(())
        out = [c if isinstance(c, ApplicantError) else next(decisions) for c in checked]
        if decision_log.isEnabledFor(logging.INFO):
            for c, d in zip(checked, out):
                if not isinstance(d, ApplicantError):
                    self._log(d, c, trace_id)  # type: ignore[arg-type]
        return out

    def decide(self, applicants: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Decisions for validated applicants, as plain dicts (the batch path; `score` wraps it)."""
        products = [self._products[a["product"] or self._default_product] for a in applicants]
        failures = [self._policy(a, p) for a, p in zip(applicants, products)]
        to_score = [i for i, f in enumerate(failures) if not f]
        out: list[dict[str, Any]] = [self._policy_decline(a, p, f) if f else {}
                                     for a, p, f in zip(applicants, products, failures)]
        if to_score:
            scored = [applicants[i] for i in to_score]
            indices = self.model.bin_indices(data_columns(self.model, scored, self._identity))
            points = self.model.points_of(indices)
            gaps = self._max_points[None, :] - points
            order = np.argsort(-gaps, axis=1, kind="stable")[:, :MAX_REASONS]
            # plain lists: per-row Python work is much faster on them than on numpy scalars
            rows = zip(points.sum(axis=1).tolist(), indices.tolist(), points.tolist(), gaps.round(1).tolist(),
                       order.tolist())
            for i, (score, idx, pts, gap, top) in zip(to_score, rows):
                out[i] = self._scored(applicants[i], products[i], score, idx, pts, gap, top)
        return out

    def outcome(self, score: float) -> Outcome:
        if score >= self.model.approve_score:
            return "approve"
        return "decline" if score < self.model.decline_score else "refer"

    # --- parts -------------------------------------------------------------------------------------
    def _policy(self, a: dict[str, Any], product: ProductTerms) -> list[str]:
        failed = []
        if a["consent"] is not True:
            return ["consent"]  # no consent: look at nothing else
        if a["age"] < product.min_age:
            failed.append("min_age")
        if a["age"] > product.max_age:
            failed.append("max_age")
        if a["monthly_income"] <= 0:
            failed.append("income")
        elif a["monthly_income"] * self.model.spec.policy.income_multiple < product.limit_min:
            failed.append("affordability")
        return failed

    def _policy_decline(self, a: dict[str, Any], product: ProductTerms, failed: list[str]) -> dict[str, Any]:
        values = {"product": product.name, "min_age": product.min_age, "max_age": product.max_age,
                  "currency": self.terms.lender.currency, "limit_min": product.limit_min}
        reasons = [{"code": f"policy_{rule}", "kind": "policy",
                    "text": self.model.spec.policy.reasons[rule].format(**values), "field": _POLICY_FIELD[rule]}
                   for rule in failed]
        return self._base(a, product) | {"decision": "decline", "reasons": reasons}

    def _scored(self, a, product, score, indices, points, gaps, order) -> dict[str, Any]:
        outcome = self.outcome(score)
        pd_ = 1.0 / (1.0 + math.exp((score - self.model.offset) / self.model.factor))
        reasons = [self._reasons[j][indices[j]] | {"points_below_max": gaps[j]} for j in order if gaps[j] > 0.05]
        result = self._base(a, product) | {
            "decision": outcome, "score": int(round(score)), "probability_of_default": round(pd_, 4),
            "reasons": reasons,
        }
        if outcome != "approve":
            result["counterfactual"] = self._counterfactual(a, product, score, outcome, indices, points)
        if outcome != "decline":
            result |= self._offer(a, product, pd_, outcome)
        return result

    def _base(self, a: dict[str, Any], product: ProductTerms) -> dict[str, Any]:
        return {"product": product.key, "product_name": product.name, "currency": self.terms.lender.currency,
                "model_version": self.model.version,
                "requested_amount": a.get(self._amount_field) if self._amount_field else None}

    def _reason(self, f: FeatureSpec, variable, index: int) -> dict[str, Any]:
        if variable.bins[index].row == "missing":
            text = self.model.spec.reason_missing.format(label=f.label)
        else:
            text = f.reason_text(variable.direction(index))
        return {"code": f.name, "kind": "score", "text": text, "field": f.name}

    def _offer(self, a: dict[str, Any], product: ProductTerms, pd_: float, outcome: Outcome) -> dict[str, Any]:
        """Indicative limit and APR band: a sub-range of the product's own ranges, never above them."""
        pricing = self.model.spec.pricing
        n = len(pricing.pd_bands)
        band = n - 1 if outcome == "refer" else min(
            next((i for i, edge in enumerate(pricing.pd_bands) if pd_ <= edge), n - 1), n - 2)
        width = (product.apr_max_pct - product.apr_min_pct) / n
        apr_lo = max(product.apr_min_pct, math.floor((product.apr_min_pct + band * width) * 10) / 10)
        apr_hi = min(product.apr_max_pct, math.ceil((product.apr_min_pct + (band + 1) * width) * 10) / 10)
        limit = product.limit_min + pricing.limit_share[band] * (product.limit_max - product.limit_min)
        limit = min(limit, a["monthly_income"] * self.model.spec.policy.income_multiple, product.limit_max)
        limit = max(product.limit_min, math.floor(limit / 100) * 100)
        return {"band": BAND_LABELS[band], "indicative_limit": float(limit),
                "apr_min_pct": round(apr_lo, 1), "apr_max_pct": round(apr_hi, 1)}

    def _counterfactual(self, a, product, score, outcome, indices, points) -> dict[str, Any] | None:
        """The smallest change to one field the customer controls that improves the decision."""
        best: tuple[float, int, dict[str, Any]] | None = None
        for j, f, variable in self._controllable:
            current = a.get(f.name)
            if current is None:
                continue
            base = score - points[j]
            for value, new_index in self._moves[(j, product.key)].get(int(indices[j]), ()):
                if value == current:
                    continue
                new = self.outcome(base + variable.points[new_index])
                if RANK[new] <= RANK[outcome]:
                    continue
                key = (abs(value - current) / max(abs(current), 1e-9), -RANK[new])
                if best is None or key < best[:2]:
                    text = (f.change or "{value}").format(value=value, current=float(current))
                    best = (*key, {"field": f.name, "current": float(current), "suggested": value,
                                   "decision": new, "text": text})
        return best[2] if best else None

    def _all_moves(self) -> dict[tuple[int, str], dict[int, list[tuple[float, int]]]]:
        """For each controllable variable, product and current bin: the nearest value the customer
        could choose in each better-scoring bin (computed once; scoring only looks them up)."""
        moves = {}
        for j, f, variable in self._controllable:
            for key, product in self.terms.products.items():
                moves[(j, key)] = {index: self._candidates(f, variable, product, index) for index in variable.regular}
        return moves

    def _candidates(self, f: FeatureSpec, variable, product: ProductTerms, index: int) -> list[tuple[float, int]]:
        if f.choices_from_product:
            values = [float(v) for v in getattr(product, f.choices_from_product)]
            return [(v, variable.index_of(map_value(f, v))) for v in values]
        low, high = (f.min or 0), (f.max or math.inf)
        if f.role == "amount":  # stay inside the product's limits
            low, high = max(low, product.limit_min), min(high, product.limit_max)
        here = variable.regular.index(index)
        out = []
        for position, i in enumerate(variable.regular):
            b = variable.bins[i]
            if i == index or b.points <= variable.bins[index].points:
                continue
            if position > here:  # a higher bin: its lower edge, rounded up to a step
                value = math.ceil(((b.lower or 0) - f.offset) / f.scale / f.step) * f.step
            else:  # a lower bin: just under its upper edge, rounded down
                value = math.floor((((b.upper or 0) - f.offset) / f.scale - 1e-9) / f.step) * f.step
            if low <= value <= high and variable.index_of(map_value(f, value)) == i:
                out.append((float(value), i))
        return out

    # --- logging -------------------------------------------------------------------------------------
    def _log(self, decision: dict[str, Any], inputs: dict[str, Any], trace_id: str | None) -> None:
        if not decision_log.isEnabledFor(logging.INFO):
            return
        record = decision_record(decision, inputs, trace_id)
        decision_log.info(json.dumps(record, sort_keys=True, default=str), extra={"decision": record})


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_POLICY_FIELD = {"consent": "consent", "min_age": "age", "max_age": "age", "income": "monthly_income",
                 "affordability": "monthly_income"}


def redact(inputs: dict[str, Any]) -> dict[str, Any]:
    """What a decision log may keep: age and income as bands, everything else as given
    (the applicant fields hold no name, id or contact detail)."""
    out = dict(inputs)
    if isinstance(out.get("age"), (int, float)):
        decade = int(out["age"]) // 10 * 10
        out["age"] = f"{decade}-{decade + 9}"
    if isinstance(out.get("monthly_income"), (int, float)):
        income = float(out["monthly_income"])
        out["monthly_income"] = next(label for edge, label in _INCOME_BANDS if income < edge)
    return out


_INCOME_BANDS = [(1e-9, "0"), (3000, "<3k"), (10000, "3k-10k"), (30000, "10k-30k"), (math.inf, "30k+")]


def decision_record(decision: dict[str, Any], inputs: dict[str, Any], trace_id: str | None) -> dict[str, Any]:
    return {
        "event": "eligibility_decision", "trace_id": trace_id, "model_version": decision["model_version"],
        "product": decision["product"], "decision": decision["decision"], "score": decision.get("score"),
        "probability_of_default": decision.get("probability_of_default"), "band": decision.get("band"),
        "reasons": [r["code"] for r in decision.get("reasons", [])],
        "counterfactual": (decision.get("counterfactual") or {}).get("field"),
        "indicative_limit": decision.get("indicative_limit"),
        "apr_band": [decision.get("apr_min_pct"), decision.get("apr_max_pct")],
        "inputs": redact(inputs),
    }
