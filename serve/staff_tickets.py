"""The Complaints tab: ticket queue with filters, SLA countdown and status changes."""

from __future__ import annotations

import gradio as gr

from serve.services import Services


def build_tab(s: Services) -> None:
    if not s.features.available("tickets"):
        gr.Markdown("Complaint tickets are not available in this installation.")
        return
    gr.Markdown("Loading…")
