"""Fast checks of the web app's small parts (no model, no server): tokens and keys, limits,
the turn gate, SSE pieces, compliance highlighting, ticket lines and form hints."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import SecretStr

from assistant.types import Reply
from serve.auth import CustomerTokens, StaffAuth, bearer, identify, key_digest
from serve.forms import form_hint
from serve.limits import Busy, ClientRateLimiter, RateLimited, TurnGate
from serve.openai_compat import pieces
from assistant.timefmt import countdown
from serve.ui import highlight, ticket_line


def test_customer_tokens_cannot_be_forged_or_swapped():
    tokens = CustomerTokens(b"secret")
    customer_id, token = tokens.issue()
    assert tokens.verify(token) == customer_id
    other_id, other = tokens.issue()
    forged = token.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]
    assert tokens.verify(forged) is None
    assert tokens.verify(token.replace(customer_id, other_id)) is None
    assert CustomerTokens(b"another secret").verify(token) is None
    for junk in (None, "", customer_id, "mct_", "mct_.x", "x" * 500):
        assert tokens.verify(junk) is None


def test_staff_keys_are_kept_as_digests():
    auth = StaffAuth([SecretStr("plain-key"), SecretStr(key_digest("digest-key"))])
    assert auth.check("plain-key") and auth.check("digest-key")
    assert not auth.check("wrong") and not auth.check(None) and not auth.check(key_digest("plain-key"))
    assert "plain-key" not in repr(vars(auth))
    assert not StaffAuth([]).check("anything") and not StaffAuth([]).enabled


def test_identify_and_bearer():
    tokens, staff = CustomerTokens(b"s"), StaffAuth([SecretStr("k")])
    customer_id, token = tokens.issue()
    assert identify(staff, tokens, token, "1.2.3.4").customer_id == customer_id
    assert identify(staff, tokens, "k", "1.2.3.4").is_staff
    anonymous = identify(staff, tokens, "nope", "1.2.3.4")
    assert anonymous.kind == "anonymous" and anonymous.client == "ip:1.2.3.4"
    assert bearer("Bearer abc") == "abc" and bearer("Basic abc") is None and bearer("Bearer ") is None


def test_rate_limiter_slides_and_says_when_to_retry():
    now = [1000.0]
    limiter = ClientRateLimiter(3, clock=lambda: now[0])
    for _ in range(3):
        limiter.hit("a")
    with pytest.raises(RateLimited) as refused:
        limiter.hit("a")
    assert 1 <= refused.value.retry_after_s <= 60
    limiter.hit("b")  # another client is not affected
    now[0] += 61
    limiter.hit("a")


def test_turn_gate_queues_then_refuses():
    async def scenario():
        gate = TurnGate(slots=1, queue=1, timeout_s=5, retry_after_s=7)
        first = await gate.acquire()
        waiting = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0.01)
        with pytest.raises(Busy) as busy:
            await gate.acquire()
        assert busy.value.retry_after_s == 7
        first.release()
        first.release()  # idempotent
        second = await waiting
        assert gate.active == 1
        second.release()
        assert gate.active == 0 and gate.waiting == 0

    asyncio.run(scenario())


def test_turn_gate_times_out_with_busy():
    async def scenario():
        gate = TurnGate(slots=1, queue=5, timeout_s=0.05)
        held = await gate.acquire()
        with pytest.raises(Busy):
            await gate.acquire()
        held.release()
        assert gate.waiting == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("text", ["", "a", "two  spaces and\nnew lines " * 5, "没有空格的中文句子" * 4])
def test_stream_pieces_join_to_the_text(text):
    assert "".join(pieces(text)) == text


def test_highlight_marks_findings_and_escapes():
    text = "Guaranteed approval <b>now</b>!"
    findings = [{"span": {"start": 0, "end": 19, "text": "Guaranteed approval"}, "severity": "critical",
                 "rule_id": "no-guarantee", "message": "approval cannot be guaranteed"},
                {"span": None, "severity": "major", "rule_id": "apr", "message": "missing"}]
    out = highlight(text, findings)
    assert out.startswith('<mark class="sev-critical" title="no-guarantee: approval cannot be guaranteed">')
    assert "&lt;b&gt;now&lt;/b&gt;" in out


def test_ticket_line_and_countdown():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert countdown(now + timedelta(days=2, hours=3), now) == "in 2 d 3 h"
    assert countdown(now - timedelta(hours=5), now).startswith("overdue by 5 h")
    line = ticket_line({"id": "C-1", "kind": "complaint", "ack_due": "2026-01-02T00:00:00+00:00",
                        "resolve_due": "2026-01-16T00:00:00+00:00"})
    assert "C-1" in line and "Fri 2 Jan 2026, 00:00 (Coordinated Universal Time, UTC+0)" in line
    assert "Fri 16 Jan 2026, 00:00 (Coordinated Universal Time, UTC+0)" in line
    # the skill's *_local text (the lender's zone) is shown as it is
    local = ticket_line({"id": "C-2", "kind": "complaint", "ack_due": "2026-01-02T00:00:00+00:00",
                         "ack_due_local": "Fri 2 Jan 2026, 08:00 (China Standard Time, UTC+8)",
                         "resolve_due": "2026-01-16T00:00:00+00:00"})
    assert "Fri 2 Jan 2026, 08:00 (China Standard Time, UTC+8)" in local


class _Field:
    def __init__(self, name, kind, choices=None, label="", unit=""):
        self.name, self.kind, self.choices, self.label, self.unit = name, kind, choices, label, unit


def test_form_hint_offers_the_choices_the_form_reads_back():
    fields = lambda: [_Field("purpose", "choice", ["used_car", "furniture"], "Purpose"),  # noqa: E731
                      _Field("employment", "choice", ["unemployed", "1_to_4_years"]), _Field("amount", "number")]
    asking = Reply(text="?", path="form", meta={"eligibility": {"stage": "collect", "asking": "purpose"}})
    assert form_hint(asking, fields)["choices"] == ["used car", "furniture"]
    bands = Reply(text="?", path="form", meta={"eligibility": {"stage": "collect", "asking": "employment"}})
    assert form_hint(bands, fields)["choices"] == ["unemployed"]  # "1 to 4 years" would read as 4 years
    consent = Reply(text="?", path="form", meta={"eligibility": {"stage": "consent"}})
    assert form_hint(consent, fields)["choices"] == ["yes", "no"]
    amount = Reply(text="?", path="form", meta={"eligibility": {"stage": "collect", "asking": "amount"}})
    assert form_hint(amount, fields)["choices"] == []
    assert form_hint(Reply(text="x", path="faq"), fields) is None
    assert form_hint(Reply(text="x", path="tool", meta={"eligibility": {"stage": "done"}}), fields) is None


def test_form_hint_offers_a_clarifying_questions_options():
    reply = Reply(text="(1) ... or (2) ...", path="clarify",
                  meta={"clarify": {"options": ["answer", "complaint"], "best": "answer"}})
    hint = form_hint(reply, list, {"answer": "ask a question", "complaint": "make a complaint"})
    assert hint["choices"] == ["1", "2"] and hint["labels"] == ["ask a question", "make a complaint"]


def test_the_chat_page_says_the_store_is_down_with_the_reference():
    """A write that failed reaches the chat page as the API's message, never "something went wrong".
    The services are stand-ins: the store failure itself is tested for real in test_store_spool."""
    import asyncio
    from types import SimpleNamespace

    from assistant.store.db import StoreUnavailable
    from serve.ui import chat_turn

    class DownChat:
        def conversation(self, customer_id, conversation_id):
            return object()

        async def stream(self, conversation, text, channel):
            async def events():
                raise StoreUnavailable("disk I/O error", reference="CMP-261205-ABC123")
                yield  # an async generator
            return events()

    s = SimpleNamespace(limiter=SimpleNamespace(hit=lambda key: None), chat=DownChat())
    state = {"customer_id": "c1", "conversation_id": "conv1", "traces": {}}

    async def last_history():
        outputs = [out async for out in chat_turn(s, "my repayment was taken twice", [], state)]
        return outputs[-1][0]

    history = asyncio.run(last_history())
    assert history[-1]["content"].startswith("We could not save your message just now.")
    assert history[-1]["content"].endswith("Your reference: CMP-261205-ABC123.")
