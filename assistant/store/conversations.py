"""Conversations kept in the store between turns, so that a web worker keeps nothing in memory.

A conversation belongs to one customer: `load(id, customer_id)` returns None for an id that is
unknown *or* someone else's (the caller cannot tell which), and `save` refuses to overwrite
another customer's conversation. Messages are stored as the pipeline keeps them (redacted)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from assistant.config import Settings
from assistant.store.db import Base
from assistant.store.tickets import LazySessions, UTCDateTime
from assistant.types import Conversation, utcnow


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    data: Mapped[str] = mapped_column(Text)  # the Conversation as JSON
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ConversationOwnerError(PermissionError):
    """The conversation id belongs to another customer."""


class ConversationStore(LazySessions):
    def __init__(self, settings: Settings, sessions: sessionmaker | None = None):
        self.settings = settings
        self._sessions = sessions

    def save(self, conversation: Conversation) -> None:
        try:
            self._save(conversation)
        except IntegrityError:  # another worker inserted the same new conversation first
            self._save(conversation)

    def _save(self, conversation: Conversation) -> None:
        now = utcnow()
        with self.sessions() as session:
            row = session.get(ConversationRow, conversation.id, with_for_update=True)
            if row is None:
                session.add(ConversationRow(id=conversation.id, customer_id=conversation.customer_id,
                                            data=conversation.model_dump_json(), created_at=now, updated_at=now))
            elif row.customer_id != conversation.customer_id:
                raise ConversationOwnerError(f"conversation {conversation.id} belongs to another customer")
            else:
                row.data, row.updated_at = conversation.model_dump_json(), now
            session.commit()

    def load(self, conversation_id: str, customer_id: str) -> Conversation | None:
        with self.sessions() as session:
            row = session.get(ConversationRow, conversation_id)
            if row is None or row.customer_id != customer_id:
                return None
            return Conversation.model_validate_json(row.data)

    def list_ids(self, customer_id: str, limit: int = 50) -> list[str]:
        query = (select(ConversationRow.id).where(ConversationRow.customer_id == customer_id)
                 .order_by(ConversationRow.updated_at.desc()).limit(limit))
        with self.sessions() as session:
            return list(session.scalars(query).all())

    def delete(self, conversation_id: str, customer_id: str) -> bool:
        with self.sessions() as session:
            row = session.get(ConversationRow, conversation_id)
            if row is None or row.customer_id != customer_id:
                return False
            session.delete(row)
            session.commit()
            return True
