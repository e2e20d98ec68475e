"""The Gradio pages: the customer chat (mounted at /chat) and the staff pages (mounted at /staff,
behind a login whose password is a staff API key). Both call the same services as the API."""

from __future__ import annotations

import html
import json
import logging
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.concurrency import run_in_threadpool

from assistant.config import PROJECT_ROOT
from assistant.types import Delta, Reply
from serve.api import latest_report, open_session, suggested_questions
from serve.chat import NotFound
from serve.limits import Busy, RateLimited
from serve.schemas import passage_url
from serve.services import Services

log = logging.getLogger("serve.ui")
HANDOFF_MESSAGE = "I'd like to talk to a person, please."

CSS = """
#meadow-chat {min-height: 320px}
.suggestions button {font-size: .85rem}
.ticket-card {border-left: 4px solid #2f855a; padding: .5rem .75rem; background: #f0fff4; border-radius: 6px}
mark.sev-critical {background: #fed7d7} mark.sev-major {background: #feebc8} mark.sev-minor {background: #fefcbf}
@media (max-width: 640px) {
  .gradio-container {padding: 4px !important}
  #meadow-chat {height: 60vh !important}
  .suggestions {flex-wrap: wrap}
}
"""


# --- customer chat --------------------------------------------------------------------------------


def build_customer_ui(s: Services) -> gr.Blocks:
    with gr.Blocks(title="Meadow assistant", fill_height=True, analytics_enabled=False) as demo:
        session = gr.State(None)
        gr.Markdown("### Meadow Consumer Finance — ask us anything about your loan\n"
                    "Answers come from Meadow's own documents; each one links to the passage it cites.")
        chatbot = gr.Chatbot(elem_id="meadow-chat", label="Conversation", height=460, render_markdown=True,
                             feedback_options=("Like", "Dislike"), buttons=["copy"], autoscroll=True)
        ticket = gr.Markdown(visible=False, elem_id="ticket", elem_classes=["ticket-card"])
        with gr.Row(equal_height=True):
            message = gr.Textbox(placeholder="Type your question…", show_label=False, scale=5, lines=1,
                                 max_lines=4, elem_id="message", max_length=s.settings.max_message_chars)
            send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="send")
        with gr.Row(elem_classes=["suggestions"]):
            suggestion_buttons = [gr.Button(q, size="sm", elem_classes=["suggestion"])
                                  for q in suggested_questions("en")]
        person = gr.Button("Talk to a person", size="sm", elem_id="handoff")

        async def respond(text: str, history: list, state: dict | None, request: gr.Request | None = None):
            async for update in chat_turn(s, text, history, state, request):
                yield update

        async def respond_fixed(button_text: str, history: list, state: dict | None,
                                request: gr.Request | None = None):
            async for update in chat_turn(s, button_text, history, state, request):
                yield update

        async def talk_to_person(history: list, state: dict | None, request: gr.Request | None = None):
            async for update in chat_turn(s, HANDOFF_MESSAGE, history, state, request):
                yield update

        outputs = [chatbot, message, session, ticket]
        send.click(respond, [message, chatbot, session], outputs, api_visibility="private")
        message.submit(respond, [message, chatbot, session], outputs, api_visibility="private")
        for button in suggestion_buttons:
            button.click(respond_fixed, [button, chatbot, session], outputs, api_visibility="private")
        person.click(talk_to_person, [chatbot, session], outputs, api_visibility="private")
        def on_like(state: dict | None, data: gr.LikeData) -> None:
            record_feedback(s, state, data)

        chatbot.like(on_like, [session], None, api_visibility="private")
    return demo


async def chat_turn(s: Services, text: str, history: list | None, state: dict | None, request: Any = None):
    """One turn for the chat page: yields (history, textbox, state, ticket) updates while streaming."""
    history = list(history or [])
    text = (text or "").strip()
    if not text:
        yield history, gr.update(), state, gr.update()
        return
    if state is None:
        session = await run_in_threadpool(open_session, s)
        state = {"customer_id": session.customer_id, "conversation_id": session.conversation_id, "traces": {}}
    history += [{"role": "user", "content": text}, {"role": "assistant", "content": "…"}]
    yield history, "", state, gr.update()
    try:
        s.limiter.hit(state["customer_id"])
        conversation = await run_in_threadpool(s.chat.conversation, state["customer_id"], state["conversation_id"])
        events = await s.chat.stream(conversation, text, channel="web")
    except RateLimited as exc:
        history[-1]["content"] = f"You're sending messages quickly. Please wait {exc.retry_after_s} s and try again."
        yield history, gr.update(), state, gr.update()
        return
    except Busy as exc:
        history[-1]["content"] = f"We're very busy right now. Please try again in {exc.retry_after_s} s."
        yield history, gr.update(), state, gr.update()
        return
    except NotFound:
        state = None
        history[-1]["content"] = "Your session has expired. Please send your message again."
        yield history, gr.update(), state, gr.update()
        return
    draft = ""
    try:
        async for event in events:
            if isinstance(event, Delta):
                draft += event.text
                history[-1]["content"] = draft
                yield history, gr.update(), state, gr.update()
            elif isinstance(event, Reply):
                history[-1]["content"] = render_reply(event)
                state["traces"][str(len(history) - 1)] = event.trace_id
                yield history, gr.update(), state, ticket_update(event)
    except Exception:
        log.exception("chat page turn failed")
        history[-1]["content"] = "Sorry, something went wrong on our side. Please try again."
        yield history, gr.update(), state, gr.update()


def render_reply(reply: Reply) -> str:
    """The reply's text, then its citations as links that open the cited passage."""
    text = reply.text
    if reply.citations:
        links = [f"[{i}] [{_md(c.title)} — {_md(c.section)}]({passage_url(c.chunk_id)})"
                 for i, c in enumerate(reply.citations, 1) if c.chunk_id]
        text += "\n\n**Sources:** " + " · ".join(links)
    if reply.ticket:
        text += "\n\n" + ticket_line(reply.ticket)
    return text


def _md(text: str) -> str:
    return text.replace("[", "(").replace("]", ")")


def ticket_line(ticket: dict[str, Any]) -> str:
    ticket_id = ticket.get("id") or ticket.get("ticket_id") or "?"
    deadline = ticket.get("deadline") or ticket.get("due_at") or ticket.get("sla_deadline")
    line = f"🎫 Ticket **{ticket_id}**"
    if deadline:
        line += f" — we will reply by **{_when(deadline)}** ({countdown(deadline)})"
    return line


def ticket_update(reply: Reply):
    if not reply.ticket:
        return gr.update()
    return gr.update(value=ticket_line(reply.ticket), visible=True)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _when(value: Any) -> str:
    moment = _parse_time(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else str(value)


def countdown(value: Any, now: datetime | None = None) -> str:
    moment = _parse_time(value)
    if moment is None:
        return ""
    seconds = (moment - (now or datetime.now(timezone.utc))).total_seconds()
    sign, seconds = ("overdue by " if seconds < 0 else "in "), abs(seconds)
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return sign + (f"{days} d {hours} h" if days else f"{hours} h {rest // 60} min")


def record_feedback(s: Services, state: dict | None, data: gr.LikeData) -> None:
    if not state:
        return
    index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
    trace_id = state.get("traces", {}).get(str(index))
    if not trace_id:
        return
    liked = data.liked
    rating = "up" if liked is True or liked == "Like" else "down"
    try:
        s.chat.feedback(state["customer_id"], state["conversation_id"], trace_id, rating)
    except NotFound:
        log.warning("feedback for an unknown reply", extra={"trace_id": trace_id})


# --- staff pages ----------------------------------------------------------------------------------


def build_staff_ui(s: Services) -> gr.Blocks:
    with gr.Blocks(title="Meadow staff", analytics_enabled=False) as staff:
        gr.Markdown("### Meadow staff")
        with gr.Tab("Marketing studio"):
            marketing_tab(s)
        with gr.Tab("Complaints"):
            complaints_tab(s)
        with gr.Tab("QA"):
            qa_tab()
    return staff


def marketing_tab(s: Services) -> None:
    terms = s.features._terms()
    products = list(terms.products)
    channels = ["sms", "push", "email", "banner", "social"]
    with gr.Row():
        product = gr.Dropdown(products, value=products[0] if products else None, label="Product")
        channel = gr.Dropdown(channels, value="sms", label="Channel")
        variants = gr.Slider(1, 5, value=3, step=1, label="Variants")
    audience = gr.Textbox(label="Audience", placeholder="e.g. existing customers with a good repayment record")
    goal = gr.Textbox(label="Message / goal", lines=2, placeholder="e.g. remind them they can repay early at no fee")
    draft_button = gr.Button("Draft variants", variant="primary")
    drafts_html = gr.HTML()
    export_file = gr.File(label="Export", interactive=False)
    gr.Markdown("#### Check copy")
    copy_text = gr.Textbox(label="Copy", lines=4)
    check_button = gr.Button("Check compliance")
    check_html = gr.HTML()

    def draft(product_key, channel_name, n, audience_text, goal_text):
        try:
            studio = s.features.get("marketing")
        except LookupError as exc:
            return f"<p>{html.escape(str(exc))}</p>", None
        brief = {"product": product_key, "channel": channel_name, "variants": int(n),
                 "audience": audience_text, "goal": goal_text}
        result = studio.draft(_make_brief(brief))
        payload = _dump(result)
        return drafts_to_html(payload), export(payload)

    def check(text, product_key, channel_name):
        if not (text or "").strip():
            return "<p>Paste some copy first.</p>"
        try:
            report = s.features.get("compliance").check_copy(text, product=product_key, channel=channel_name)
        except (LookupError, ValueError) as exc:
            return f"<p>{html.escape(str(exc))}</p>"
        return report_to_html(text, report.model_dump(mode="json"))

    draft_button.click(draft, [product, channel, variants, audience, goal], [drafts_html, export_file],
                       api_visibility="private")
    check_button.click(check, [copy_text, product, channel], [check_html], api_visibility="private")


def _make_brief(fields: dict[str, Any]) -> Any:
    try:
        from assistant.marketing import Brief
    except ImportError:
        return fields
    known = {k: v for k, v in fields.items() if k in getattr(Brief, "model_fields", fields)}
    return Brief(**known)


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def export(payload: Any) -> str:
    folder = Path(tempfile.mkdtemp(prefix="meadow-drafts-"))
    path = folder / "drafts.json"
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
    return str(path)


def highlight(text: str, findings: list[dict[str, Any]]) -> str:
    """The copy with each finding's span marked, coloured by severity, the message as a tooltip."""
    spans = sorted((f for f in findings if f.get("span")), key=lambda f: f["span"]["start"])
    out, at = [], 0
    for f in spans:
        start, end = f["span"]["start"], f["span"]["end"]
        if start < at:
            continue
        out.append(html.escape(text[at:start]))
        out.append(f'<mark class="sev-{html.escape(f["severity"])}" title="{html.escape(f["rule_id"])}: '
                   f'{html.escape(f["message"])}">{html.escape(text[start:end])}</mark>')
        at = end
    out.append(html.escape(text[at:]))
    return "".join(out).replace("\n", "<br>")


def report_to_html(text: str, report: dict[str, Any]) -> str:
    findings = report.get("findings", [])
    verdict = "✅ passes" if report.get("passed") else "❌ does not pass"
    rows = "".join(
        f"<li><b>{html.escape(f['severity'])}</b> <code>{html.escape(f['rule_id'])}</code>: "
        f"{html.escape(f['message'])} <i>Fix: {html.escape(f.get('fix', ''))}</i></li>" for f in findings)
    return (f"<div class='copy'><p>{highlight(text, findings)}</p><p>{verdict} "
            f"(rules {html.escape(str(report.get('rules_version', '')))})</p><ul>{rows}</ul></div>")


def drafts_to_html(payload: Any) -> str:
    drafts = payload.get("drafts") or payload.get("variants") or [] if isinstance(payload, dict) else payload
    parts = []
    for i, d in enumerate(drafts or [], 1):
        text = d.get("text") or d.get("copy") or ""
        report = d.get("report") or d.get("compliance") or {"findings": [], "passed": True}
        parts.append(f"<h4>Variant {i}</h4>" + report_to_html(text, report))
    return "".join(parts) or "<p>No drafts.</p>"


def complaints_tab(s: Services) -> None:
    from serve import staff_tickets

    staff_tickets.build_tab(s)


def qa_tab() -> None:
    refresh = gr.Button("Show the latest eval report")
    frame = gr.HTML()

    def show() -> str:
        report = latest_report(PROJECT_ROOT / "reports")
        if report is None:
            return "<p>No eval report yet: run <code>assistant eval</code>.</p>"
        doc = html.escape(report.read_text(encoding="utf-8", errors="replace"), quote=True)
        return (f"<p>{html.escape(str(report.relative_to(PROJECT_ROOT)))}</p>"
                f'<iframe srcdoc="{doc}" style="width:100%;height:80vh;border:1px solid #ddd"></iframe>')

    refresh.click(show, None, frame, api_visibility="private")
