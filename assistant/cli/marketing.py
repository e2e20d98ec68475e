"""CLI for the marketing studio. Registered by assistant/cli/main.py as:

    app.command("copy")(copy_command)              # assistant copy --brief brief.yaml --out DIR
    app.add_typer(compliance_app, name="compliance")  # assistant compliance check FILE
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from assistant.cli.common import emit_json, err, fail, load_settings

log = logging.getLogger(__name__)
out = Console()

compliance_app = typer.Typer(help="Check marketing copy against the compliance rule pack "
                                  "(knowledge_base/rules/compliance.yaml).", no_args_is_help=True)
app = compliance_app  # the name the brief asked for


def _checker(settings, rules: Path | None, as_json: bool):
    from assistant.marketing.compliance import ComplianceChecker, RulePackError, load_rule_pack, rules_path
    from assistant.knowledge.terms import load_terms

    try:
        return ComplianceChecker(load_rule_pack(rules or rules_path(settings)), load_terms(settings.terms_file))
    except RulePackError as exc:
        fail(str(exc), as_json=as_json)


# --- assistant copy -----------------------------------------------------------------------------


def copy_command(
    brief: Path = typer.Option(..., "--brief", help="brief file (YAML or JSON), see examples/brief.yaml"),
    out_dir: Path = typer.Option(..., "--out", help="folder for drafts.json, drafts.csv, drafts.md"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    no_llm: bool = typer.Option(False, "--no-llm", help="approved hooks only, no model"),
    no_kb: bool = typer.Option(False, "--no-kb", help="no retrieval: facts from terms.yaml, without citations"),
) -> None:
    """Draft campaign copy from a brief; every variant is compliance-checked and revised.
    Exit 0 when at least one variant passes, 1 when none does, 2 on a bad brief."""
    from assistant.marketing.drafting import Brief, BriefError, MarketingStudio, export_draft_set

    settings = load_settings(as_json=as_json)
    parsed = _read_brief(brief, as_json)
    chat_model, warnings = (None, []) if no_llm else _chat_model(settings)
    retrieve = None if no_kb else _retriever(settings, warnings)
    try:
        studio = MarketingStudio(settings, chat_model, retrieve)
        draft_set = studio.draft(Brief.model_validate(parsed))
    except ValidationError as exc:
        fail(f"{brief}: invalid brief: {_errors(exc)}", as_json=as_json)
    except BriefError as exc:
        fail(f"{brief}: {exc}", as_json=as_json)
    draft_set.warnings[:0] = warnings
    paths = export_draft_set(draft_set, out_dir)
    passing = len(draft_set.passed)
    if as_json:
        emit_json({"files": {k: str(v) for k, v in paths.items()}, "variants": len(draft_set.variants),
                    "passed": passing, "draft_set": json.loads(draft_set.model_dump_json())})
    else:
        _print_drafts(draft_set, paths)
    raise typer.Exit(0 if passing else 1)


def _read_brief(path: Path, as_json: bool) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", as_json=as_json)
    except yaml.YAMLError as exc:
        fail(f"{path}: not valid YAML/JSON: {exc}", as_json=as_json)
    if not isinstance(data, dict):
        fail(f"{path}: a brief is a mapping (product, audience, channel, ...)", as_json=as_json)
    return data.get("brief", data)


def _chat_model(settings) -> tuple[Any, list[str]]:
    from assistant.llm.chat_models import ModelNotAvailable, make_chat_model

    try:
        return make_chat_model(settings), []
    except ModelNotAvailable as exc:
        return None, [f"no model ({exc}); drafts use approved hooks only"]


def _retriever(settings, warnings: list[str]):
    try:
        from assistant.knowledge.index import KnowledgeBase

        kb = KnowledgeBase(settings)
        if kb.count() == 0:
            warnings.append("the knowledge base is not indexed (run `assistant ingest`): no citations")
            return None
        return kb.retrieve
    except Exception as exc:  # a broken index must not block drafting: facts come from terms.yaml
        warnings.append(f"knowledge base unavailable ({exc}): no citations")
        return None


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def _print_drafts(draft_set, paths: dict[str, Path]) -> None:
    for warning in draft_set.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    table = Table("rank", "variant", "passes", "score", "copy", "findings", title=f"{draft_set.brief.name}",
                  show_lines=True)
    for v in draft_set.variants:
        table.add_row(str(v.rank), f"{v.id} ({v.angle})", "yes" if v.passed else "[red]NO[/red]",
                      f"{v.score.total:.2f}" if v.score else "-", v.text,
                      "\n".join(f"{f.rule_id}: {f.message}" for f in v.report.findings) or "-")
    out.print(table)
    out.print("written: " + ", ".join(str(p) for p in paths.values()), highlight=False)


# --- assistant compliance ... -------------------------------------------------------------------


@compliance_app.command("check")
def check_command(
    file: Path = typer.Argument(..., help="copy to check: .txt/.md (one piece), .json/.jsonl "
                                          "({text, product?, channel?} per piece), or - for stdin"),
    product: Optional[str] = typer.Option(None, "--product", help="flex, cash, mall, business (else inferred)"),
    channel: Optional[str] = typer.Option(None, "--channel", help="sms, push, email, banner, social"),
    rules: Optional[Path] = typer.Option(None, "--rules", help="another rule pack (default: the project's)"),
    fix: bool = typer.Option(False, "--fix", help="also print a deterministically fixed version"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Check copy written by people. Exit 0 when every piece passes, 1 on any violation, 2 on bad input."""
    settings = load_settings(as_json=as_json)
    checker = _checker(settings, rules, as_json)
    pieces = _read_pieces(file, as_json)
    results = []
    for piece in pieces:
        p_product, p_channel = piece.get("product") or product, piece.get("channel") or channel
        try:
            report = checker.check_copy(piece["text"], product=p_product, channel=p_channel)
        except (KeyError, ValueError) as exc:
            fail(f"{piece.get('id', file)}: {exc.args[0] if exc.args else exc}", as_json=as_json)
        result = {"id": piece.get("id"), "report": json.loads(report.model_dump_json())}
        if fix and not report.passed:
            fixed, fixed_report = _fix_rounds(checker, piece["text"], report, p_product, p_channel)
            result["fixed"] = {"text": fixed, "passed": fixed_report.passed, "rule_ids": fixed_report.rule_ids}
        results.append(result)
    failed = sum(not r["report"]["passed"] for r in results)
    if as_json:
        emit_json({"file": str(file), "pieces": len(results), "failed": failed, "results": results})
    else:
        _print_reports(results)
    raise typer.Exit(1 if failed else 0)


def _fix_rounds(checker, text: str, report, product, channel, rounds: int = 3):
    from assistant.marketing.compliance import apply_fixes

    for _ in range(rounds):
        if report.passed:
            break
        fixed = apply_fixes(checker, text, report, product, channel)
        if fixed == text:
            break
        text, report = fixed, checker.check_copy(fixed, product=product, channel=channel)
    return text, report


def _read_pieces(file: Path, as_json: bool) -> list[dict[str, Any]]:
    try:
        raw = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}", as_json=as_json)
    suffix = file.suffix.lower()
    try:
        if suffix == ".jsonl":
            pieces = [json.loads(line) for line in raw.splitlines() if line.strip()]
        elif suffix == ".json":
            data = json.loads(raw)
            pieces = data if isinstance(data, list) else [data]
        else:
            pieces = [{"text": raw}]
    except json.JSONDecodeError as exc:
        fail(f"{file}: not valid JSON: {exc}", as_json=as_json)
    if not pieces or not all(isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"].strip()
                             for p in pieces):
        fail(f"{file}: nothing to check (each piece needs a non-empty `text`)", as_json=as_json)
    return pieces


def _print_reports(results: list[dict[str, Any]]) -> None:
    for result in results:
        report = result["report"]
        name = result["id"] or "copy"
        verdict = "[green]passes[/green]" if report["passed"] else "[red]FAILS[/red]"
        out.print(f"{name}: {verdict} (product {report['product'] or '?'}, channel {report['channel'] or '?'}, "
                  f"rules {report['rules_version']})", highlight=False)
        for f in report["findings"]:
            where = f" at {f['span']['start']}-{f['span']['end']} {f['span']['text']!r}" if f["span"] else ""
            out.print(f"  [bold]{f['rule_id']}[/bold] ({f['severity']}){where}: {f['message']}\n"
                      f"    fix: {f['fix']}", highlight=False)
        if "fixed" in result:
            state = "passes" if result["fixed"]["passed"] else f"still fails: {', '.join(result['fixed']['rule_ids'])}"
            out.print(f"  fixed version ({state}):\n{result['fixed']['text']}", highlight=False)


@compliance_app.command("rules")
def rules_command(
    rules: Optional[Path] = typer.Option(None, "--rules", help="another rule pack (default: the project's)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Validate the rule pack and list its rules (exit 2 with the line of the first error)."""
    settings = load_settings(as_json=as_json)
    checker = _checker(settings, rules, as_json)
    pack = checker.pack
    if as_json:
        emit_json({"version": pack.version, "effective_date": str(pack.effective_date), "fail_on": pack.fail_on,
                    "rules": [{"id": r.id, "severity": r.severity, "kind": r.kind, "enabled": r.enabled,
                               "channels": r.channels, "description": r.description} for r in pack.rules]})
        return
    table = Table("id", "severity", "kind", "description", title=f"compliance rules {pack.version} "
                                                                   f"(effective {pack.effective_date})")
    for r in pack.rules:
        table.add_row(r.id + ("" if r.enabled else " (off)"), r.severity, r.kind, r.description)
    out.print(table)
