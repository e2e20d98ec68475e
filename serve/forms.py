"""What the eligibility form is asking right now, for quick-reply buttons on the chat page and in
the widget. The eligibility skill keeps the form's state in the conversation and says which field
it asks (`reply.meta["eligibility"]`); the scorecard's field list says whether it has choices."""

from __future__ import annotations

from typing import Any, Callable

from assistant.types import Reply

YES_NO = ["yes", "no"]


def form_hint(reply: Reply, fields: Callable[[], list[Any]],
              clarify_labels: dict[str, str] | None = None) -> dict[str, Any] | None:
    """{"stage", "field", "label", "kind", "unit", "choices", "labels"} or None when nothing is asked.
    `choices` are what to send back; `labels`, when given, what to show on the buttons."""
    clarify = reply.meta.get("clarify")
    if isinstance(clarify, dict) and clarify.get("options"):
        options = list(clarify["options"])
        return {"stage": "clarify", "field": None, "label": "", "kind": "choice", "unit": "",
                "choices": [str(i) for i in range(1, len(options) + 1)],
                "labels": [(clarify_labels or {}).get(o, o) for o in options]}
    state = reply.meta.get("eligibility")
    if not isinstance(state, dict) or state.get("stage") in (None, "done", "cancelled", "no_consent"):
        return None
    hint: dict[str, Any] = {"stage": state["stage"], "field": None, "label": "", "kind": "text", "unit": "",
                            "choices": []}
    if state["stage"] == "consent":
        return {**hint, "kind": "choice", "choices": YES_NO}
    asking = state.get("asking")
    if not asking:
        return hint
    try:
        info = next((f for f in fields() if f.name == asking), None)
    except Exception:  # the scoring tool is optional for a hint
        info = None
    if info is None:
        return {**hint, "field": asking}
    choices = choice_replies(info) if info.kind == "choice" else YES_NO if info.kind == "bool" else []
    return {**hint, "field": asking, "label": info.label, "kind": info.kind, "unit": info.unit, "choices": choices}


def choice_replies(field: Any) -> list[str]:
    """Each choice as words the form itself reads back as that choice ("used car" -> used_car); a
    choice no such words reach (a band like "1_to_4_years") is left for the customer to type."""
    try:
        from assistant.skills.eligibility_form import parser_for

        parse = parser_for(field)
    except Exception:  # no form parser: no quick replies
        return []
    replies = []
    for code in field.choices or []:
        for text in (code.replace("_", " "), code):
            try:
                if parse(text, True) == code:
                    replies.append(text)
                    break
            except Exception:
                continue
    return replies
