"""Meadow's complaint-handling rules (knowledge_base/rules/complaints.yaml), typed: the
regulatory clock with its holiday calendar, severity and escalation triggers, hand-off response
times and the ticket statuses. Every figure comes from the rule file."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, Field, model_validator

from assistant.config import Settings
from assistant.timefmt import lender_time

log = logging.getLogger(__name__)

Severity = Literal["urgent", "high", "normal"]
SEVERITY_ORDER = {"normal": 0, "high": 1, "urgent": 2}
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
END_OF_DAY = time(23, 59, 59)
CLOSED = {"resolved", "closed"}


class Deadline(BaseModel):
    amount: int = Field(ge=0)
    unit: Literal["hours", "calendar_days", "working_days"]
    roll_forward: bool = False
    before: str | None = None  # counted back from another deadline


class Trigger(BaseModel):
    name: str
    severity: Severity = "high"
    patterns: list[str] = Field(default_factory=list)
    issues: list[str] = Field(default_factory=list)
    repeat_within_days: int | None = None

    def fires(self, text: str, issue: str | None, repeated: bool) -> bool:
        if issue and issue in self.issues:
            return True
        if self.repeat_within_days is not None and repeated:
            return True
        return any(re.search(p, text, re.I) for p in self.patterns)


class HandoffRules(BaseModel):
    service_hours: dict[str, str]
    respond_within_hours: dict[str, float]
    team_by_flag: dict[str, str] = Field(default_factory=dict)
    default_team: str = "customer_care"

    def team_for(self, urgency: list[str]) -> str:
        return next((self.team_by_flag[f] for f in urgency if f in self.team_by_flag), self.default_team)


class OverdueEscalation(BaseModel):
    """What happens when a customer comes back about a complaint past its deadline."""

    severity: Severity = "urgent"
    escalation: str = "deadline_missed"  # recorded on the ticket's escalations
    escalate_to: str = "complaints_manager"  # a key of complaint_taxonomy.yaml customer_teams


class TicketDeadlines(BaseModel):
    ack_due: datetime
    resolve_due: datetime
    extended_resolve_due: datetime
    extension_notice_due: datetime


class ComplaintRules(BaseModel):
    version: str = "1"
    timezone: str = "Asia/Shanghai"
    deadlines: dict[str, Deadline]
    near_breach_hours: float = 24
    working_week: list[str] = Field(default_factory=lambda: WEEKDAYS[:5])
    calendar_years: list[int] = Field(default_factory=list)
    holidays: set[date] = Field(default_factory=set)
    makeup_working_days: set[date] = Field(default_factory=set)
    urgent_flags: list[str] = Field(default_factory=list)
    escalation_triggers: list[Trigger] = Field(default_factory=list)
    handoff: HandoffRules
    min_detail_words: int = 6
    overdue_escalation: OverdueEscalation = Field(default_factory=OverdueEscalation)
    repeat_contact_patterns: list[str] = Field(default_factory=list)
    statuses: dict[str, list[str]]

    @model_validator(mode="after")
    def _check(self) -> "ComplaintRules":
        for name in ("acknowledge", "resolve", "extended_resolve", "extension_notice"):
            if name not in self.deadlines:
                raise ValueError(f"deadlines.{name} is missing")
        for status, moves in self.statuses.items():
            unknown = set(moves) - set(self.statuses)
            if unknown:
                raise ValueError(f"statuses.{status}: unknown statuses {sorted(unknown)}")
        if "open" not in self.statuses:
            raise ValueError("statuses must include 'open'")
        ZoneInfo(self.timezone)
        for pattern in [*self.repeat_contact_patterns, *(p for t in self.escalation_triggers for p in t.patterns)]:
            re.compile(pattern)
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    # --- calendar ----------------------------------------------------------------------------------
    def is_working_day(self, day: date) -> bool:
        if self.calendar_years and day.year not in self.calendar_years:
            _warn_no_calendar(day.year)
        if day in self.makeup_working_days:
            return True
        return WEEKDAYS[day.weekday()] in self.working_week and day not in self.holidays

    def add_working_days(self, day: date, n: int) -> date:
        step = 1 if n >= 0 else -1
        remaining = abs(n)
        while remaining:
            day += timedelta(days=step)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def end_of(self, day: date) -> datetime:
        return datetime.combine(day, END_OF_DAY, self.tz)

    # --- deadlines ---------------------------------------------------------------------------------
    def due(self, name: str, start: datetime) -> datetime:
        rule = self.deadlines[name]
        if rule.unit == "hours":
            return start + timedelta(hours=rule.amount)
        local = start.astimezone(self.tz).date()
        if rule.unit == "calendar_days":
            last = local + timedelta(days=rule.amount)
            while rule.roll_forward and not self.is_working_day(last):
                last += timedelta(days=1)
        else:
            last = self.add_working_days(local, rule.amount)
        return self.end_of(last)

    def deadlines_for(self, created: datetime) -> TicketDeadlines:
        resolve = self.due("resolve", created)
        notice = self.deadlines["extension_notice"]
        notice_day = self.add_working_days(resolve.astimezone(self.tz).date(), -notice.amount)
        return TicketDeadlines(ack_due=self.due("acknowledge", created), resolve_due=resolve,
                               extended_resolve_due=self.due("extended_resolve", created),
                               extension_notice_due=self.end_of(notice_day))

    def handoff_due(self, created: datetime, severity: str) -> datetime:
        """When a person answers a hand-off: N hours of service time (the hotline's hours)."""
        hours = self.handoff.respond_within_hours.get(severity, max(self.handoff.respond_within_hours.values()))
        opens = time.fromisoformat(self.handoff.service_hours["open"])
        closes = time.fromisoformat(self.handoff.service_hours["close"])
        t = created.astimezone(self.tz)
        left = timedelta(hours=hours)
        while True:
            day_open, day_close = (datetime.combine(t.date(), x, self.tz) for x in (opens, closes))
            if t < day_open:
                t = day_open
            if t >= day_close:
                t = datetime.combine(t.date() + timedelta(days=1), opens, self.tz)
                continue
            if t + left <= day_close:
                return t + left
            left -= day_close - t
            t = datetime.combine(t.date() + timedelta(days=1), opens, self.tz)

    def display(self, moment: datetime, fmt: str | None = None) -> str:
        """A deadline as the customer reads it: the lender's local time with its zone (the one
        customer-facing format, assistant.timefmt.lender_time); `fmt` is kept for old callers."""
        return lender_time(moment, self.tz)

    def overdue(self, ticket: Any, now: datetime) -> tuple[str, datetime] | None:
        """The first deadline an open complaint has missed ("acknowledge" or "resolve"), if any."""
        if ticket.status in CLOSED:
            return None
        if now > ticket.resolve_due:  # the later, graver miss first
            return "resolve", ticket.resolve_due
        if ticket.status == "open" and ticket.acknowledged_at is None and now > ticket.ack_due:
            return "acknowledge", ticket.ack_due
        return None

    # --- severity ----------------------------------------------------------------------------------
    def assess(self, text: str, issue: str | None, urgency: list[str], repeated: bool = False) -> tuple[Severity, list[str]]:
        """Severity and the escalation triggers that fired."""
        fired = [t for t in self.escalation_triggers if t.fires(text, issue, repeated)]
        severity: Severity = "normal"
        for trigger in fired:
            if SEVERITY_ORDER[trigger.severity] > SEVERITY_ORDER[severity]:
                severity = trigger.severity
        if set(urgency) & set(self.urgent_flags):
            severity = "urgent"
        return severity, [t.name for t in fired]

    def is_repeat_contact(self, text: str) -> bool:
        """The customer says they have complained or contacted Meadow about this before."""
        plain = re.sub(r"[\u2019'`]", "", text.lower())
        return any(re.search(p, plain) for p in self.repeat_contact_patterns)

    def detail_words(self, text: str) -> int:
        """Words that say what happened: the message less its repeat-contact phrases ("3rd time
        contacting you" is no detail of a complaint)."""
        plain = re.sub(r"[\u2019'`]", "", text.lower())
        for pattern in self.repeat_contact_patterns:
            plain = re.sub(pattern, " ", plain)
        return len(plain.split())

    def repeat_window_days(self) -> int | None:
        return next((t.repeat_within_days for t in self.escalation_triggers if t.repeat_within_days), None)

    def can_move(self, from_status: str, to_status: str) -> bool:
        return to_status in self.statuses.get(from_status, [])


@lru_cache(maxsize=None)
def _warn_no_calendar(year: int) -> None:
    log.warning("complaint rules: no holiday calendar for %s; counting weekdays only", year)


def complaint_rules_file(settings: Settings) -> Path:
    return settings.knowledge_dir / "rules" / "complaints.yaml"


def load_complaint_rules(path: Path) -> ComplaintRules:
    return _load(Path(path).resolve())


@lru_cache(maxsize=8)
def _load(path: Path) -> ComplaintRules:
    if not path.is_file():
        raise FileNotFoundError(f"complaint rules {path} not found")
    return ComplaintRules.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
