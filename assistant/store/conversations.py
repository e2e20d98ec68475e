"""Conversations kept in the store between turns, so that a web worker keeps nothing in memory.

A conversation belongs to one customer: `load(id, customer_id)` returns None for an id that is
unknown *or* someone else's (the caller cannot tell which), and `save` refuses to overwrite
another customer's conversation. Messages are stored as the pipeline keeps them (redacted).

When the store is down, `save` keeps the conversation in a spool file (`<data_dir>/spool/conversations`)
and says so ("spooled"); `load` then reads the newest spooled copy, so the next turn goes on from it.
`replay_spool` (after a save, at start-up and on a schedule) writes a spooled copy to the store only when
it is newer than the stored one: replays are idempotent and never undo a later turn."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import Integer, String, Text, inspect, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from assistant.config import Settings
from assistant.store.db import Base, StoreUnavailable
from assistant.store.spool import Claim, Spool
from assistant.store.tickets import LazySessions, UTCDateTime
from assistant.types import Conversation, utcnow

log = logging.getLogger(__name__)

SaveStatus = Literal["stored", "spooled"]
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    data: Mapped[str] = mapped_column(Text)  # the Conversation as JSON
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # bumped by every write: `save(expected_version=...)` refuses a stale write (several workers, one conversation)
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ConversationOwnerError(PermissionError):
    """The conversation id belongs to another customer."""


class ConversationConflict(RuntimeError):
    """The conversation was saved by someone else since it was loaded (optimistic version check)."""


class ConversationSpool(Spool):
    """`<key>~<time_ns>.json` per spooled save: {"saved_at": iso time, "conversation": {...}}. Names
    are unique, so a newer save never overwrites a copy that a replayer holds."""

    def write(self, conversation: Conversation, saved_at: datetime) -> Path:
        record = {"saved_at": saved_at.isoformat(), "conversation": conversation.model_dump(mode="json")}
        return self.write_text(f"{_key(conversation.id)}~{time.time_ns():020d}.json", json.dumps(record))

    def copies(self, conversation_id: str) -> list[Path]:
        """Spooled copies of one conversation, waiting or being replayed, in any order."""
        if not self.folder.is_dir():
            return []
        return list(self.folder.glob(f"{_key(conversation_id)}~*.json")) + \
            list(self.folder.glob(f"{_key(conversation_id)}~*.json.claim-*"))

    @staticmethod
    def parse(text: str) -> tuple[datetime, Conversation]:
        record = json.loads(text)
        return datetime.fromisoformat(record["saved_at"]), Conversation.model_validate(record["conversation"])


class ConversationStore(LazySessions):
    def __init__(self, settings: Settings, sessions: sessionmaker | None = None, spool_dir: Path | None = None):
        self.settings = settings
        self._sessions = sessions
        self.spool = ConversationSpool(spool_dir or settings.data_dir / "spool" / "conversations")

    # --- write -------------------------------------------------------------------------------
    def save(self, conversation: Conversation, expected_version: int | None = None) -> SaveStatus:
        """"stored", or "spooled" when the store is down (kept durably; replayed later). Raises
        ConversationOwnerError for another customer's id, StoreUnavailable when nothing could be kept.
        With `expected_version` (from `load_versioned`; 0: not stored yet), ConversationConflict when
        someone else saved it since."""
        try:
            try:
                self._save(conversation, expected_version)
            except IntegrityError:  # another worker inserted the same new conversation first
                self._save(conversation, expected_version)
        except (ConversationOwnerError, ConversationConflict):
            raise
        except (SQLAlchemyError, OSError) as exc:
            return self._spool_save(conversation, exc)
        self._replay_quietly()
        return "stored"

    def _save(self, conversation: Conversation, expected_version: int | None = None) -> None:
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
            elif row.customer_id != conversation.customer_id:
                raise ConversationOwnerError(f"conversation {conversation.id} belongs to another customer")
            else:  # compare-and-set in one statement: safe across workers on SQLite and PostgreSQL alike
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

    def load_versioned(self, conversation_id: str, customer_id: str) -> tuple[Conversation, int | None] | None:
        """As `load`, with the stored version for `save(expected_version=...)`: None when the copy
        came from the spool (no check then), 0 when the conversation is not stored yet."""
        try:
            with self.sessions() as session:
                self._ensure_version_column(session)
                row = session.get(ConversationRow, conversation_id, populate_existing=True)
                version = None if row is None else row.version
        except (SQLAlchemyError, OSError):
            found = self.load(conversation_id, customer_id)  # the spooled copy, or StoreUnavailable
            return None if found is None else (found, None)
        found = self.load(conversation_id, customer_id)
        if found is None:
            return None
        if row is None or self._newest_spooled(conversation_id, customer_id) is not None:
            return found, (0 if row is None else None)
        return found, version

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

    def _spool_save(self, conversation: Conversation, cause: Exception) -> SaveStatus:
        try:
            self.spool.write(conversation, utcnow())
        except OSError as exc:
            raise StoreUnavailable("the conversation could not be saved: the store and the spool are both "
                                   f"unavailable ({type(cause).__name__}, {type(exc).__name__})") from cause
        log.error("conversation store unavailable, %s kept in the spool: %s", conversation.id, cause)
        return "spooled"

    # --- replay ------------------------------------------------------------------------------
    def replay_spool(self) -> list[str]:
        """Write spooled copies that are newer than the stored ones; returns the ids written now.
        Raises the store's error while it is still down (the copies stay for the next replay)."""
        self.spool.recover_stale()
        written: list[str] = []
        for path in self.spool.pending():
            claim = self.spool.claim(path)
            if claim is None:  # another replayer has it
                continue
            try:
                saved_at, conversation = ConversationSpool.parse(claim.text())
            except (ValueError, KeyError, TypeError, OSError):
                log.error("unreadable conversation spool file %s set aside as .bad", path)
                claim.set_aside()
                continue
            self._replay_one(claim, saved_at, conversation, written)
        return written

    def _replay_one(self, claim: Claim, saved_at: datetime, conversation: Conversation, written: list[str]) -> None:
        try:
            outcome = self._write_if_newer(conversation, saved_at)
        except BaseException:
            claim.release()
            raise
        if outcome == "owner":
            log.error("spooled conversation %s belongs to another customer in the store; set aside as .bad",
                      conversation.id)
            claim.set_aside()
            return
        if outcome == "written" and conversation.id not in written:
            written.append(conversation.id)
        claim.done()

    def _write_if_newer(self, conversation: Conversation, saved_at: datetime) -> str:
        """One atomic conditional write: "written", "older" (the store has a later save) or "owner"."""
        data = conversation.model_dump_json()
        for _ in range(3):
            with self.sessions() as session:
                changed = session.execute(
                    update(ConversationRow).where(ConversationRow.id == conversation.id,
                                                  ConversationRow.customer_id == conversation.customer_id,
                                                  ConversationRow.updated_at < saved_at)
                    .values(data=data, updated_at=saved_at, version=ConversationRow.version + 1)).rowcount
                if changed:
                    session.commit()
                    return "written"
                row = session.get(ConversationRow, conversation.id)
                if row is not None:
                    return "older" if row.customer_id == conversation.customer_id else "owner"
                try:
                    session.add(ConversationRow(id=conversation.id, customer_id=conversation.customer_id, data=data,
                                                created_at=saved_at, updated_at=saved_at))
                    session.commit()
                    return "written"
                except IntegrityError:  # inserted meanwhile: compare again
                    session.rollback()
        return "older"

    def _replay_quietly(self) -> None:
        if not self.spool.pending():
            return
        try:
            replayed = self.replay_spool()
            if replayed:
                log.info("replayed %d spooled conversations", len(replayed))
        except (SQLAlchemyError, OSError):
            log.exception("conversation spool replay failed; it will be retried")

    # --- read --------------------------------------------------------------------------------
    def load(self, conversation_id: str, customer_id: str) -> Conversation | None:
        """The customer's conversation: the stored one, or a newer spooled copy. When the store is down,
        the spooled copy if there is one, else StoreUnavailable."""
        spooled = self._newest_spooled(conversation_id, customer_id)
        try:
            with self.sessions() as session:
                row = session.get(ConversationRow, conversation_id)
        except (SQLAlchemyError, OSError) as exc:
            if spooled is not None:
                return spooled[1]
            raise StoreUnavailable("conversations cannot be read: the store is unavailable",
                                   reference=None) from exc
        if row is not None and row.customer_id != customer_id:
            return None
        if spooled is not None and (row is None or spooled[0] > row.updated_at):
            return spooled[1]
        return None if row is None else Conversation.model_validate_json(row.data)

    def _newest_spooled(self, conversation_id: str, customer_id: str) -> tuple[datetime, Conversation] | None:
        newest = None
        for path in self.spool.copies(conversation_id):
            try:
                saved_at, conversation = ConversationSpool.parse(path.read_text(encoding="utf-8"))
            except (OSError, ValueError, KeyError, TypeError):  # replayed meanwhile, or unreadable
                continue
            if conversation.id != conversation_id or conversation.customer_id != customer_id:
                continue
            if newest is None or saved_at > newest[0]:
                newest = (saved_at, conversation)
        return newest

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
        for path in self.spool.copies(conversation_id):  # a deleted conversation is not brought back
            path.unlink(missing_ok=True)
        return True


def _key(conversation_id: str) -> str:
    """A file-name-safe key for a conversation id (ids the server makes are already safe)."""
    if _SAFE_ID.fullmatch(conversation_id):
        return conversation_id
    return "h" + hashlib.sha256(conversation_id.encode("utf-8")).hexdigest()[:40]
