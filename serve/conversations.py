"""Where the web app keeps conversations: the store's ConversationStore (assistant/store/conversations.py).
`load(conversation_id, customer_id)` is None unless that customer owns it; `save(conversation)`."""

from __future__ import annotations

from typing import Protocol

from assistant.config import Settings
from assistant.types import Conversation


class ConversationStoreLike(Protocol):
    def load(self, conversation_id: str, customer_id: str) -> Conversation | None: ...

    def save(self, conversation: Conversation) -> None: ...


def make_conversation_store(settings: Settings) -> ConversationStoreLike:
    from assistant.store.conversations import ConversationStore

    return ConversationStore(settings)
