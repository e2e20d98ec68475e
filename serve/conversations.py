"""Where the web app keeps conversations: the routing issue's ConversationStore when it is
installed, else this small SQLAlchemy table. Both answer `load(conversation_id, customer_id)`
(None unless that customer owns it) and `save(conversation)`."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import DateTime, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from assistant.config import Settings
from assistant.store import make_engine
from assistant.types import Conversation, utcnow


class ConversationStoreLike(Protocol):
    def load(self, conversation_id: str, customer_id: str) -> Conversation | None: ...

    def save(self, conversation: Conversation) -> None: ...


class _Base(DeclarativeBase):
    pass


class _Row(_Base):
    __tablename__ = "web_conversations"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SqlConversationStore:
    def __init__(self, settings: Settings):
        from sqlalchemy.orm import sessionmaker

        self.engine = make_engine(settings)
        _Base.metadata.create_all(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def load(self, conversation_id: str, customer_id: str) -> Conversation | None:
        with self.sessions() as db:
            row = db.scalar(select(_Row).where(_Row.id == conversation_id, _Row.customer_id == customer_id))
            return Conversation.model_validate_json(row.body) if row else None

    def save(self, conversation: Conversation) -> None:
        with self.sessions.begin() as db:
            row = db.get(_Row, conversation.id)
            if row is not None and row.customer_id != conversation.customer_id:
                raise PermissionError("conversation belongs to another customer")
            body = conversation.model_dump_json()
            if row is None:
                db.add(_Row(id=conversation.id, customer_id=conversation.customer_id, body=body, updated_at=utcnow()))
            else:
                row.body, row.updated_at = body, utcnow()


def make_conversation_store(settings: Settings) -> ConversationStoreLike:
    try:
        from assistant.conversations import ConversationStore  # the routing issue's store
    except ImportError:
        return SqlConversationStore(settings)
    return ConversationStore(settings)
