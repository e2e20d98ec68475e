"""Durable tickets: complaints and hand-offs, with their deadlines and an audit trail of every
status change. SQLAlchemy on the project store: SQLite (WAL, synchronous=FULL) by default,
PostgreSQL by ASSISTANT_DATABASE_URL.

A ticket is never lost. `create` writes it to a local spool file first (fsync'd), then commits
it to the store, then removes the spool file; the customer is told the ticket id only after
that. If the process dies in between, or the store is down, the spool file stays and
`replay_spool` (run after every successful commit, by `assistant tickets replay-spool`, and at
web-app start) commits it later under the same id: replaying is idempotent. Only redacted
text is ever stored: the service redacts everything it is given with `redact`."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field
from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, TypeDecorator, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from assistant.complaints.rules import ComplaintRules, complaint_rules_file, load_complaint_rules
from assistant.config import Settings
from assistant.store.db import Base, StoreUnavailable, make_engine, make_sessionmaker
from assistant.store.spool import Spool
from assistant.types import Conversation, utcnow

log = logging.getLogger(__name__)

Kind = Literal["complaint", "handoff"]
ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out on the phone
PREFIX = {"complaint": "CMP", "handoff": "HOF"}
EXCERPT_MESSAGES = 12


class TicketError(ValueError):
    """A request the ticket service refuses (unknown ticket, status or move), with a message."""


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite keeps no zone: store naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ticket store")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class LazySessions:
    """For a class that keeps `settings` and `_sessions` (a sessionmaker or None): the store is opened on
    first use, so that a store that is down does not stop the assistant starting. Tickets and conversations."""

    settings: Settings
    _sessions: sessionmaker | None

    @property
    def sessions(self) -> sessionmaker:
        if self._sessions is None:
            self._sessions = make_sessionmaker(make_engine(self.settings))
        return self._sessions


class TicketRow(Base):
    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    customer_ref: Mapped[str] = mapped_column(String(128), index=True)
    conversation_id: Mapped[str] = mapped_column(String(64), index=True, default="")
    text: Mapped[str] = mapped_column(Text)  # redacted
    excerpt: Mapped[list] = mapped_column(JSON, default=list)  # redacted messages: [{role, content}]
    product: Mapped[str | None] = mapped_column(String(64), nullable=True)
    issue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    team: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(String(128), default="")
    urgency: Mapped[list] = mapped_column(JSON, default=list)
    escalations: Mapped[list] = mapped_column(JSON, default=list)
    classification: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ack_due: Mapped[datetime] = mapped_column(UTCDateTime)
    resolve_due: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    extension_notice_due: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    extended: Mapped[bool] = mapped_column(Boolean, default=False)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TicketEventRow(Base):
    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))  # created | status | extended | note
    from_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


class TicketEvent(BaseModel):
    at: datetime
    actor: str
    action: str
    from_status: str | None = None
    to_status: str | None = None
    note: str = ""


class TicketFields(BaseModel):
    """What a skill says about a ticket: a draft has these, a ticket these and its clock and history."""

    kind: Kind
    customer_ref: str
    conversation_id: str = ""
    text: str
    excerpt: list[dict[str, str]] = Field(default_factory=list)
    product: str | None = None
    issue: str | None = None
    team: str
    severity: str = "normal"
    reason: str = ""
    urgency: list[str] = Field(default_factory=list)
    escalations: list[str] = Field(default_factory=list)
    classification: dict[str, Any] = Field(default_factory=dict)


class Ticket(TicketFields):
    id: str
    status: str = "open"
    created_at: datetime
    updated_at: datetime
    ack_due: datetime
    resolve_due: datetime
    extension_notice_due: datetime | None = None
    extended: bool = False
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    events: list[TicketEvent] = Field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What the customer and the reply see: no internal notes."""
        return {"id": self.id, "kind": self.kind, "team": self.team, "severity": self.severity, "status": self.status,
                "product": self.product, "issue": self.issue, "created_at": self.created_at.isoformat(),
                "ack_due": self.ack_due.isoformat(), "resolve_due": self.resolve_due.isoformat()}


class Receipt(BaseModel):
    """The outcome of `create`: stored=False means the store was down and the ticket waits in the spool."""

    ticket: Ticket
    stored: bool

    @property
    def status(self) -> Literal["stored", "spooled"]:
        return "stored" if self.stored else "spooled"


class TicketDraft(TicketFields):
    respond_by: datetime | None = None  # hand-offs: when a person answers (instead of the ack deadline)


class TicketFilter(BaseModel):
    status: str | None = None
    team: str | None = None
    severity: str | None = None
    kind: str | None = None
    customer_ref: str | None = None
    open_only: bool = False
    limit: int = Field(100, ge=1, le=10_000)


class Breach(BaseModel):
    ticket: Ticket
    deadline: Literal["acknowledge", "resolve", "extension_notice", "respond"]
    due: datetime
    state: Literal["breached", "near"]
    hours_left: float


CLOSED_STATUSES = {"resolved", "closed"}


class TicketSpool(Spool):
    """One JSON file per ticket not yet committed (`<id>.json`); written atomically and fsync'd."""

    def write(self, ticket: Ticket) -> Path:
        return self.write_text(f"{ticket.id}.json", ticket.model_dump_json())

    def read(self, path: Path) -> Ticket:
        return Ticket.model_validate_json(path.read_text(encoding="utf-8"))

    def remove(self, ticket_id: str) -> None:
        (self.folder / f"{ticket_id}.json").unlink(missing_ok=True)


class TicketService(LazySessions):
    def __init__(self, settings: Settings, sessions: sessionmaker | None = None,
                 redact: Callable[[str], str] = lambda text: text, rules: ComplaintRules | None = None,
                 clock: Callable[[], datetime] = utcnow, spool_dir: Path | None = None):
        self.settings = settings
        self.redact = redact
        self.rules = rules or load_complaint_rules(complaint_rules_file(settings))
        self.clock = clock
        self.spool = TicketSpool(spool_dir or settings.data_dir / "spool" / "tickets")
        self._sessions = sessions

    # --- create ------------------------------------------------------------------------------------
    def new_ticket(self, draft: TicketDraft) -> Ticket:
        now = self.clock()
        deadlines = self.rules.deadlines_for(now)
        # A hand-off is due when a person must answer; a complaint is acknowledged by then at the latest.
        ack_due = min(draft.respond_by, deadlines.ack_due) if draft.respond_by else deadlines.ack_due
        resolve_due = draft.respond_by if draft.kind == "handoff" and draft.respond_by else deadlines.resolve_due
        notice_due = deadlines.extension_notice_due if draft.kind == "complaint" else None
        return Ticket(
            id=f"{PREFIX[draft.kind]}-{now.astimezone(self.rules.tz):%y%m%d}-"
               + "".join(secrets.choice(ID_ALPHABET) for _ in range(6)),
            **draft.model_dump(include=set(TicketFields.model_fields) - {"text", "excerpt"}),
            text=self.redact(draft.text),
            excerpt=[{"role": m.get("role", ""), "content": self.redact(m.get("content", ""))} for m in draft.excerpt],
            status="open", created_at=now, updated_at=now,
            ack_due=_utc(ack_due), resolve_due=_utc(resolve_due),
            extension_notice_due=_utc(notice_due) if notice_due else None,
            events=[TicketEvent(at=now, actor="assistant", action="created", to_status="open", note=draft.reason)])

    def create(self, draft: TicketDraft) -> Receipt:
        """The ticket, committed (stored=True) or kept in the spool (stored=False: the store is down;
        a replay commits it later under the same id). StoreUnavailable only when neither worked."""
        ticket = self.new_ticket(draft)
        try:
            self.spool.write(ticket)  # durable before anything else happens
            spooled = True
        except OSError as exc:  # a full or read-only disk: the store alone must take it
            log.error("ticket spool not writable (%s); %s goes to the store only", exc, ticket.id)
            spooled = False
        try:
            self._insert(ticket)
        except (SQLAlchemyError, OSError) as exc:
            if not spooled:
                raise StoreUnavailable(f"the ticket could not be kept: the store and the spool are both "
                                       f"unavailable ({type(exc).__name__})") from exc
            log.error("ticket store unavailable, %s kept in the spool: %s", ticket.id, exc)
            return Receipt(ticket=ticket, stored=False)
        if spooled:
            self.spool.remove(ticket.id)
        self._replay_quietly()
        return Receipt(ticket=ticket, stored=True)

    def replay_spool(self) -> list[str]:
        """Commit every spooled ticket (idempotent: a ticket already stored is skipped); returns the ids
        committed now. Safe with other replayers: each file is claimed (renamed) before it is read.
        Raises the store's error when the store is still down (the files stay for the next replay)."""
        self.spool.recover_stale()
        done = []
        for path in self.spool.pending():
            claim = self.spool.claim(path)
            if claim is None:  # another replayer, or the writer itself, has it
                continue
            try:
                ticket = Ticket.model_validate_json(claim.text())
            except (ValueError, OSError):
                log.error("unreadable spool file %s set aside as .bad for a person to look at", path)
                claim.set_aside()
                continue
            try:
                inserted = self._insert(ticket)
            except BaseException:
                claim.release()
                raise
            if inserted:
                done.append(ticket.id)
            claim.done()
        return done

    def _replay_quietly(self) -> None:
        if self.spool.pending():
            try:
                replayed = self.replay_spool()
                if replayed:
                    log.info("replayed %d spooled tickets", len(replayed))
            except (SQLAlchemyError, OSError, ValueError):
                log.exception("spool replay failed; it will be retried")

    def _insert(self, ticket: Ticket) -> bool:
        """False when a ticket with this id is already stored (a replay after a crash)."""
        with self.sessions() as session:
            if session.get(TicketRow, ticket.id) is not None:
                return False
            try:
                session.add(TicketRow(**ticket.model_dump(exclude={"events"})))
                session.flush()  # the ticket row before its events (the foreign key)
                session.add_all(TicketEventRow(ticket_id=ticket.id, **e.model_dump()) for e in ticket.events)
                session.commit()
            except IntegrityError:  # another worker replayed it first
                session.rollback()
                return False
        return True

    # --- read --------------------------------------------------------------------------------------
    def get(self, ticket_id: str) -> Ticket:
        with self.sessions() as session:
            row = session.get(TicketRow, ticket_id.strip())
            if row is None:
                raise TicketError(f"no ticket {ticket_id!r}")
            events = session.scalars(select(TicketEventRow).where(TicketEventRow.ticket_id == row.id)
                                     .order_by(TicketEventRow.id)).all()
            return _ticket(row, events)

    def list(self, where: TicketFilter | None = None) -> list[Ticket]:
        where = where or TicketFilter()
        if where.status and where.status not in self.rules.statuses:
            raise TicketError(f"unknown status {where.status!r}; one of {', '.join(self.rules.statuses)}")
        query = select(TicketRow)
        for column in ("status", "team", "severity", "kind", "customer_ref"):
            value = getattr(where, column)
            if value:
                query = query.where(getattr(TicketRow, column) == value)
        if where.open_only:
            query = query.where(TicketRow.status.not_in(CLOSED_STATUSES))
        query = query.order_by(TicketRow.created_at.desc(), TicketRow.id).limit(where.limit)
        with self.sessions() as session:
            return [_ticket(row, []) for row in session.scalars(query).all()]

    def of_customer(self, customer_ref: str, ticket_id: str | None = None, kind: str | None = "complaint",
                    open_only: bool = False, limit: int = 20) -> list[Ticket]:
        """One customer's tickets, newest first; with `ticket_id`, that ticket only if it is theirs
        (the owner is part of the query: someone else's ticket is never read, and looks unknown)."""
        if not customer_ref.strip():
            return []
        query = select(TicketRow).where(TicketRow.customer_ref == customer_ref)
        if ticket_id is not None:
            query = query.where(TicketRow.id == ticket_id.strip().upper())
        if kind:
            query = query.where(TicketRow.kind == kind)
        if open_only:
            query = query.where(TicketRow.status.not_in(CLOSED_STATUSES))
        query = query.order_by(TicketRow.created_at.desc(), TicketRow.id).limit(limit)
        with self.sessions() as session:
            return [_ticket(row, []) for row in session.scalars(query).all()]

    def recent_complaints(self, customer_ref: str, days: int) -> list[Ticket]:
        since = self.clock() - timedelta(days=days)
        query = (select(TicketRow).where(TicketRow.customer_ref == customer_ref, TicketRow.kind == "complaint",
                                         TicketRow.created_at >= since).order_by(TicketRow.created_at.desc()))
        with self.sessions() as session:
            return [_ticket(row, []) for row in session.scalars(query).all()]

    def breaches(self, within_hours: float | None = None, now: datetime | None = None) -> list[Breach]:
        """Open tickets past a deadline, or within `within_hours` of one (the SLA report)."""
        now = now or self.clock()
        window = timedelta(hours=self.rules.near_breach_hours if within_hours is None else within_hours)
        found: list[Breach] = []
        for ticket in self.list(TicketFilter(open_only=True, limit=10_000)):
            for name, due in _open_deadlines(ticket):
                if due <= now + window:
                    found.append(Breach(ticket=ticket, deadline=name, due=due,
                                        state="breached" if due <= now else "near",
                                        hours_left=round((due - now).total_seconds() / 3600, 1)))
        return sorted(found, key=lambda b: b.due)

    # --- update ------------------------------------------------------------------------------------
    def update(self, ticket_id: str, status: str | None = None, note: str = "", actor: str = "staff",
               extend: bool = False) -> Ticket:
        """Move a ticket to `status`, extend its resolution deadline (with the notice to the
        customer as the note), or add a note. Every change is an event in its audit trail."""
        if status is not None and status not in self.rules.statuses:
            raise TicketError(f"unknown status {status!r}; one of {', '.join(self.rules.statuses)}")
        if status is None and not extend and not note.strip():
            raise TicketError("nothing to change: give a status, --extend or a note")
        now = self.clock()
        with self.sessions() as session:
            row = session.get(TicketRow, ticket_id.strip(), with_for_update=True)
            if row is None:
                raise TicketError(f"no ticket {ticket_id!r}")
            if status == row.status and not extend and not note.strip():
                raise TicketError(f"ticket {row.id} is already {status}")
            events = []
            if extend:
                events.append(self._extend(row, note, now))
            if status is not None and status != row.status:
                if not self.rules.can_move(row.status, status):
                    allowed = ", ".join(self.rules.statuses[row.status]) or "none: it is final"
                    raise TicketError(f"ticket {row.id} is {row.status}; it can move to: {allowed}")
                events.append(TicketEventRow(ticket_id=row.id, at=now, actor=actor, action="status",
                                             from_status=row.status, to_status=status, note=self.redact(note)))
                row.status = status
                if status == "acknowledged" or (status != "open" and row.acknowledged_at is None):
                    row.acknowledged_at = row.acknowledged_at or now
                if status in CLOSED_STATUSES:
                    row.resolved_at = row.resolved_at or now
                elif row.resolved_at is not None:
                    row.resolved_at = None  # reopened
            if not events:
                events.append(TicketEventRow(ticket_id=row.id, at=now, actor=actor, action="note",
                                             note=self.redact(note)))
            for event in events:
                event.actor = actor
            row.updated_at = now
            session.add_all(events)
            session.commit()
        return self.get(ticket_id)

    def _extend(self, row: TicketRow, notice: str, now: datetime) -> TicketEventRow:
        if row.kind != "complaint":
            raise TicketError(f"ticket {row.id} is a {row.kind}: only complaints have a resolution deadline to extend")
        if row.extended:
            raise TicketError(f"ticket {row.id} is already extended")
        if row.status in CLOSED_STATUSES:
            raise TicketError(f"ticket {row.id} is {row.status}")
        if not notice.strip():
            raise TicketError("an extension needs the notice sent to the customer (--note): why, and when they will hear")
        if now > row.resolve_due:
            raise TicketError(f"ticket {row.id}: the notice had to reach the customer before {row.resolve_due:%Y-%m-%d %H:%M} UTC")
        old = row.resolve_due
        row.resolve_due = _utc(self.rules.due("extended_resolve", row.created_at))
        row.extended = True
        return TicketEventRow(ticket_id=row.id, at=now, actor="", action="extended", note=self.redact(
            f"{notice.strip()} (resolution deadline {old:%Y-%m-%d %H:%M} -> {row.resolve_due:%Y-%m-%d %H:%M} UTC)"))


def conversation_excerpt(conversation: Conversation, limit: int = EXCERPT_MESSAGES) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in conversation.messages[-limit:] if m.role != "system"]


def _open_deadlines(ticket: Ticket) -> list[tuple[str, datetime]]:
    found: list[tuple[str, datetime]] = []
    if ticket.status == "open":
        found.append(("respond" if ticket.kind == "handoff" else "acknowledge", ticket.ack_due))
    if ticket.kind == "complaint":
        found.append(("resolve", ticket.resolve_due))
        if not ticket.extended and ticket.extension_notice_due is not None:
            found.append(("extension_notice", ticket.extension_notice_due))
    return found


def _ticket(row: TicketRow, events: list[TicketEventRow]) -> Ticket:
    data = {c.name: getattr(row, c.name) for c in TicketRow.__table__.columns}
    data["events"] = [TicketEvent(at=e.at, actor=e.actor, action=e.action, from_status=e.from_status,
                                  to_status=e.to_status, note=e.note) for e in events]
    return Ticket.model_validate(data)


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def ticket_json(ticket: Ticket) -> dict[str, Any]:
    return json.loads(ticket.model_dump_json())


# --- escalation (the complaint skill: a customer back about a complaint past its deadline) ---------
# Kept at the end of the file, as a function over the service, so that it stays apart from the
# store's own changes; it is part of the service's interface all the same.
_SEVERITY_RANK = {"normal": 0, "high": 1, "urgent": 2}


def escalate_ticket(service: TicketService, ticket_id: str, severity: str, escalation: str, note: str,
                    actor: str = "assistant") -> tuple[Ticket, bool]:
    """Raise a ticket's severity (never lower it), record `escalation` on it and an "escalated"
    event with `note` (redacted). Returns the ticket and whether it was escalated now (False when
    `escalation` was already recorded: a second visit adds a note, not a second escalation)."""
    now = service.clock()
    with service.sessions() as session:
        row = session.get(TicketRow, ticket_id.strip(), with_for_update=True)
        if row is None:
            raise TicketError(f"no ticket {ticket_id!r}")
        fresh = escalation not in (row.escalations or [])
        if fresh:
            row.escalations = [*(row.escalations or []), escalation]
            if _SEVERITY_RANK.get(severity, 0) > _SEVERITY_RANK.get(row.severity, 0):
                row.severity = severity
        session.add(TicketEventRow(ticket_id=row.id, at=now, actor=actor, action="escalated" if fresh else "note",
                                   note=service.redact(note)))
        row.updated_at = now
        session.commit()
    return service.get(ticket_id), fresh
