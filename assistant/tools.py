"""The tools the assistant can call, each defined once as a LangChain StructuredTool with a pydantic
args schema: `check_eligibility` (the scorecard), `repayment_schedule` and `early_repayment_quote`
(the loan calculator). Arguments, from a model or from a form, are validated against the schema
before any call (`run_tool_call`); nothing a model produces is trusted as is."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field, ValidationError

from assistant.loans import LoanError, early_repayment_quote, product_schedule
from assistant.llm.prompts import load_replies
from assistant.scoring.applicant import ApplicantError, applicant_model, errors_of
from assistant.scoring.client import ScoringClient, ScoringUnavailable
from assistant.knowledge.terms import Terms
from assistant.types import ToolCall

DESCRIPTIONS = "eligibility_tools.yaml"  # tool descriptions the model reads live in prompts/


class RepaymentArgs(BaseModel):
    amount: Decimal = Field(gt=0, le=10_000_000, description="the principal, in the lender's currency")
    months: int = Field(ge=1, le=120, description="the term in months")
    product: str = Field("cash", description="product key: flex, cash, mall or business")
    apr_pct: Decimal | None = Field(None, ge=0, le=36, description="APR in %, fees included; omit for the "
                                                                    "product's lowest and highest")
    method: Literal["equal_installment", "equal_principal"] | None = None


class EarlyRepaymentArgs(RepaymentArgs):
    start_date: date = Field(description="the payout date, YYYY-MM-DD")
    repay_on: date = Field(description="the day of the early repayment, YYYY-MM-DD")


def eligibility_tool(client: ScoringClient, descriptions: dict[str, str]) -> StructuredTool:
    """The scorecard as a tool; its args schema is the scorecard's own applicant model."""
    def check_eligibility(trace_id: str | None = None, **applicant: Any) -> dict[str, Any]:
        return client.score(applicant, trace_id=trace_id).model_dump(mode="json")

    return StructuredTool.from_function(
        func=check_eligibility, name="check_eligibility", description=descriptions["check_eligibility"],
        args_schema=applicant_model(client.info()), metadata={"accepts_trace_id": True})


def repayment_schedule_tool(terms: Terms, descriptions: dict[str, str]) -> StructuredTool:
    def repayment_schedule(amount: Decimal, months: int, product: str = "cash", apr_pct: Decimal | None = None,
                           method: str | None = None) -> dict[str, Any]:
        p = terms.product(product)
        aprs = [apr_pct] if apr_pct is not None else [p.apr_min_pct, p.apr_max_pct]
        schedules = {str(a): product_schedule(p, amount, months, a, method) for a in aprs}  # type: ignore[arg-type]
        return {"quotes": [s.summary() for s in schedules.values()]}

    return StructuredTool.from_function(
        func=repayment_schedule, name="repayment_schedule", description=descriptions["repayment_schedule"],
        args_schema=RepaymentArgs)


def early_repayment_quote_tool(terms: Terms, descriptions: dict[str, str]) -> StructuredTool:
    def quote(amount: Decimal, months: int, start_date: date, repay_on: date, product: str = "cash",
              apr_pct: Decimal | None = None, method: str | None = None) -> dict[str, Any]:
        p = terms.product(product)
        schedule = product_schedule(p, amount, months, apr_pct, method, start_date)  # type: ignore[arg-type]
        return early_repayment_quote(schedule, p, repay_on).model_dump(mode="json")

    return StructuredTool.from_function(
        func=quote, name="early_repayment_quote", description=descriptions["early_repayment_quote"],
        args_schema=EarlyRepaymentArgs)


def build_tools(client: ScoringClient | None, terms: Terms, prompts_dir: Path) -> dict[str, StructuredTool]:
    descriptions = load_replies(Path(prompts_dir), DESCRIPTIONS)
    tools = [repayment_schedule_tool(terms, descriptions), early_repayment_quote_tool(terms, descriptions)]
    if client is not None:
        tools.insert(0, eligibility_tool(client, descriptions))
    return {t.name: t for t in tools}


def validate_args(tool: StructuredTool, raw_args: dict[str, Any] | str | None) -> tuple[dict[str, Any] | None, str | None]:
    """(arguments as the schema reads them, None) or (None, a message listing each bad field)."""
    if isinstance(raw_args, str):
        try:
            raw_args = json.loads(raw_args or "{}")
        except ValueError:
            return None, "arguments: not valid JSON"
    if not isinstance(raw_args, dict):
        return None, "arguments: expected a JSON object"
    try:
        parsed = tool.args_schema.model_validate(raw_args)  # type: ignore[union-attr]
    except ValidationError as exc:
        return None, "; ".join(f"{e.field}: {e.message}" for e in errors_of(exc))
    return parsed.model_dump(), None


def run_tool_call(tool: StructuredTool, raw_args: dict[str, Any] | str | None,
                  trace_id: str | None = None) -> ToolCall:
    """Validate, then call. A bad call never reaches the tool: it comes back with `error` set."""
    shown = raw_args if isinstance(raw_args, dict) else {"raw": raw_args}
    args, error = validate_args(tool, raw_args)
    if args is None:
        return ToolCall(name=tool.name, arguments=shown, error=error)
    extra = {"trace_id": trace_id} if (tool.metadata or {}).get("accepts_trace_id") else {}
    try:
        result = tool.func(**args, **extra)  # type: ignore[misc]
    except ApplicantError as exc:
        return ToolCall(name=tool.name, arguments=_jsonable(args), error=str(exc))
    except (LoanError, KeyError) as exc:
        return ToolCall(name=tool.name, arguments=_jsonable(args), error=str(exc.args[0] if exc.args else exc))
    except ScoringUnavailable as exc:
        return ToolCall(name=tool.name, arguments=_jsonable(args), error=f"unavailable: {exc}")
    return ToolCall(name=tool.name, arguments=_jsonable(args), result=result)


def _jsonable(args: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(args, default=str))
