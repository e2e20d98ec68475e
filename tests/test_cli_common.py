"""The preamble every CLI shares (assistant/cli/common.py): errors, JSON on stdout, settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from assistant.cli.common import emit_json, fail, load_settings

app = typer.Typer()


@app.command()
def probe(message: str, code: int = 2, as_json: bool = typer.Option(False, "--json")) -> None:
    fail(message, as_json=as_json, code=code)


def test_fail_prints_the_message_as_it_is_on_stderr_and_exits_with_the_code():
    message = "bad [type=int_parsing] and [bold]no markup[/bold] :smile: " + "long " * 30
    result = CliRunner().invoke(app, [message, "--code", "3"])
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == f"error: {message}\n"  # not wrapped, brackets kept


def test_fail_with_json_is_one_object_on_stdout():
    result = CliRunner().invoke(app, ["no ticket 'X'", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {"error": "no ticket 'X'"} and result.stderr == ""


def test_emit_json_writes_one_line(capsys):
    emit_json({"a": "é", "path": Path("x/y")})
    out = capsys.readouterr().out
    assert out == '{"a": "é", "path": "x/y"}\n'


@pytest.mark.parametrize("as_json", [False, True])
def test_invalid_settings_are_a_clear_error_not_a_traceback(monkeypatch, capsys, as_json):
    monkeypatch.setenv("ASSISTANT_RETRIEVAL_K", "0")
    with pytest.raises(typer.Exit) as exited:
        load_settings(as_json=as_json)
    assert exited.value.exit_code == 1
    captured = capsys.readouterr()
    message = json.loads(captured.out)["error"] if as_json else captured.err
    assert "invalid settings" in message and "retrieval_k" in message


def test_sub_clis_report_invalid_settings(monkeypatch):
    from assistant.cli.audit import app as audit_app
    from assistant.cli.complaints import app as complaints_app
    from assistant.cli.loans import app as loans_app

    monkeypatch.setenv("ASSISTANT_RETRIEVAL_K", "0")
    runner = CliRunner()
    as_json = runner.invoke(complaints_app, ["evaluate", "--shared-split", "--json"])
    assert as_json.exit_code == 1 and "invalid settings" in json.loads(as_json.stdout)["error"]
    for sub_app, args in ((loans_app, ["late-fee", "--installment", "100", "--days-late", "3"]),
                          (audit_app, ["verify"])):
        result = runner.invoke(sub_app, args)
        assert result.exit_code == 1 and result.stderr.startswith("error: invalid settings"), result.output
