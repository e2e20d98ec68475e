"""Conversations kept in the store between turns, so that a web worker keeps nothing in memory.

A conversation belongs to one customer: `load(id, customer_id)` returns None for an id that is
unknown *or* someone else's (the caller cannot tell which), and `save` refuses to overwrite
another customer's conversation. Messages are stored as the pipeline keeps them (redacted)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, inspect, select, text, update
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
    # bumped by every save: `save(expected_version=...)` refuses a stale write (several workers, one conversation)
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ConversationConflict(RuntimeError):
    """The conversation was saved by someone else since it was loaded (optimistic version check)."""


class ConversationOwnerError(PermissionError):
    """The conversation id belongs to another customer."""


class ConversationStore(LazySessions):
    def __init__(self, settings: Settings, sessions: sessionmaker | None = None):
        self.settings = settings
        self._sessions = sessions

    def save(self, conversation: Conversation, expected_version: int | None = None) -> int:
        """Store the conversation; returns its new version. With `expected_version` (what
        `load_versioned` gave), ConversationConflict if it was saved by someone else since."""
        try:
            return self._save(conversation, expected_version)
        except IntegrityError:  # another worker inserted the same new conversation first
            return self._save(conversation, expected_version)

    def _save(self, conversation: Conversation, expected_version: int | None = None) -> int:
        now = utcnow()
        with self.sessions() as session:
            self._ensure_version_column(session)
            row = session.get(ConversationRow, conversation.id, with_for_update=True)
            if row is None:
                if expected_version:
                    raise ConversationConflict(f"conversation {conversation.id} is gone")
                session.add(ConversationRow(id=conversation.id, customer_id=conversation.customer_id,
                                            data=conversation.model_dump_json(), created_at=now, updated_at=now,
                                            version=1))
                session.commit()
                return 1
            if row.customer_id != conversation.customer_id:
                raise ConversationOwnerError(f"conversation {conversation.id} belongs to another customer")
            # compare-and-set in one statement: safe across workers on SQLite and PostgreSQL alike
            expected = row.version if expected_version is None else expected_version
            done = session.execute(
                update(ConversationRow)
                .where(ConversationRow.id == conversation.id, ConversationRow.version == expected)
                .values(data=conversation.model_dump_json(), updated_at=now, version=ConversationRow.version + 1)
                .execution_options(synchronize_session=False))
            if done.rowcount != 1:
                session.rollback()
                raise ConversationConflict(f"conversation {conversation.id} changed since it was loaded")
            session.commit()
            return expected + 1

    def load_versioned(self, conversation_id: str, customer_id: str) -> tuple[Conversation, int] | None:
        """The conversation and its version (for `save(expected_version=...)`), None as `load`."""
        with self.sessions() as session:
            self._ensure_version_column(session)
            row = session.get(ConversationRow, conversation_id, populate_existing=True)
            if row is None or row.customer_id != customer_id:
                return None
            return Conversation.model_validate_json(row.data), row.version

    _version_checked = False

    def _ensure_version_column(self, session) -> None:
        """A database made before conversations had a version gets the column (once per store)."""
        if self._version_checked:
            return
        columns = {c["name"] for c in inspect(session.get_bind()).get_columns("conversations")}
        if "version" not in columns:
            session.execute(text("ALTER TABLE conversations ADD COLUMN version INTEGER NOT NULL DEFAULT 0"))
            session.commit()
        self._version_checked = True

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
