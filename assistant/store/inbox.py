"""The live-agent inbox's records: who claimed which ticket, the messages staff write into a
customer's conversation, the contact a customer leaves when no one is online, and which agents
are online (a heartbeat).

Agent messages are kept here, not in the conversation row, so a staff reply never races the
customer's own turn; readers merge them in (`merge_agent_messages`). Each has a sequence number,
so a page asks only for what is new (`messages(conversation_id, after=seq)`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Integer, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from assistant.config import Settings
from assistant.store.db import Base
from assistant.store.tickets import LazySessions, UTCDateTime
from assistant.types import utcnow


class InboxError(ValueError):
    """A move the inbox refuses (claimed by someone else, not claimed, bad contact)."""


class ClaimRow(Base):
    __tablename__ = "inbox_claims"

    ticket_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # one claim per ticket
    agent: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AgentMessageRow(Base):
    __tablename__ = "agent_messages"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(64), index=True)
    ticket_id: Mapped[str] = mapped_column(String(32), index=True)
    agent: Mapped[str] = mapped_column(String(128))
    content: Mapped[str] = mapped_column(Text)
    after_message: Mapped[int] = mapped_column(Integer)  # the conversation's length when it was written
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class ContactRow(Base):
    __tablename__ = "customer_contacts"

    conversation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(254))  # shown to agents only; never logged or audited in clear
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class PresenceRow(Base):
    __tablename__ = "agent_presence"

    agent: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class AgentMessage:
    seq: int
    conversation_id: str
    ticket_id: str
    agent: str
    content: str
    after_message: int
    at: datetime

    def as_message(self) -> dict[str, Any]:
        """The shape of a conversation message (role "agent")."""
        return {"role": "agent", "content": self.content, "seq": self.seq, "agent": self.agent,
                "at": self.at.isoformat()}


@dataclass(frozen=True)
class Contact:
    kind: Literal["email", "phone"]
    value: str


EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,24}$")
PHONE_CHARS = re.compile(r"^\+?[0-9 ()\-.]{7,24}$")


def parse_contact(text: str) -> Contact:
    """An e-mail address or a phone number (7 to 15 digits, optional +), else InboxError."""
    value = " ".join((text or "").split())
    if EMAIL.match(value) and ".." not in value:
        return Contact("email", value.lower())
    digits = re.sub(r"\D", "", value)
    if PHONE_CHARS.match(value) and 7 <= len(digits) <= 15:
        return Contact("phone", ("+" if value.startswith("+") else "") + digits)
    raise InboxError("give a phone number or an e-mail address")


def mask_contact(contact: Contact) -> str:
    """What a log line or the audit may show of a contact: its kind and a hint, never the value."""
    if contact.kind == "email":
        return "email:***@" + contact.value.rpartition("@")[2]
    return "phone:***" + contact.value[-2:]


class InboxStore(LazySessions):
    def __init__(self, settings: Settings, sessions: sessionmaker | None = None):
        self.settings = settings
        self._sessions = sessions

    # --- claims ------------------------------------------------------------------------------
    def claim(self, ticket_id: str, agent: str) -> str:
        """Claim a ticket for `agent`; claiming one's own claim again is fine. Returns the agent."""
        try:
            with self.sessions() as session:
                row = session.get(ClaimRow, ticket_id)
                if row is None:
                    session.add(ClaimRow(ticket_id=ticket_id, agent=agent, claimed_at=utcnow()))
                    session.commit()
                    return agent
        except IntegrityError:  # another agent's claim committed first
            pass
        holder = self.claimed_by(ticket_id)
        if holder != agent:
            raise InboxError(f"ticket {ticket_id} is already claimed by {holder}")
        return agent

    def claimed_by(self, ticket_id: str) -> str | None:
        with self.sessions() as session:
            row = session.get(ClaimRow, ticket_id)
            return row.agent if row else None

    def claims(self, ticket_ids: list[str]) -> dict[str, str]:
        if not ticket_ids:
            return {}
        with self.sessions() as session:
            rows = session.scalars(select(ClaimRow).where(ClaimRow.ticket_id.in_(ticket_ids))).all()
            return {r.ticket_id: r.agent for r in rows}

    # --- messages ----------------------------------------------------------------------------
    def add_message(self, conversation_id: str, ticket_id: str, agent: str, content: str,
                    after_message: int) -> AgentMessage:
        row = AgentMessageRow(conversation_id=conversation_id, ticket_id=ticket_id, agent=agent, content=content,
                              after_message=after_message, at=utcnow())
        with self.sessions() as session:
            session.add(row)
            session.commit()
            return _message(row)

    def messages(self, conversation_id: str, after: int = 0, limit: int = 200) -> list[AgentMessage]:
        query = (select(AgentMessageRow).where(AgentMessageRow.conversation_id == conversation_id,
                                               AgentMessageRow.seq > after)
                 .order_by(AgentMessageRow.seq).limit(limit))
        with self.sessions() as session:
            return [_message(r) for r in session.scalars(query).all()]

    # --- contacts ----------------------------------------------------------------------------
    def save_contact(self, conversation_id: str, customer_id: str, contact: Contact) -> None:
        with self.sessions() as session:
            row = session.get(ContactRow, conversation_id)
            if row is None:
                session.add(ContactRow(conversation_id=conversation_id, customer_id=customer_id, kind=contact.kind,
                                       value=contact.value, at=utcnow()))
            else:
                row.kind, row.value, row.at = contact.kind, contact.value, utcnow()
            session.commit()

    def contact(self, conversation_id: str) -> Contact | None:
        with self.sessions() as session:
            row = session.get(ContactRow, conversation_id)
            return Contact(row.kind, row.value) if row else None  # type: ignore[arg-type]

    # --- presence ----------------------------------------------------------------------------
    def heartbeat(self, agent: str) -> None:
        with self.sessions() as session:
            row = session.get(PresenceRow, agent)
            if row is None:
                session.add(PresenceRow(agent=agent, seen_at=utcnow()))
            else:
                row.seen_at = utcnow()
            try:
                session.commit()
            except IntegrityError:  # two tabs of the same agent: either beat will do
                session.rollback()

    def agents_online(self, within_s: float) -> int:
        since = utcnow() - timedelta(seconds=within_s)
        with self.sessions() as session:
            return len(session.scalars(select(PresenceRow.agent).where(PresenceRow.seen_at >= since)).all())


def _message(row: AgentMessageRow) -> AgentMessage:
    return AgentMessage(seq=row.seq, conversation_id=row.conversation_id, ticket_id=row.ticket_id, agent=row.agent,
                        content=row.content, after_message=row.after_message, at=row.at)


def merge_agent_messages(messages: list[dict[str, Any]], agent_messages: list[AgentMessage]) -> list[dict[str, Any]]:
    """The conversation's messages with each agent message placed after the message it followed."""
    merged: list[dict[str, Any]] = []
    pending = sorted(agent_messages, key=lambda m: (m.after_message, m.seq))
    for index, message in enumerate(messages):
        while pending and pending[0].after_message <= index:
            merged.append(pending.pop(0).as_message())
        merged.append(message)
    merged.extend(m.as_message() for m in pending)
    return merged
