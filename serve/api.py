"""REST routes: sessions, chat (JSON or SSE), feedback, cited passages, eligibility, complaints,
tickets, marketing, compliance, QA report, health and metrics."""

from __future__ import annotations

import asyncio
import html
import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Literal

import yaml
from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from markdown_it import MarkdownIt
from starlette.concurrency import run_in_threadpool

from assistant.marketing.drafting import Brief
from assistant.store.db import StoreUnavailable
from assistant.store.idempotency import Claim, IdempotencyStore, KeyReused
from assistant.types import Conversation, Delta, Reply
from serve.auth import Caller
from serve.deps import customer_caller, services, staff_caller
from serve.health import check_all
from serve.limits import watching
from serve.logging import trace_id_var
from serve.metrics import render_metrics
from serve.schemas import (ChatRequest, ChatResponse, ComplianceRequest, ConversationOut, ErrorOut, FeedbackRequest,
                           MessageOut, PassageOut, ReplyOut, SessionOut)
from serve.services import Services

log = logging.getLogger("serve.api")
router = APIRouter()
ERRORS = {code: {"model": ErrorOut} for code in (400, 401, 404, 409, 413, 422, 429, 500, 503)}
SUGGESTIONS_FILE = Path(__file__).with_name("suggestions.yaml")
IDEMPOTENCY_DOC = ("any unique string (e.g. a UUID) per request: a retry with the same key gets the first "
                   "result; the same key with another body is refused (422)")
REPLAYED = {"Idempotent-Replayed": "true"}
PENDING_WAIT_S = 60.0
STORE_DOWN_MESSAGE = ("We could not save your message just now. Nothing was lost on your side: "
                      "please try again in a moment.")


def store_down_message(reference: str | None) -> str:
    """What the customer reads when a write failed: the reference to quote when it was kept."""
    return f"{STORE_DOWN_MESSAGE} Your reference: {reference}." if reference else STORE_DOWN_MESSAGE


# --- sessions and conversations ---------------------------------------------------------------


@router.post("/api/sessions", status_code=201, response_model=SessionOut, responses=ERRORS, tags=["chat"])
def create_session(request: Request, s: Services = Depends(services)) -> SessionOut:
    """Start a customer session: a signed customer token and a new conversation."""
    client = request.client.host if request.client else "unknown"
    s.limiter.hit("sessions:" + client, s.settings.web_sessions_per_minute)
    return open_session(s)


def open_session(s: Services, customer_id: str | None = None) -> SessionOut:
    customer_id, token = s.tokens.issue(customer_id)
    conversation = s.chat.new_conversation(customer_id)
    return SessionOut(customer_id=customer_id, customer_token=token, conversation_id=conversation.id)


def customer_id_of(who: Caller) -> str | None:
    return who.customer_id or (who.client if who.is_staff else None)


@router.get("/api/conversations/{conversation_id}", response_model=ConversationOut, responses=ERRORS, tags=["chat"])
def get_conversation(conversation_id: str, who: Caller = Depends(customer_caller),
                     s: Services = Depends(services)) -> ConversationOut:
    """One of the caller's own conversations (404 for anyone else's)."""
    owner = customer_id_of(who)
    conversation = s.conversations.load(conversation_id, owner) if owner else None
    if conversation is None:
        raise HTTPException(404, "conversation not found")
    from serve.inbox import with_agent_messages  # staff answers are kept apart; merged on read

    return ConversationOut(id=conversation.id, messages=with_agent_messages(s, conversation.id, [
        MessageOut(role=m.role, content=m.content, trace_id=m.meta.get("trace_id"), path=m.meta.get("path"),
                   feedback=(m.meta.get("feedback") or {}).get("rating"))
        for m in conversation.messages
    ]))


# --- chat ---------------------------------------------------------------------------------------


@router.post("/api/chat", response_model=ChatResponse, responses={
    **ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE when stream=true"}},
    tags=["chat"])
async def chat(body: ChatRequest, request: Request, who: Caller = Depends(customer_caller),
               s: Services = Depends(services),
               idempotency_key: str | None = Header(None, max_length=200, description=IDEMPOTENCY_DOC)):
    """One customer message. Without a customer token a new session starts (returned in `session`);
    a conversation id alone never grants access. With an `Idempotency-Key`, a retry gets the first answer."""
    if not idempotency_key:
        return await _chat(body, request, who, s)
    claim = await claim_key(s, "chat", who, idempotency_key, body.model_dump(mode="json"))
    if claim.state == "done":
        return _replay_chat(claim, body.stream)
    try:
        result = await _chat(body, request, who, s, claim)
    except BaseException:
        await run_in_threadpool(idempotency(s).release, claim)
        raise
    if isinstance(result, ChatResponse):
        await run_in_threadpool(idempotency(s).finish, claim, 200, result.model_dump(mode="json"))
    return result


async def _chat(body: ChatRequest, request: Request, who: Caller, s: Services, claim: Claim | None = None):
    conversation, session = await run_in_threadpool(_conversation_for, s, who, body.conversation_id)
    async with watching(request) as abandon:  # a client that hangs up gives its place back at once
        if not body.stream:
            reply = await s.chat.reply(conversation, body.message, channel="api", abandon=abandon)
            return ChatResponse(conversation_id=conversation.id, reply=ReplyOut.of(reply), session=session)
        events = await s.chat.stream(conversation, body.message, channel="api", abandon=abandon)
    return StreamingResponse(_sse(events, conversation, session, _keeper(s, claim)), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _conversation_for(s: Services, who: Caller, conversation_id: str | None) -> tuple[Conversation, SessionOut | None]:
    owner = customer_id_of(who)
    if owner is None:
        if conversation_id:
            raise HTTPException(404, "conversation not found")
        customer_id, token = s.tokens.issue()
        conversation = s.chat.conversation(customer_id, None)
        return conversation, SessionOut(customer_id=customer_id, customer_token=token, conversation_id=conversation.id)
    return s.chat.conversation(owner, conversation_id), None


async def _sse(events: AsyncIterator[Delta | Reply], conversation: Conversation, session: SessionOut | None,
               keep: Callable[[dict[str, Any] | None], Awaitable[None]] | None = None) -> AsyncIterator[str]:
    start = {"conversation_id": conversation.id, "session": session.model_dump() if session else None}
    kept: dict[str, Any] | None = None
    try:
        yield sse_event("session", start)
        try:
            async for event in events:
                if isinstance(event, Delta):
                    yield sse_event("delta", {"text": event.text})
                else:
                    out = ReplyOut.of(event)
                    kept = ChatResponse(conversation_id=conversation.id, reply=out, session=session).model_dump(
                        mode="json")
                    yield sse_event("reply", out.model_dump(mode="json"))
        except StoreUnavailable as exc:
            yield sse_event("error", {"type": "store_unavailable", "message": store_down_message(exc.reference),
                                      "reference": exc.reference, "retry_after_s": exc.retry_after_s,
                                      "request_id": request_id()})
        except Exception as exc:  # the status line is gone already: report in the stream
            log.exception("streamed turn failed")
            yield sse_event("error", {"type": "internal_error", "message": "the assistant failed on this message",
                                      "detail": type(exc).__name__, "request_id": request_id()})
        yield sse_event("done", {})
    finally:
        if keep is not None:
            await keep(kept)


def _keeper(s: Services, claim: Claim | None):
    """After a streamed turn with an idempotency key: keep its answer for retries, or free the key."""
    if claim is None:
        return None

    async def keep(result: dict[str, Any] | None) -> None:
        store = idempotency(s)
        if result is None:
            await run_in_threadpool(store.release, claim)
        else:
            await run_in_threadpool(store.finish, claim, 200, result)
    return keep


def _replay_chat(claim: Claim, stream: bool) -> Response:
    if claim.status != 200 or not stream:
        return JSONResponse(claim.response, status_code=claim.status, headers=REPLAYED)
    first = ChatResponse.model_validate(claim.response)

    async def events() -> AsyncIterator[str]:
        yield sse_event("session", {"conversation_id": first.conversation_id,
                                    "session": first.session.model_dump() if first.session else None})
        yield sse_event("reply", first.reply.model_dump(mode="json"))
        yield sse_event("done", {})
    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", **REPLAYED})


# --- idempotency keys ---------------------------------------------------------------------------

def idempotency(s: Services) -> IdempotencyStore:
    store = s.extras.get("idempotency")
    if store is None:
        store = s.extras["idempotency"] = IdempotencyStore(s.settings)
    return store


async def claim_key(s: Services, scope: str, who: Caller, key: str, body: Any) -> Claim:
    """Claim `key` for this caller, or wait for the attempt that holds it (409 if it runs too long);
    422 when the key came before with another body."""
    if not key.strip():
        raise HTTPException(422, "Idempotency-Key must not be blank")
    caller = customer_id_of(who) or who.client
    waited = 0.0
    while True:
        try:
            claim = await run_in_threadpool(idempotency(s).begin, scope, caller, key, body)
        except KeyReused as exc:
            raise HTTPException(422, str(exc)) from exc
        if claim.state != "pending":
            return claim
        if waited >= PENDING_WAIT_S:
            raise HTTPException(409, "a request with this Idempotency-Key is still running; retry shortly",
                                headers={"Retry-After": "5"})
        await asyncio.sleep(0.5)
        waited += 0.5


def request_id() -> str:
    return trace_id_var.get()


def sse_event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.post("/api/feedback", status_code=204, responses=ERRORS, tags=["chat"])
def feedback(body: FeedbackRequest, who: Caller = Depends(customer_caller), s: Services = Depends(services)):
    """Thumbs up or down on one reply of the caller's own conversation."""
    owner = customer_id_of(who)
    if owner is None:
        raise HTTPException(404, "conversation not found")
    s.chat.feedback(owner, body.conversation_id, body.trace_id, body.rating, body.comment)
    return Response(status_code=204)


@router.get("/api/suggestions", response_model=list[str], tags=["chat"])
def suggestions(lang: str = Query("en", pattern=r"^[a-zA-Z\-]{2,12}$")) -> list[str]:
    """Suggested first questions for the chat page and the widget."""
    return suggested_questions(lang)


def suggested_questions(lang: str = "en") -> list[str]:
    table = _suggestions()
    return list(table.get(lang.split("-")[0].lower()) or table.get("en") or [])


@lru_cache(maxsize=1)
def _suggestions() -> dict[str, list[str]]:
    return yaml.safe_load(SUGGESTIONS_FILE.read_text(encoding="utf-8")) or {}


# --- cited passages -----------------------------------------------------------------------------


def _passage(s: Services, chunk_id: str) -> PassageOut:
    chunk = s.kb.chunk(chunk_id) if len(chunk_id) <= 300 else None
    if chunk is None:
        raise HTTPException(404, "passage not found")
    return PassageOut(chunk_id=chunk.id, doc_id=chunk.doc_id, title=chunk.title, section=chunk.section,
                      text=chunk.text, type=chunk.type, product=chunk.product, version=chunk.version,
                      effective_date=chunk.effective_date, source=chunk.source)


@router.get("/api/kb/chunks/{chunk_id:path}", response_model=PassageOut, responses=ERRORS, tags=["knowledge"])
def passage_json(chunk_id: str, s: Services = Depends(services)) -> PassageOut:
    """A cited passage, as data."""
    return _passage(s, chunk_id)


@router.get("/kb/chunks/{chunk_id:path}", response_class=HTMLResponse, responses=ERRORS, tags=["knowledge"])
def passage_page(chunk_id: str, s: Services = Depends(services)) -> HTMLResponse:
    """A cited passage, as a page (what citation links open)."""
    p = _passage(s, chunk_id)
    body = _MARKDOWN.render(p.text.partition("\n")[2] if p.type == "faq" else p.text)
    esc = html.escape
    return HTMLResponse(PASSAGE_PAGE.format(
        title=esc(p.title), section=esc(p.section), body=body, doc_id=esc(p.doc_id), version=esc(p.version),
        effective=esc(p.effective_date), source=esc(p.source)))


_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
PASSAGE_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{section} - {title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1f2933}}
h1{{font-size:1.1rem;color:#52606d;font-weight:500}}h2{{font-size:1.4rem}}.meta{{color:#7b8794;font-size:.85rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #cbd2d9;padding:.25rem .5rem}}</style></head>
<body><article class="passage"><h1>{title}</h1><h2>{section}</h2>{body}
<p class="meta">Document <code>{doc_id}</code> · version {version} · effective {effective} · {source}</p>
</article></body></html>"""


# --- eligibility, complaints, tickets -----------------------------------------------------------


@router.post("/api/eligibility", responses=ERRORS, tags=["eligibility"])
async def eligibility(applicant: dict[str, Any] = Body(..., examples=[{"product": "cash", "age": 30}]),
                      who: Caller = Depends(customer_caller), s: Services = Depends(services)) -> JSONResponse:
    """Score an applicant with the scoring tool: decision, reason codes, indicative offer.
    The fields are those of the scorecard (GET /api/eligibility/fields)."""
    from assistant.scoring.applicant import ApplicantError
    from assistant.scoring.client import ScoringUnavailable

    client = s.features.get("scoring")
    try:
        decision = await run_in_threadpool(client.score, applicant)
    except ApplicantError as exc:
        return JSONResponse({"error": {"type": "invalid_applicant", "message": "invalid applicant",
                                       "details": exc.to_dict().get("fields", [])}}, status_code=422)
    except ScoringUnavailable as exc:
        return JSONResponse({"error": {"type": "scoring_unavailable", "message": str(exc)}}, status_code=503,
                            headers={"Retry-After": "10"})
    hidden = set() if who.is_staff else CUSTOMER_HIDDEN_DECISION_FIELDS
    return JSONResponse(decision.model_dump(mode="json", exclude=hidden))


CUSTOMER_HIDDEN_DECISION_FIELDS = {"probability_of_default"}  # for staff and logs, never for customers


@router.get("/api/eligibility/fields", tags=["eligibility"])
def eligibility_fields(s: Services = Depends(services)) -> JSONResponse:
    """The scorecard's version and the applicant fields it asks for."""
    return JSONResponse(s.features.get("scoring").info().model_dump(mode="json"))


# --- staff: compliance, marketing, QA -----------------------------------------------------------


@router.post("/api/compliance/check", responses=ERRORS, tags=["marketing"])
def compliance_check(body: ComplianceRequest, _: Caller = Depends(staff_caller),
                     s: Services = Depends(services)) -> JSONResponse:
    """Check marketing copy against the compliance rule pack (staff)."""
    checker = s.features.get("compliance")
    try:
        report = checker.check_copy(body.text, product=body.product, channel=body.channel)
    except (KeyError, ValueError) as exc:
        raise HTTPException(422, str(exc).strip("'\"")) from exc
    return JSONResponse(report.model_dump(mode="json"))


@router.post("/api/marketing/drafts", responses=ERRORS, tags=["marketing"])
async def marketing_drafts(brief: Brief, export: Literal["json", "markdown", "csv"] = Query("json"),
                           _: Caller = Depends(staff_caller), s: Services = Depends(services)) -> Response:
    """Draft copy variants for a brief, each checked against the compliance rules (staff).
    `export=markdown|csv` returns the review file instead of JSON."""
    from assistant.marketing.drafting import BriefError, to_csv, to_markdown

    studio = s.features.get("marketing")
    lease = await s.gate.acquire()  # drafting uses the LLM: same bound as chat turns
    try:
        drafts = await run_in_threadpool(studio.draft, brief)
    except BriefError as exc:
        raise HTTPException(422, str(exc)) from exc
    finally:
        lease.release()
    if export == "markdown":
        return Response(to_markdown(drafts), media_type="text/markdown; charset=utf-8")
    if export == "csv":
        return Response(to_csv(drafts), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="drafts.csv"'})
    return JSONResponse(drafts.model_dump(mode="json"))


@router.get("/api/qa/report", response_class=HTMLResponse, responses=ERRORS, tags=["qa"])
def qa_report(_: Caller = Depends(staff_caller), s: Services = Depends(services)) -> HTMLResponse:
    """The latest eval report (reports/*/report.html), staff only."""
    report = latest_report(s.settings.reports_path)
    if report is None:
        raise HTTPException(404, "no eval report yet: run `assistant eval`")
    return HTMLResponse(report.read_text(encoding="utf-8", errors="replace"))


def latest_report(reports_dir: Path) -> Path | None:
    found = sorted(reports_dir.glob("*/report.html"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


# --- health and metrics -------------------------------------------------------------------------


@router.get("/healthz", tags=["ops"])
async def healthz(s: Services = Depends(services)) -> JSONResponse:
    """LLM, Chroma and store reachable from this worker: 200, else 503."""
    result = await run_in_threadpool(check_all, s)
    return JSONResponse(result, status_code=200 if result["status"] == "ok" else 503)


@router.get("/metrics", tags=["ops"], response_class=Response)
def metrics() -> Response:
    """Prometheus metrics: requests, latency per stage, path taken, tokens, guard counters."""
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
