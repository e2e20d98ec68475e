"""The Inbox tab (agents): hand-offs and urgent tickets, urgent first; pick or type a ticket, claim it,
read the conversation (redacted, with any contact the customer left) and answer in it. The page
refreshes every 5 s, which also keeps the agent counted as online for customers."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from assistant.store.inbox import InboxError
from serve import inbox
from serve.auth import has_any_role
from serve.services import Services

COLUMNS = ["id", "kind", "severity", "status", "created", "claimed by", "message"]
NOT_AN_AGENT = "<p class='error'>The inbox is for agents.</p>"


def build_tab(s: Services) -> None:
    if not s.features.available("tickets"):
        gr.Markdown("Tickets are not available in this installation.")
        return
    refresh = gr.Button("Refresh", size="sm")
    table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, elem_id="inbox-queue")
    with gr.Row():
        ticket_id = gr.Textbox(label="Ticket id", placeholder="click a row or type an id", max_length=40,
                               elem_id="inbox-ticket")
        claim = gr.Button("Claim", variant="primary", elem_id="inbox-claim")
        show = gr.Button("Show", elem_id="inbox-show")
    conversation = gr.HTML(elem_id="inbox-conversation")
    answer = gr.Textbox(label="Your answer to the customer", lines=3, max_length=4000, elem_id="inbox-reply")
    send = gr.Button("Send to the customer", variant="primary", elem_id="inbox-send")
    timer = gr.Timer(5)

    def agent_of(request: gr.Request | None) -> tuple[str, bool]:
        username = getattr(request, "username", None)
        return f"staff:{username or 'ui'}", has_any_role(s.staff.page_roles(username), "agent")

    def load(request: gr.Request):
        agent, allowed = agent_of(request)
        return queue_rows(s, agent) if allowed else []

    def pick(rows, event: gr.SelectData, request: gr.Request):
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        chosen = rows.iloc[row]["id"] if hasattr(rows, "iloc") else rows[row][0]
        return chosen, view(chosen, request), ""  # another ticket: the answer box starts empty

    def view(chosen: str, request: gr.Request) -> str:
        _, allowed = agent_of(request)
        return conversation_html(s, (chosen or "").strip()) if allowed else NOT_AN_AGENT

    def do_claim(chosen: str, request: gr.Request):
        agent, allowed = agent_of(request)
        if not allowed:
            return NOT_AN_AGENT, gr.skip()
        return act(lambda: inbox.claim(s, chosen.strip(), agent), chosen), queue_rows(s, agent)

    def do_send(chosen: str, text: str, request: gr.Request):
        agent, allowed = agent_of(request)
        if not allowed:
            return NOT_AN_AGENT, gr.skip()
        if not (text or "").strip():
            return "<p class='error'>Write an answer first.</p>" + conversation_html(s, chosen.strip()), gr.skip()
        result = act(lambda: inbox.reply(s, chosen.strip(), agent, text), chosen)
        return result, "" if "class='error'" not in result else gr.skip()

    def act(step, chosen: str) -> str:
        if not (chosen or "").strip():
            return "<p>Pick a ticket first.</p>"
        try:
            step()
        except (InboxError, LookupError) as exc:
            return f"<p class='error'>{html.escape(str(exc))}</p>" + conversation_html(s, chosen.strip())
        return conversation_html(s, chosen.strip())

    for trigger in (refresh.click, timer.tick):
        trigger(load, None, table, api_visibility="private")
    table.select(pick, [table], [ticket_id, conversation, answer], api_visibility="private")
    show.click(view, [ticket_id], conversation, api_visibility="private")
    claim.click(do_claim, [ticket_id], [conversation, table], api_visibility="private")
    send.click(do_send, [ticket_id, answer], [conversation, answer], api_visibility="private")


def queue_rows(s: Services, agent: str) -> list[list[str]]:
    return [[t["id"], t["kind"], t["severity"], t["status"], t["created_at"][:16].replace("T", " "),
             t["claimed_by"] or "", t["text"][:120]] for t in inbox.queue(s, agent)]


def conversation_html(s: Services, ticket_id: str) -> str:
    if not ticket_id:
        return ""
    try:
        found = inbox.detail(s, ticket_id)
    except (InboxError, LookupError) as exc:
        return f"<p class='error'>{html.escape(str(exc))}</p>"
    return detail_html(found)


def detail_html(found: dict[str, Any]) -> str:
    esc = html.escape
    t = found["ticket"]
    claim = f"claimed by {esc(found['claimed_by'])}" if found["claimed_by"] else "not claimed"
    contact = found.get("contact")
    contact_line = (f"<p class='contact'>Contact left: {esc(contact['kind'])} <b>{esc(contact['value'])}</b></p>"
                    if contact else "")
    messages = "".join(f"<li class='msg-{esc(m.get('role', ''))}'><b>{esc(_who(m))}</b>: "
                       f"{esc(m.get('content', ''))}</li>" for m in found["messages"])
    return (f"<h4>{esc(t['id'])} · {esc(t['kind'])} · {esc(t['status'])} · {esc(t['severity'])} · {claim}</h4>"
            f"<p>Answer by {esc(t['respond_by'][:16].replace('T', ' '))} UTC</p>{contact_line}"
            f"<ul class='inbox-messages'>{messages}</ul>")


def _who(message: dict[str, Any]) -> str:
    role = message.get("role", "")
    return {"user": "customer", "assistant": "assistant", "agent": f"agent ({message.get('agent', '')})"}.get(role, role)
