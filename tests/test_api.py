"""The web API on a real server (`assistant serve` on a loopback port) with the real model and index.

One server for the module, started with small limits so 429 and 503 can be provoked:
one turn at a time with one waiting (web_turn_slots=1, web_turn_queue=1), 30 requests a minute
per customer. Questions mostly take the FAQ path, so turns are fast."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
import yaml

from conftest_web import STAFF_KEY, STAFF_KEY_2, auth, new_session, prepared_data_dir, running_server
from serve.auth import key_digest

pytestmark = pytest.mark.slow

FAQ_QUESTION = "What is the APR of Meadow Cash?"
REQUESTS_PER_MINUTE = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_cache):
    data = prepared_data_dir(tmp_path_factory, model_cache, "api")
    with running_server(data, staff_api_keys=[STAFF_KEY, key_digest(STAFF_KEY_2)],
                        web_turn_slots=1, web_turn_queue=1, web_queue_timeout_s=120,
                        web_requests_per_minute=REQUESTS_PER_MINUTE, web_sessions_per_minute=200,
                        allowed_origins=["https://shop.example"], widget_origins=["https://shop.example"]) as srv:
        yield srv


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


@pytest.fixture
def customer(server):
    return new_session(server.url)


def chat(client, token: str | None, message: str, conversation_id: str | None = None, **extra) -> httpx.Response:
    body = {"message": message, **({"conversation_id": conversation_id} if conversation_id else {}), **extra}
    return client.post("/api/chat", json=body, headers=auth(token) if token else {})


# --- health, docs, metrics ---------------------------------------------------------------------


def test_healthz_checks_llm_chroma_and_store(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert {"llm", "chroma", "store"} <= set(body["checks"])
    assert body["checks"]["chroma"]["chunks"] > 100


def test_openapi_docs_list_every_endpoint(client):
    assert client.get("/docs").status_code == 200
    paths = set(client.get("/openapi.json").json()["paths"])
    for path in ["/v1/chat/completions", "/api/chat", "/api/eligibility", "/api/complaints", "/api/tickets",
                 "/api/marketing/drafts", "/api/compliance/check", "/healthz", "/metrics", "/api/sessions"]:
        assert path in paths, path


def test_metrics_count_requests_stages_and_paths(client, customer):
    chat(client, customer["customer_token"], FAQ_QUESTION, customer["conversation_id"])
    text = client.get("/metrics").text
    assert 'assistant_http_requests_total{method="POST",route="/api/chat",status="200"}' in text
    assert 'assistant_turn_stage_seconds_bucket{le="0.005",stage="retrieve"}' in text
    assert re.search(r'assistant_turns_total\{channel="api",intent="\w+",path="faq"\}', text)


# --- chat ---------------------------------------------------------------------------------------


def test_chat_answers_with_a_citation_that_opens_the_passage(client, customer):
    response = chat(client, customer["customer_token"], FAQ_QUESTION, customer["conversation_id"])
    assert response.status_code == 200, response.text
    reply = response.json()["reply"]
    assert "9.9%" in reply["text"] and reply["path"] == "faq"
    citation = reply["citations"][0]
    assert citation["url"].startswith("/kb/chunks/")
    page = client.get(citation["url"])
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert citation["section"] in page.text and "9.9%" in page.text
    data = client.get("/api/kb/chunks/" + citation["chunk_id"].replace("#", "%23")).json()
    assert data["doc_id"] == citation["doc_id"]


def test_chat_without_a_token_starts_a_session_and_continues_it(client):
    first = chat(client, None, FAQ_QUESTION).json()
    session = first["session"]
    assert session["customer_token"].startswith("mct_") and first["conversation_id"] == session["conversation_id"]
    second = chat(client, session["customer_token"], "How much is the late fee?", first["conversation_id"])
    assert second.status_code == 200 and second.json()["session"] is None
    history = client.get(f"/api/conversations/{first['conversation_id']}", headers=auth(session["customer_token"]))
    assert [m["role"] for m in history.json()["messages"]] == ["user", "assistant", "user", "assistant"]


def test_chat_streams_server_sent_events(client, customer):
    events = []
    with client.stream("POST", "/api/chat", headers=auth(customer["customer_token"]),
                       json={"message": FAQ_QUESTION, "conversation_id": customer["conversation_id"],
                             "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    names = [n for n, _ in events]
    assert names[0] == "session" and names[-2:] == ["reply", "done"]
    reply = dict(events)["reply"]
    assert reply["citations"] and reply["trace_id"].startswith("tr_")


def test_feedback_is_stored_on_the_reply(client, customer):
    token, conversation_id = customer["customer_token"], customer["conversation_id"]
    reply = chat(client, token, FAQ_QUESTION, conversation_id).json()["reply"]
    response = client.post("/api/feedback", headers=auth(token),
                           json={"conversation_id": conversation_id, "trace_id": reply["trace_id"], "rating": "down"})
    assert response.status_code == 204
    messages = client.get(f"/api/conversations/{conversation_id}", headers=auth(token)).json()["messages"]
    assert messages[-1]["feedback"] == "down"


def test_suggested_questions_are_faq_questions(client):
    suggestions = client.get("/api/suggestions").json()
    headings = set()
    for path in Path("knowledge_base/faqs").glob("*.md"):
        headings |= {line[3:].strip() for line in path.read_text().splitlines() if line.startswith("## ")}
    table = yaml.safe_load(Path("serve/suggestions.yaml").read_text())
    assert suggestions == table["en"]
    assert set(suggestions[:-1]) <= headings


# --- OpenAI-compatible endpoint -----------------------------------------------------------------


def test_openai_client_gets_a_completion_with_citations(server, customer):
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key=customer["customer_token"], max_retries=0)
    completion = client.chat.completions.create(
        model="meadow-assistant", messages=[{"role": "user", "content": FAQ_QUESTION}])
    assert "9.9%" in completion.choices[0].message.content
    meadow = completion.model_extra["meadow"]
    assert meadow["path"] == "faq" and meadow["citations"][0]["doc_id"]
    assert [m.id for m in client.models.list().data] == ["meadow-assistant"]


def test_openai_client_streams(server, customer):
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key=customer["customer_token"], max_retries=0)
    stream = client.chat.completions.create(
        model="meadow-assistant", stream=True,
        messages=[{"role": "user", "content": "What does Meadow Cash cost?"}, {"role": "assistant", "content": "…"},
                  {"role": "user", "content": FAQ_QUESTION}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) >= 3 and "9.9%" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["meadow"]["text"] == text


def test_openai_endpoint_rejects_a_conversation_not_ending_with_the_user(client, customer):
    response = client.post("/v1/chat/completions", headers=auth(customer["customer_token"]),
                           json={"model": "m", "messages": [{"role": "assistant", "content": "hi"}]})
    assert response.status_code == 422 and response.json()["error"]["type"] == "invalid_request"


# --- sessions: nobody reads another customer's conversation -------------------------------------


def test_one_customer_cannot_read_or_continue_anothers_conversation(client, server):
    alice, bob = new_session(server.url), new_session(server.url)
    chat(client, alice["customer_token"], "My phone is 13812345678, what is the late fee?", alice["conversation_id"])
    theirs = f"/api/conversations/{alice['conversation_id']}"
    assert client.get(theirs, headers=auth(bob["customer_token"])).status_code == 404
    assert client.get(theirs).status_code == 404  # no token at all
    forged = alice["customer_token"][:-4] + "AAAA"
    assert client.get(theirs, headers=auth(forged)).status_code == 404
    assert client.get(theirs, headers=auth(alice["customer_id"])).status_code == 404
    assert chat(client, bob["customer_token"], "hello", alice["conversation_id"]).status_code == 404
    assert chat(client, None, "hello", alice["conversation_id"]).status_code == 404
    feedback = client.post("/api/feedback", headers=auth(bob["customer_token"]),
                           json={"conversation_id": alice["conversation_id"], "trace_id": "tr_x", "rating": "up"})
    assert feedback.status_code == 404
    mine = client.get(theirs, headers=auth(alice["customer_token"]))
    assert mine.status_code == 200 and len(mine.json()["messages"]) == 2


def test_one_customer_cannot_see_anothers_tickets(client, server):
    alice, bob = new_session(server.url), new_session(server.url)
    filed = client.post("/api/complaints", headers=auth(alice["customer_token"]), json={
        "text": "I was charged a late fee although I paid on time. Please refund it.",
        "conversation_id": alice["conversation_id"]})
    assert filed.status_code == 201, filed.text
    ticket = filed.json()
    assert ticket["id"] and ticket["deadline"]
    assert [t["id"] for t in client.get("/api/tickets", headers=auth(alice["customer_token"])).json()] == [ticket["id"]]
    assert client.get("/api/tickets", headers=auth(bob["customer_token"])).json() == []
    assert client.get(f"/api/tickets/{ticket['id']}", headers=auth(bob["customer_token"])).status_code == 404
    assert client.get(f"/api/tickets/{ticket['id']}").status_code in (401, 404)
    assert client.patch(f"/api/tickets/{ticket['id']}", headers=auth(alice["customer_token"]),
                        json={"status": "closed"}).status_code == 401
    staff_view = client.get("/api/tickets", headers=auth(STAFF_KEY)).json()
    assert ticket["id"] in [t["id"] for t in staff_view]


def test_a_retried_complaint_with_an_idempotency_key_files_one_ticket(client, customer):
    headers = {**auth(customer["customer_token"]), "Idempotency-Key": "api-test-complaint-1"}
    body = {"text": "You charged me a late fee twice for the same installment of my Meadow Cash loan.",
            "conversation_id": customer["conversation_id"]}
    first, again = client.post("/api/complaints", headers=headers, json=body), \
        client.post("/api/complaints", headers=headers, json=body)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    other = client.post("/api/complaints", headers=headers, json={**body, "text": body["text"] + " Again."})
    assert other.status_code == 422
    mine = client.get("/api/tickets", headers=auth(customer["customer_token"])).json()
    assert [t["id"] for t in mine] == [first.json()["id"]]


def test_ten_parallel_messages_to_one_conversation_are_all_kept_in_order(server, customer):
    """One turn slot and one queue place (this server's limits): the conversation's own lock queues
    the other eight, so none is refused and none overwrites another."""
    questions = ["What is the APR of Meadow Cash?", "How much is the late fee?", "Is there an annual fee?",
                 "What documents do I need to apply?", "Is there an early repayment fee?",
                 "How do I make a complaint to Meadow?", "Can I make a partial early repayment?",
                 "How long does it take to get a decision?", "How do I reset my Meadow app password?",
                 "Is there a fee for paying off Meadow Cash early?"]
    headers = auth(customer["customer_token"])

    async def send_all():
        async with httpx.AsyncClient(base_url=server.url, timeout=600) as c:
            return await asyncio.gather(*[c.post("/api/chat", headers=headers, json={
                "message": q, "conversation_id": customer["conversation_id"]}) for q in questions])

    answers = asyncio.run(send_all())
    assert [a.status_code for a in answers] == [200] * 10, [a.text[:200] for a in answers]
    kept = httpx.get(f"{server.url}/api/conversations/{customer['conversation_id']}", headers=headers).json()
    messages = kept["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 10
    assert sorted(m["content"] for m in messages[0::2]) == sorted(questions)
    replies = {a.json()["reply"]["trace_id"]: a for a in answers}
    for user, assistant in zip(messages[0::2], messages[1::2]):  # each reply right after its own question
        assert json.loads(replies[assistant["trace_id"]].request.content)["message"] == user["content"]


# --- staff auth -----------------------------------------------------------------------------------


COPY = {"text": "Meadow Cash: borrow today, guaranteed approval!", "product": "cash", "channel": "sms"}


def test_staff_endpoints_need_a_staff_key(client, server, customer):
    assert client.post("/api/compliance/check", json=COPY).status_code == 401
    assert client.post("/api/compliance/check", json=COPY, headers=auth("wrong-key")).status_code == 401
    assert client.post("/api/compliance/check", json=COPY, headers=auth(customer["customer_token"])).status_code == 401
    for key in (STAFF_KEY, STAFF_KEY_2):  # a plain key and one configured as its SHA-256 digest
        response = client.post("/api/compliance/check", json=COPY, headers=auth(key))
        assert response.status_code == 200, response.text
        assert response.json()["passed"] is False
    assert STAFF_KEY not in server.log() and STAFF_KEY_2 not in server.log()


def test_staff_pages_need_a_login(client):
    assert client.get("/staff/config").status_code == 401
    assert client.get("/chat/config").status_code == 200
    login = client.post("/staff/login", data={"username": "staff", "password": "wrong"})
    assert login.status_code == 400
    with httpx.Client(base_url=str(client.base_url), timeout=60) as staff:
        ok = staff.post("/staff/login", data={"username": "anyone", "password": STAFF_KEY})
        assert ok.status_code == 200
        assert staff.get("/staff/config").status_code == 200


# --- limits -----------------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(client, customer):
    path = f"/api/conversations/{customer['conversation_id']}"
    statuses = [client.get(path, headers=auth(customer["customer_token"])).status_code
                for _ in range(REQUESTS_PER_MINUTE + 2)]
    assert statuses[0] == 200 and statuses[-1] == 429
    refused = client.get(path, headers=auth(customer["customer_token"]))
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["error"]["type"] == "rate_limited"


def test_busy_model_answers_503_with_retry_after_not_a_hang(server):
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=180) as c:
            sessions = [(await c.post("/api/sessions")).json() for _ in range(6)]
            return await asyncio.gather(*[
                c.post("/api/chat", headers=auth(s["customer_token"]),
                       json={"message": "Tell me about the Meadow Flex credit line", "conversation_id":
                             s["conversation_id"]}) for s in sessions])

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert int(busy.headers["Retry-After"]) > 0 and busy.json()["error"]["type"] == "busy"


def test_bad_input_gets_a_4xx_json_error(client, customer):
    token = auth(customer["customer_token"])
    cases = [
        client.post("/api/chat", content=b"{not json", headers={**token, "content-type": "application/json"}),
        client.post("/api/chat", json={}, headers=token),
        client.post("/api/chat", json={"message": ""}, headers=token),
        client.post("/api/chat", json={"message": 42}, headers=token),
        client.post("/api/chat", json={"message": "hi", "surprise": 1}, headers=token),
        client.post("/api/chat", json={"message": "hi", "conversation_id": "../../etc"}, headers=token),
        client.post("/api/chat", json={"message": "x" * 70000}, headers=token),
        client.post("/v1/chat/completions", json={"messages": []}, headers=token),
        client.post("/api/feedback", json={"conversation_id": "c", "trace_id": "t", "rating": "meh"}, headers=token),
        client.get("/no/such/page"),
        client.get("/kb/chunks/no-such-chunk"),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, (response.request.url, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]["message"]
        assert response.json()["request_id"] == response.headers["x-request-id"] != ""
    assert cases[6].status_code == 413


def test_cors_allows_only_the_configured_origins(client):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = client.options("/api/chat", headers={"Origin": "https://shop.example", **preflight})
    assert allowed.headers.get("access-control-allow-origin") == "https://shop.example"
    other = client.options("/api/chat", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers


# --- logs -----------------------------------------------------------------------------------------


def test_logs_are_json_with_a_trace_id_per_turn_and_no_pii(client, server, customer):
    reply = chat(client, customer["customer_token"], "My card 4111 1111 1111 1111 was charged twice, why?",
                 customer["conversation_id"]).json()["reply"]
    records = server.log_records()
    turns = [r for r in records if r.get("msg") == "turn" and r.get("trace_id") == reply["trace_id"]]
    assert len(turns) == 1 and turns[0]["conversation_id"] == customer["conversation_id"]
    assert any(r.get("msg") == "request" and r.get("trace_id", "").startswith("rq_") for r in records)
    assert "4111 1111 1111 1111" not in server.log() and "13812345678" not in server.log()


# --- eligibility --------------------------------------------------------------------------------


APPLICANT = {"product": "cash", "amount": 20000, "term_months": 12, "purpose": "furniture",
             "employment": "4_to_7_years", "housing": "rent", "savings": 5000, "age": 35,
             "monthly_income": 12000, "consent": True}


def test_eligibility_scores_an_applicant_and_names_each_bad_field(client, customer):
    fields = {f["name"] for f in client.get("/api/eligibility/fields").json()["fields"]}
    assert {"amount", "term_months", "consent"} <= fields
    decision = client.post("/api/eligibility", json=APPLICANT, headers=auth(customer["customer_token"]))
    assert decision.status_code == 200, decision.text
    assert decision.json()["decision"] and "reasons" in decision.json()
    assert "probability_of_default" not in decision.json()  # for staff only
    staff_view = client.post("/api/eligibility", json=APPLICANT, headers=auth(STAFF_KEY)).json()
    assert "probability_of_default" in staff_view
    bad = client.post("/api/eligibility", json={**APPLICANT, "age": 300, "purpose": "yacht"},
                      headers=auth(customer["customer_token"]))
    assert bad.status_code == 422
    assert {d["field"] for d in bad.json()["error"]["details"]} >= {"age", "purpose"}


# --- skills reached through the chat: hand-off, complaint, eligibility form -----------------------


def test_talk_to_a_person_opens_a_handoff_ticket(client, customer):
    reply = chat(client, customer["customer_token"], "I'd like to talk to a person, please.",
                 customer["conversation_id"]).json()["reply"]
    assert reply["intent"] == "handoff" and reply["ticket"]["kind"] == "handoff", reply
    assert reply["ticket"]["id"] in reply["text"]
    mine = client.get("/api/tickets", headers=auth(customer["customer_token"])).json()
    assert reply["ticket"]["id"] in [t["id"] for t in mine]


def test_a_complaint_in_the_chat_is_acknowledged_with_its_ticket_and_deadlines(client, customer):
    reply = chat(client, customer["customer_token"],
                 "I want to complain: you charged me a late fee twice for the same installment and nobody answers.",
                 customer["conversation_id"]).json()["reply"]
    assert reply["intent"] == "complaint" and reply["path"] == "ticket", reply
    ticket = reply["ticket"]
    assert ticket["id"] in reply["text"] and ticket["ack_due"] and ticket["resolve_due"]


def test_the_eligibility_form_runs_through_the_chat_with_quick_replies(client, customer):
    token, conversation_id = customer["customer_token"], customer["conversation_id"]
    reply = chat(client, token, "Am I eligible for a Meadow Cash loan?", conversation_id).json()["reply"]
    assert reply["intent"] == "eligibility" and reply["form"] and reply["form"]["field"], reply
    for _ in range(12):  # answer each question: a choice when offered, else a plausible figure
        form = reply["form"]
        if not form:
            break
        answer = form["choices"][0] if form["choices"] else FORM_ANSWERS.get(form["field"], "30")
        if form["stage"] == "consent":
            answer = "yes"
        reply = chat(client, token, answer, conversation_id).json()["reply"]
    assert reply["path"] == "tool" and reply["form"] is None, reply
    assert reply["tool_calls"] and reply["tool_calls"][0]["name"]


FORM_ANSWERS = {"amount": "20000 CNY", "term_months": "12 months", "savings": "5000", "age": "35",
                "monthly_income": "12000 CNY a month", "employment": "5 years"}
