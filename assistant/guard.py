"""The guard: checks every message in and every reply out.

This is the foundation's minimal guard (empty input, length, control characters); the
privacy and safety rules extend `check_input` / `check_output` without changing their shape."""

from __future__ import annotations

import re
import unicodedata

from assistant.config import Settings
from assistant.types import Conversation, GuardVerdict, Reply

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class InputError(ValueError):
    """A message the assistant cannot take, with a message for the customer."""


class Guard:
    def __init__(self, settings: Settings):
        self.settings = settings

    def clean(self, message: str) -> str:
        text = unicodedata.normalize("NFKC", message or "")
        text = _CONTROL.sub("", text).strip()
        if not text:
            raise InputError("Please type a message.")
        if len(text) > self.settings.max_message_chars:
            raise InputError(
                f"Your message is {len(text)} characters long; the limit is "
                f"{self.settings.max_message_chars}. Please shorten it."
            )
        return text

    def redact(self, text: str) -> str:
        return text

    def check_input(self, conversation: Conversation, message: str) -> GuardVerdict:
        text = self.clean(message)
        return GuardVerdict(allowed=True, text=text, redacted=self.redact(text))

    def check_output(self, conversation: Conversation, reply: Reply) -> Reply:
        return reply
