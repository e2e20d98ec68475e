"""The Gradio pages: the customer chat (mounted at /chat) and the staff pages (mounted at /staff,
behind a login whose password is a staff API key). Both call the same services as the API."""

from __future__ import annotations

import html
import logging
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.concurrency import run_in_threadpool

from assistant.types import Delta, Reply
from assistant.timefmt import countdown, lender_time
from assistant.store.db import StoreUnavailable
from serve.api import latest_report, open_session, store_down_message, suggested_questions
from serve.auth import has_any_role
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
        quick = gr.Radio([], label="Quick reply", visible=False, elem_id="quick-replies")
        with gr.Row(equal_height=True):
            message = gr.Textbox(placeholder="Type your question…", show_label=False, scale=5, lines=1,
                                 max_lines=4, elem_id="message", max_length=s.settings.max_message_chars)
            send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="send")
        with gr.Row(elem_classes=["suggestions"]):
            suggestion_buttons = [gr.Button(q, size="sm", elem_classes=["suggestion"])
                                  for q in suggested_questions("en")]
        person = gr.Button("Talk to a person", size="sm", elem_id="handoff")
        with gr.Row(visible=False, elem_id="contact-row") as contact_row:
            contact_box = gr.Textbox(label=CONTACT_LABEL, max_length=254, scale=4, elem_id="contact")
            contact_send = gr.Button("Leave my contact", scale=1, min_width=80, elem_id="contact-send")
        contact_note = gr.Markdown(visible=False, elem_id="contact-note")
        poll = gr.Timer(AGENT_POLL_S)

        async def respond(text: str | None, history: list, state: dict | None):
            async for update in chat_turn(s, text or "", history, state):
                yield update

        async def talk_to_person(history: list, state: dict | None):
            async for update in chat_turn(s, HANDOFF_MESSAGE, history, state):
                yield update

        def on_like(state: dict | None, data: gr.LikeData) -> None:
            record_feedback(s, state, data)

        outputs = [chatbot, message, session, ticket, quick]
        send.click(respond, [message, chatbot, session], outputs, api_visibility="private")
        message.submit(respond, [message, chatbot, session], outputs, api_visibility="private")
        for button in suggestion_buttons:  # a suggestion sends its own text
            button.click(respond, [button, chatbot, session], outputs, api_visibility="private")
        quick.input(respond, [quick, chatbot, session], outputs, api_visibility="private")
        person.click(talk_to_person, [chatbot, session], outputs, api_visibility="private")
        chatbot.like(on_like, [session], None, api_visibility="private")

        async def check_agents(history: list, state: dict | None):
            return await poll_agent_messages(s, history, state)

        async def send_contact(text: str | None, state: dict | None):
            return await leave_contact(s, text or "", state)

        poll.tick(check_agents, [chatbot, session], [chatbot, session, contact_row], api_visibility="private",
                  show_progress="hidden")
        contact_send.click(send_contact, [contact_box, session], [contact_box, contact_row, contact_note],
                           api_visibility="private")
    return demo


async def chat_turn(s: Services, text: str, history: list | None, state: dict | None):
    """One turn for the chat page: yields (history, textbox, state, ticket, quick replies) while streaming."""
    history = list(history or [])
    text = (text or "").strip()
    if not text:
        yield history, gr.update(), state, gr.update(), gr.update()
        return
    if state is None:
        session = await run_in_threadpool(open_session, s)
        state = {"customer_id": session.customer_id, "conversation_id": session.conversation_id, "traces": {}}
    history += [{"role": "user", "content": text}, {"role": "assistant", "content": "…"}]
    yield history, "", state, gr.update(), gr.update(visible=False, value=None)
    try:
        s.limiter.hit(state["customer_id"])
        conversation = await run_in_threadpool(s.chat.conversation, state["customer_id"], state["conversation_id"])
        events = await s.chat.stream(conversation, text, channel="web")
    except RateLimited as exc:
        history[-1]["content"] = f"You're sending messages quickly. Please wait {exc.retry_after_s} s and try again."
        yield history, gr.update(), state, gr.update(), gr.update()
        return
    except Busy as exc:
        history[-1]["content"] = f"We're very busy right now. Please try again in {exc.retry_after_s} s."
        yield history, gr.update(), state, gr.update(), gr.update()
        return
    except NotFound:
        state = None
        history[-1]["content"] = "Your session has expired. Please send your message again."
        yield history, gr.update(), state, gr.update(), gr.update()
        return
    except StoreUnavailable as exc:
        history[-1]["content"] = store_down_message(exc.reference)
        yield history, gr.update(), state, gr.update(), gr.update()
        return
    draft = ""
    try:
        async for event in events:
            if isinstance(event, Delta):
                draft += event.text
                history[-1]["content"] = draft
                yield history, gr.update(), state, gr.update(), gr.update()
            elif isinstance(event, Reply):
                history[-1]["content"] = render_reply(event)
                state["traces"][str(len(history) - 1)] = event.trace_id
                if event.ticket:  # from now on the page polls for the team's answers
                    state["ticket"] = event.ticket.get("id")
                    state["handoff"] = state.get("handoff") or event.ticket.get("kind") == "handoff"
                yield history, gr.update(), state, ticket_update(event), quick_update(event)
    except StoreUnavailable as exc:  # the reply could not be kept: say so, with the reference when there is one
        log.error("chat page turn not saved: %s", exc)
        history[-1]["content"] = store_down_message(exc.reference)
        yield history, gr.update(), state, gr.update(), gr.update()
    except Exception:
        log.exception("chat page turn failed")
        history[-1]["content"] = "Sorry, something went wrong on our side. Please try again."
        yield history, gr.update(), state, gr.update(), gr.update()


AGENT_POLL_S = 3
CONTACT_LABEL = ("No one from the team is online right now: leave a phone number or an e-mail address and "
                 "we will get back to you (only the team sees it)")


async def poll_agent_messages(s: Services, history: list | None, state: dict | None):
    """The team's new answers in this conversation, appended to the chat; the contact row shown while a
    hand-off waits and no agent is online. Outputs: (chatbot, state, contact row)."""
    from serve import inbox

    if not state or not state.get("ticket"):
        return gr.skip(), gr.skip(), gr.skip()
    try:
        found = await run_in_threadpool(inbox.customer_messages, s, state["customer_id"], state["conversation_id"],
                                        int(state.get("agent_seq", 0)))
    except Exception:  # a poll that fails is retried at the next tick
        log.warning("agent message poll failed", exc_info=True)
        return gr.skip(), gr.skip(), gr.skip()
    waiting = bool(state.get("handoff")) and not found["agents_online"] and not found["contact_left"]
    if not found["messages"]:
        return gr.skip(), gr.skip(), gr.update(visible=waiting)
    history = list(history or [])
    history += [{"role": "assistant", "content": f"**{m['name']}:** {m['content']}"} for m in found["messages"]]
    state["agent_seq"] = found["last_seq"]
    return history, state, gr.update(visible=waiting)


async def leave_contact(s: Services, text: str, state: dict | None):
    """Outputs: (contact box, contact row, note)."""
    from assistant.store.inbox import InboxError
    from serve import inbox

    if not state:
        return gr.skip(), gr.skip(), gr.update(visible=True, value="Send a message first.")
    try:
        saved = await run_in_threadpool(inbox.leave_contact, s, state["customer_id"], state["conversation_id"], text)
    except InboxError as exc:
        return gr.skip(), gr.skip(), gr.update(visible=True, value=f"⚠ {exc}.")
    except LookupError:
        return gr.skip(), gr.skip(), gr.update(visible=True, value="Your session has expired.")
    how = "by e-mail" if saved["kind"] == "email" else "by phone"
    return "", gr.update(visible=False), gr.update(visible=True, value=f"Thank you: the team will contact you {how}.")


def quick_update(reply: Reply):
    form = reply.meta.get("form") or {}
    if not form.get("choices"):
        return gr.update(visible=False, choices=[], value=None)
    labels = form.get("labels") or form["choices"]
    return gr.update(visible=True, choices=list(zip(labels, form["choices"])), value=None,
                     label=form.get("label") or "Quick reply")


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
    """The ticket id and its deadlines, with the time left (ack_due / resolve_due from the ticket store)."""
    ticket_id = ticket.get("id") or "?"
    line = f"🎫 Ticket **{ticket_id}**"
    if ticket.get("ack_due") and ticket.get("kind") != "handoff":
        line += f" — acknowledged by **{_when(ticket['ack_due'], ticket.get('ack_due_local'))}**"
    due = ticket.get("resolve_due") or ticket.get("deadline")
    if due:
        verb = "a person answers by" if ticket.get("kind") == "handoff" else "resolved by"
        line += f", {verb} **{_when(due, ticket.get('resolve_due_local'))}** ({countdown(due)})"
    return line


def ticket_update(reply: Reply):
    if not reply.ticket:
        return gr.update()
    return gr.update(value=ticket_line(reply.ticket), visible=True)


def _when(value: Any, local: str | None = None) -> str:
    """The one customer-facing format (assistant.timefmt.lender_time): the `*_local` text the skill
    wrote in the lender's zone; else the moment in UTC, in the same format."""
    if local:
        return local
    return lender_time(value, "UTC") or str(value)


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
    """One tab per role; a signed-in user sees only the tabs of their key's roles (admin: all), and each
    tab's actions check the role again on the server. Every tab starts hidden and the page load shows
    the allowed ones: Gradio 6.31 applies a load-time update that shows a tab, not one that hides it."""
    from serve import staff_inbox

    with gr.Blocks(title="Meadow staff", analytics_enabled=False) as staff:
        gr.Markdown("### Meadow staff")
        tabs: list[tuple[str, Any]] = []
        with gr.Tabs() as tabset:
            with gr.Tab("Marketing studio", id="marketer", visible=False) as tab:
                marketing_tab(s)
            tabs.append(("marketer", tab))
            with gr.Tab("Complaints", id="complaints", visible=False) as tab:
                complaints_tab(s)
            tabs.append(("complaints", tab))
            with gr.Tab("QA", id="qa", visible=False) as tab:
                qa_tab(s)
            tabs.append(("qa", tab))
            with gr.Tab("Inbox", id="agent", visible=False) as tab:
                staff_inbox.build_tab(s)
            tabs.append(("agent", tab))

        def show_tabs(request: gr.Request):
            roles = s.staff.page_roles(getattr(request, "username", None))
            shown = [role for role, _ in tabs if has_any_role(roles, role)]
            return [gr.update(visible=role in shown) for role, _ in tabs] + \
                [gr.update(selected=shown[0]) if shown else gr.skip()]

        staff.load(show_tabs, None, [tab for _, tab in tabs] + [tabset], api_visibility="private")
    return staff


def page_allows(s: Services, request: gr.Request | None, role: str) -> bool:
    return has_any_role(s.staff.page_roles(getattr(request, "username", None)), role)


NOT_YOUR_ROLE = "<p class='error'>Your staff role may not use this page.</p>"


def marketing_tab(s: Services) -> None:
    terms = s.features._terms()
    products = list(terms.products)
    with gr.Row():
        product = gr.Dropdown(products, value=products[0] if products else None, label="Product")
        channel = gr.Dropdown(["sms", "push", "email", "banner", "social"], value="sms", label="Channel")
        language = gr.Dropdown(["en", "zh"], value="en", label="Language")
        variants = gr.Slider(1, 5, value=3, step=1, label="Variants")
    with gr.Row():
        audience = gr.Textbox(label="Audience", value="existing customers", max_length=120)
        goal = gr.Textbox(label="Goal", value="acquisition", max_length=200)
        tone = gr.Textbox(label="Tone", value="friendly", max_length=60)
    with gr.Row():
        occasion = gr.Textbox(label="Occasion", placeholder="e.g. Spring Festival", max_length=80)
        message = gr.Textbox(label="Key message (every variant says it)", max_length=120)
        segments = gr.Dropdown([("channel default", 0), ("1 SMS segment", 1), ("2 SMS segments", 2)], value=0,
                               label="SMS length")
    notes = gr.Textbox(label="Notes for the writer", lines=2, max_length=500)
    draft_button = gr.Button("Draft variants", variant="primary")
    drafts_html = gr.HTML()
    export_files = gr.File(label="Export (JSON, CSV, Markdown)", file_count="multiple", interactive=False)
    gr.Markdown("#### Check existing copy")
    copy_text = gr.Textbox(label="Copy", lines=4)
    check_button = gr.Button("Check compliance")
    check_html = gr.HTML()

    def draft(product_key, channel_name, lang, n, audience_text, goal_text, tone_text, notes_text,
              occasion_text, message_text, sms_segments, request: gr.Request):
        from assistant.marketing.drafting import Brief, BriefError, export_draft_set
        from pydantic import ValidationError

        if not page_allows(s, request, "marketer"):
            return NOT_YOUR_ROLE, None

        try:
            brief = Brief(product=product_key, channel=channel_name, language=lang, variants=int(n),
                          audience=audience_text, goal=goal_text, tone=tone_text, notes=notes_text or "",
                          occasion=occasion_text or "", message=message_text or "",
                          sms_segments=int(sms_segments) or None)
            drafts = s.features.get("marketing").draft(brief)
        except (BriefError, ValidationError, LookupError) as exc:
            return f"<p class='error'>{html.escape(str(exc))}</p>", None
        paths = export_draft_set(drafts, Path(tempfile.mkdtemp(prefix="meadow-drafts-")))
        return drafts_to_html(drafts.model_dump(mode="json")), [str(p) for p in paths.values()]

    def check(text, product_key, channel_name, request: gr.Request):
        if not page_allows(s, request, "marketer"):
            return NOT_YOUR_ROLE
        if not (text or "").strip():
            return "<p>Paste some copy first.</p>"
        try:
            report = s.features.get("compliance").check_copy(text, product=product_key, channel=channel_name)
        except (LookupError, ValueError) as exc:
            return f"<p>{html.escape(str(exc))}</p>"
        return report_to_html(text, report.model_dump(mode="json"))

    draft_button.click(draft, [product, channel, language, variants, audience, goal, tone, notes, occasion, message,
                               segments],
                       [drafts_html, export_files], api_visibility="private")
    check_button.click(check, [copy_text, product, channel], [check_html], api_visibility="private")


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


def drafts_to_html(drafts: dict[str, Any]) -> str:
    """Each variant with its compliance findings highlighted in the text."""
    parts = [f"<p class='warning'>⚠ {html.escape(w)}</p>" for w in drafts.get("warnings", [])]
    for v in drafts.get("variants", []):
        parts.append(f"<h4>{v.get('rank', '')}. {html.escape(v.get('angle', ''))} "
                     f"<small>({html.escape(v.get('id', ''))}, revisions {v.get('revisions', 0)})</small></h4>")
        parts.append(_score_line(v))
        parts.append(report_to_html(v.get("text", ""), v.get("report") or {}))
    return "".join(parts) or "<p>No drafts.</p>"


def _score_line(variant: dict[str, Any]) -> str:
    """The variant's stated score and, per field, its length (SMS: segments)."""
    score = variant.get("score") or {}
    items = [f"score {score.get('total', 0):.2f}"] + [
        f"{name.replace('_', ' ')} {score[key]:.2f}" for name, key in
        (("brief coverage", "brief_coverage"), ("clarity", "clarity"), ("compliance", "compliance"),
         ("length fit", "length_fit"), ("diversity", "diversity")) if key in score]
    for m in (variant.get("report") or {}).get("metrics") or []:
        if m.get("unit") == "segments":
            items.append(f"SMS {m.get('units')} {m.get('encoding')} characters = {m.get('segments')} segment(s)")
        else:
            items.append(f"{m.get('field')} {m.get('width')}/{m.get('limit')} wide")
    title = html.escape(score.get("formula", ""), quote=True)
    return f"<p class='score' title='{title}'><small>{html.escape(' · '.join(items))}</small></p>"


def complaints_tab(s: Services) -> None:
    from serve import staff_tickets

    staff_tickets.build_tab(s)


def qa_tab(s: Services) -> None:
    refresh = gr.Button("Show the latest eval report")
    frame = gr.HTML()

    def show(request: gr.Request) -> str:
        if not page_allows(s, request, "qa"):
            return NOT_YOUR_ROLE
        report = latest_report(s.settings.reports_path)
        if report is None:
            return "<p>No eval report yet: run <code>assistant eval</code>.</p>"
        doc = html.escape(report.read_text(encoding="utf-8", errors="replace"), quote=True)
        return (f"<p>{html.escape(str(report))}</p>"
                f'<iframe srcdoc="{doc}" style="width:100%;height:80vh;border:1px solid #ddd"></iframe>')

    refresh.click(show, None, frame, api_visibility="private")
