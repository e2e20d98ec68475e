"""Staff roles: each key reaches only its endpoints (403 JSON otherwise); ticket moves that end a ticket
need a note and a confirmation; reopen is for complaints officers; the complaint view leaves out the
conversation. Real stores in a temp dir, the real routers and role gate (see test_inbox.light_app)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from serve.auth import ROLES, Caller, StaffAuth, has_any_role, key_digest, parse_roles, roles_for
from test_inbox import KEYS, bearer, customer_with_handoff, light_app

# endpoint -> the roles that may call it (admin may call everything)
ENDPOINTS = [
    ("GET", "/api/inbox", {"agent"}),
    ("POST", "/api/inbox/HO-000000-XXXXXX/claim", {"agent"}),
    ("POST", "/api/staff/tickets/CP-000000-XXXXXX/move", {"complaints"}),
    ("PATCH", "/api/tickets/CP-000000-XXXXXX", {"complaints"}),
    ("GET", "/api/tickets", {"complaints", "agent"}),
    ("POST", "/api/compliance/check", {"marketer"}),
    ("POST", "/api/marketing/drafts", {"marketer"}),
    ("GET", "/api/qa/report", {"qa"}),
]


@pytest.fixture
def env(tmp_path):
    app, s = light_app(tmp_path)
    with TestClient(app) as client:
        yield client, s


@pytest.mark.parametrize("who", ["agent", "complaints", "marketer", "qa", "admin"])
def test_each_role_reaches_only_its_endpoints(env, who):
    client, _ = env
    for method, path, allowed in ENDPOINTS:
        response = client.request(method, path, headers=bearer(who), json={})
        if who == "admin" or who in allowed:
            assert response.status_code != 403, (who, method, path)
        else:
            assert response.status_code == 403, (who, method, path, response.status_code)
            body = response.json()
            assert body["error"]["type"] == "forbidden" and set(body["error"]["details"]["roles"]) == allowed


def test_customers_and_strangers_are_not_staff(env):
    client, s = env
    _, token = s.tokens.issue()
    for headers in ({}, {"Authorization": f"Bearer {token}"}, {"Authorization": "Bearer wrong-key"}):
        assert client.get("/api/inbox", headers=headers).status_code == 401
        assert client.post("/api/staff/tickets/X/move", json={"status": "closed"}, headers=headers).status_code == 401


def test_role_parsing_and_defaults():
    assert parse_roles("agent, QA") == {"agent", "qa"}
    with pytest.raises(ValueError):
        parse_roles("agent,boss")
    auth = StaffAuth([SecretStr("k1"), SecretStr("k2")], {key_digest("k1"): "marketer"}, "qa")
    assert auth.roles_of("k1") == {"marketer"} and auth.roles_of("k2") == {"qa"} and auth.roles_of("nope") == set()
    assert StaffAuth([SecretStr("k")]).roles_of("k") == {"admin"}  # a key without a role keeps every page
    assert Caller("staff", "x", roles=frozenset({"admin"})).has_role("qa")
    assert not Caller("customer", "c", roles=frozenset({"admin"})).has_role("qa")
    assert has_any_role(frozenset({"agent"}), "agent", "qa") and not has_any_role(frozenset(), "agent")
    assert roles_for("GET", "/api/inboxes") is None and roles_for("GET", "/api/inbox/x") == ("agent",)
    assert set(ROLES) >= {"agent", "complaints", "marketer", "qa"}


def test_staff_page_login_binds_a_user_name_to_one_key():
    auth = StaffAuth([SecretStr("k1"), SecretStr("k2")], {"k1": "agent", "k2": "marketer"})
    assert auth.login("sam", "k1") and auth.page_roles("sam") == {"agent"}
    assert not auth.login("sam", "k2")  # the name is taken by another key: no borrowing its roles
    assert auth.page_roles("sam") == {"agent"} and auth.page_roles("nobody") == set()
    assert not auth.login("kim", "wrong")


def complaint(s, severity="high"):
    _, _, ticket_id = customer_with_handoff(s, severity=severity, kind="complaint",
                                            text="You charged me twice for the same instalment")
    return ticket_id


def test_ending_a_ticket_needs_a_note_and_a_confirmation(env):
    client, s = env
    ticket_id = complaint(s)
    move = f"/api/staff/tickets/{ticket_id}/move"
    no_note = client.post(move, json={"status": "closed", "confirm": True}, headers=bearer("complaints"))
    assert no_note.status_code == 422 and "note" in no_note.json()["detail"]
    unconfirmed = client.post(move, json={"status": "resolved", "note": "refunded"}, headers=bearer("complaints"))
    assert unconfirmed.status_code == 422 and "confirm" in unconfirmed.json()["detail"]
    assert s.features.get("tickets").get(ticket_id).status == "open"
    progress = client.post(move, json={"status": "in_progress"}, headers=bearer("complaints"))
    assert progress.status_code == 200  # a move that does not end the ticket needs neither
    done = client.post(move, json={"status": "resolved", "note": "refunded the double charge", "confirm": True},
                       headers=bearer("complaints"))
    assert done.status_code == 200 and done.json()["status"] == "resolved"
    assert "excerpt" not in done.json()  # the complaint view leaves the conversation out
    assert done.json()["events"][-1]["note"] == "refunded the double charge"


def test_reopen_is_for_complaints_officers_with_a_note(env):
    client, s = env
    ticket_id = complaint(s)
    s.features.get("tickets").update(ticket_id, status="resolved", note="done", actor="staff:test")
    reopen = f"/api/staff/tickets/{ticket_id}/reopen"
    assert client.post(reopen, json={"note": "customer says not fixed"}, headers=bearer("agent")).status_code == 403
    assert client.post(reopen, json={"note": ""}, headers=bearer("complaints")).status_code == 422
    again = client.post(reopen, json={"note": "customer says not fixed"}, headers=bearer("complaints"))
    assert again.status_code == 200 and again.json()["status"] == "in_progress"
    assert client.post(reopen, json={"note": "x"}, headers=bearer("complaints")).status_code == 422  # not ended


def test_page_moves_follow_the_same_rules(env):
    from serve.staff_tickets import reopen_html, update_ticket

    _, s = env
    ticket_id = complaint(s)
    page = update_ticket(s, ticket_id, "closed", False, "", confirmed=True, roles=frozenset({"complaints"}))
    assert "note is needed" in page
    page = update_ticket(s, ticket_id, "closed", False, "settled", confirmed=False, roles=frozenset({"complaints"}))
    assert "confirmation" in page
    page = update_ticket(s, ticket_id, "resolved", False, "settled", confirmed=True, roles=frozenset({"marketer"}))
    assert "only complaints officers" in page
    page = update_ticket(s, ticket_id, "resolved", False, "settled", confirmed=True, roles=frozenset({"complaints"}))
    assert "resolved" in page and "Conversation" not in page  # no loan-form answers in the complaint view
    assert "only complaints officers" in reopen_html(s, ticket_id, "why", "staff:x", frozenset({"qa"}))
    assert "in_progress" in reopen_html(s, ticket_id, "not fixed", "staff:x", frozenset({"complaints"}))
    assert KEYS  # the keys the light app was built with


def test_the_patch_endpoint_follows_the_same_rules_and_view(env):
    client, s = env
    ticket_id = complaint(s)
    patch = f"/api/tickets/{ticket_id}"
    bare = client.patch(patch, json={"status": "closed"}, headers=bearer("complaints"))
    assert bare.status_code == 422 and "note" in str(bare.json())
    unconfirmed = client.patch(patch, json={"status": "closed", "note": "settled"}, headers=bearer("complaints"))
    assert unconfirmed.status_code == 422
    done = client.patch(patch, json={"status": "resolved", "note": "settled", "confirm": True},
                        headers=bearer("complaints"))
    assert done.status_code == 200 and done.json()["status"] == "resolved" and "excerpt" not in done.json()
    shown = client.get(patch, headers=bearer("complaints")).json()
    assert "excerpt" not in shown and shown["id"] == ticket_id
