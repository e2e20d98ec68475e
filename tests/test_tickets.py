"""The staff side: `assistant tickets ...` on a real SQLite store in a temp dir, good and bad input."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from assistant.config import Settings
from assistant.store.tickets import TicketDraft, TicketService
from assistant.cli.tickets import app
from assistant.types import utcnow


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ASSISTANT_DATABASE_URL", raising=False)
    return tmp_path / "data"


@pytest.fixture
def ticket_ids(data_dir) -> list[str]:
    old = TicketService(Settings(data_dir=data_dir, _env_file=None), clock=lambda: utcnow() - timedelta(days=20))
    late = old.create(TicketDraft(kind="complaint", customer_ref="c1", text="wrong fee", team="fees_billing",
                                  severity="high", issue="fees_interest", product="cash")).ticket.id
    now = TicketService(Settings(data_dir=data_dir, _env_file=None))
    fresh = now.create(TicketDraft(kind="handoff", customer_ref="c2", text="a person please",
                                   team="customer_care")).ticket.id
    return [late, fresh]


def run(*args: str):
    return CliRunner().invoke(app, [*args])


def test_list_and_filter(ticket_ids):
    late, fresh = ticket_ids
    listed = json.loads(run("list", "--json").stdout)["tickets"]
    assert [t["id"] for t in listed] == [fresh, late]  # newest first
    only = json.loads(run("list", "--team", "fees_billing", "--severity", "high", "--json").stdout)["tickets"]
    assert [t["id"] for t in only] == [late]
    assert json.loads(run("list", "--kind", "handoff", "--json").stdout)["tickets"][0]["id"] == fresh
    table = run("list")
    assert table.exit_code == 0 and late in table.stdout


def test_show_update_and_audit_trail(ticket_ids):
    late, _ = ticket_ids
    moved = run("update", late, "--status", "in_progress", "--note", "looking at the statement", "--actor", "ana",
                "--json")
    assert moved.exit_code == 0, moved.output
    shown = json.loads(run("show", late, "--json").stdout)
    assert shown["status"] == "in_progress" and shown["acknowledged_at"]
    assert [(e["action"], e["to_status"], e["actor"]) for e in shown["events"]] == [
        ("created", "open", "assistant"), ("status", "in_progress", "ana")]
    assert "wrong fee" in run("show", late).stdout
    assert run("update", late, "--status", "closed").exit_code == 0
    reopen = run("update", late, "--status", "in_progress", "--json")
    assert reopen.exit_code == 2 and "it can move to: none" in json.loads(reopen.stdout)["error"]


def test_breach_report(ticket_ids):
    late, fresh = ticket_ids
    report = json.loads(run("breaches", "--json").stdout)
    flagged = {(b["ticket_id"], b["deadline"]) for b in report["breaches"] if b["state"] == "breached"}
    assert {(late, "acknowledge"), (late, "resolve")} <= flagged  # 20 days old, never touched
    assert all(b["ticket_id"] != fresh or b["state"] == "near" for b in report["breaches"])
    assert report["breached"] >= 2


@pytest.mark.parametrize("args, message", [
    (["update", "CMP-000000-NOPE22", "--status", "closed"], "no ticket"),
    (["update", "{late}", "--status", "done"], "unknown status"),
    (["update", "{late}", "--status", "open"], "already open"),
    (["update", "{late}"], "nothing to change"),
    (["update", "{late}", "--extend"], "notice"),
    (["update", "{fresh}", "--extend", "--note", "more time"], "only complaints"),
    (["show", "nope"], "no ticket"),
    (["list", "--status", "pending"], "unknown status"),
    (["list", "--severity", "critical"], "unknown severity"),
    (["list", "--kind", "letter"], "unknown kind"),
])
def test_bad_input_is_refused_with_a_clear_message(ticket_ids, args, message):
    late, fresh = ticket_ids
    args = [a.format(late=late, fresh=fresh) for a in args]
    result = run(*args, "--json")
    assert result.exit_code == 2, result.output
    assert message in json.loads(result.stdout)["error"]
    human = run(*args)
    assert human.exit_code == 2 and message in human.output


def test_store_unavailable_is_exit_1(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ASSISTANT_DATABASE_URL", f"sqlite:///{blocker}/x.db")
    result = run("list", "--json")
    assert result.exit_code == 1 and "unavailable" in json.loads(result.stdout)["error"]


def test_replay_spool_command(data_dir):
    down = Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir}/blocked/x.db", _env_file=None)
    (data_dir / "blocked").parent.mkdir(parents=True, exist_ok=True)
    (data_dir / "blocked").write_text("a file, not a folder")
    receipt = TicketService(down).create(TicketDraft(kind="handoff", customer_ref="c", text="hi", team="customer_care"))
    assert not receipt.stored
    result = json.loads(run("replay-spool", "--json").stdout)
    assert result == {"replayed": [receipt.ticket.id], "pending": 0}
    assert json.loads(run("show", receipt.ticket.id, "--json").stdout)["text"] == "hi"


def test_a_customers_own_tickets_newest_first_and_only_theirs(data_dir):
    settings = Settings(data_dir=data_dir, _env_file=None)
    days = iter([5, 3, 2, 1])

    def service() -> TicketService:
        ago = next(days)
        return TicketService(settings, clock=lambda: utcnow() - timedelta(days=ago))

    def complaint(customer: str, kind: str = "complaint") -> str:
        return service().create(TicketDraft(kind=kind, customer_ref=customer, text="x", team="fees_billing")).ticket.id

    old, theirs, handoff, new = complaint("c1"), complaint("c2"), complaint("c1", "handoff"), complaint("c1")
    tickets = TicketService(settings)
    assert [t.id for t in tickets.of_customer("c1")] == [new, old]  # complaints only, newest first
    assert [t.id for t in tickets.of_customer("c1", kind=None)] == [new, handoff, old]
    tickets.update(old, status="resolved", note="refunded")
    assert [t.id for t in tickets.of_customer("c1", open_only=True)] == [new]
    # by reference: theirs (as typed, any case), never another customer's
    assert [t.id for t in tickets.of_customer("c1", ticket_id=f" {old.lower()} ")] == [old]
    assert tickets.of_customer("c1", ticket_id=theirs) == []
    assert tickets.of_customer("c1", ticket_id="CMP-000000-NOPE22") == []
    assert tickets.of_customer("", ticket_id=old) == [] and tickets.of_customer("c3") == []
