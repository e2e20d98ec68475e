"""`assistant loan ...`: repayment schedule, early-repayment quote and late fee, from terms.yaml."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Optional

import typer

from assistant.cli.common import emit_json, fail, load_settings
from assistant.loans import LoanError, early_repayment_quote, late_fee, product_schedule
from assistant.knowledge.terms import load_terms

app = typer.Typer(help="The loan calculator (exact, figures from knowledge_base/products/terms.yaml).",
                  no_args_is_help=True)

JSON_OPT = typer.Option(False, "--json", help="print one JSON object on stdout")
METHODS = ("equal_installment", "equal_principal")


def _product(key: str):
    try:
        return load_terms(load_settings().terms_file).product(key)
    except KeyError as exc:
        fail(str(exc.args[0]))


def _date(text: Optional[str], name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{name} must be a date like 2025-03-15")


def _schedule(product_key: str, amount: str, months: int, apr: Optional[str], method: Optional[str],
              start: Optional[str]):
    if method is not None and method not in METHODS:
        fail(f"--method must be one of {', '.join(METHODS)}")
    try:
        return product_schedule(_product(product_key), Decimal(amount), months, apr, method,  # type: ignore[arg-type]
                                _date(start, "--start") or date.today())
    except LoanError as exc:
        fail(str(exc))
    except ArithmeticError:
        fail("--amount and --apr must be numbers")


@app.command()
def schedule(
    amount: str = typer.Option(..., help="principal, e.g. 5000"),
    months: int = typer.Option(..., help="term in months (one the product offers)"),
    product: str = typer.Option("cash", help="product key: flex, cash, mall, business"),
    apr: Optional[str] = typer.Option(None, help="APR in %, fees included (default: the product's lowest)"),
    method: Optional[str] = typer.Option(None, help="equal_installment or equal_principal"),
    start: Optional[str] = typer.Option(None, help="payout date, YYYY-MM-DD (default: today)"),
    as_json: bool = JSON_OPT,
) -> None:
    """The full repayment schedule, total cost and APR."""
    s = _schedule(product, amount, months, apr, method, start)
    if as_json:
        emit_json({**s.summary(), "installments": [i.model_dump(mode="json") for i in s.installments]})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{s.product}: {s.principal:,} over {s.months} months, APR {s.apr_pct}% "
                        f"(interest rate {s.annual_rate_pct}%)")
    for c in ("#", "due", "payment", "principal", "interest", "fee", "balance"):
        table.add_column(c, justify="right")
    for i in s.installments:
        table.add_row(str(i.number), i.due_date.isoformat(), f"{i.payment:,}", f"{i.principal:,}",
                      f"{i.interest:,}", f"{i.fee:,}", f"{i.balance:,}")
    Console().print(table)
    typer.echo(f"upfront fee {s.upfront_fee:,}  total interest {s.total_interest:,}  total fees {s.total_fees:,}  "
               f"total paid {s.total_repaid:,}")


@app.command("early-repayment")
def early_repayment(
    amount: str = typer.Option(..., help="principal at payout"),
    months: int = typer.Option(...),
    start: str = typer.Option(..., help="payout date, YYYY-MM-DD"),
    on: str = typer.Option(..., "--on", help="repayment date, YYYY-MM-DD"),
    product: str = typer.Option("cash"),
    apr: Optional[str] = typer.Option(None, help="the loan's APR in % (default: the product's lowest)"),
    method: Optional[str] = typer.Option(None),
    as_json: bool = JSON_OPT,
) -> None:
    """What repaying the whole loan on a given date costs (installments due before it are paid)."""
    s = _schedule(product, amount, months, apr, method, start)
    try:
        quote = early_repayment_quote(s, _product(product), _date(on, "--on"))  # type: ignore[arg-type]
    except LoanError as exc:
        fail(str(exc))
    if as_json:
        emit_json(quote.model_dump(mode="json"))
        return
    typer.echo(f"repay on {quote.repay_on}: principal {quote.principal_outstanding:,} + interest "
               f"{quote.accrued_interest:,} + early-repayment fee {quote.early_repayment_fee:,} = "
               f"{quote.total_due:,} (saves {quote.interest_and_fees_saved:,})")


@app.command("late-fee")
def late_fee_cmd(
    installment: str = typer.Option(..., help="the overdue installment amount"),
    days_late: int = typer.Option(..., min=0),
    product: str = typer.Option("cash"),
    as_json: bool = JSON_OPT,
) -> None:
    """The late fee on one missed installment (none within the grace period)."""
    try:
        fee = late_fee(_product(product), Decimal(installment), days_late)
    except ArithmeticError:
        fail("--installment must be a number")
    if as_json:
        emit_json(fee.model_dump(mode="json"))
        return
    typer.echo(f"late fee {fee.fee:,} ({'within the grace period' if fee.within_grace else 'after the grace period'}"
               f"{'; reported to the credit bureau' if fee.reported_to_credit_bureau else ''})")


if __name__ == "__main__":
    app()
