"""The dialogue manager's parts: typed conversation state (state.py), interruptions of a form
(interrupts.py) and follow-ups rewritten against the topic (followup.py)."""
