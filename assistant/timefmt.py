"""Times as people read them: parse what the store or an API hands back, count down to a deadline."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def parse_time(value: Any) -> datetime | None:
    """A datetime or ISO text (a trailing Z allowed) as an aware datetime; naive values are UTC."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def countdown(value: Any, now: datetime | None = None) -> str:
    moment = parse_time(value)
    if moment is None:
        return ""
    seconds = (moment - (now or datetime.now(timezone.utc))).total_seconds()
    sign, seconds = ("overdue by " if seconds < 0 else "in "), abs(seconds)
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return sign + (f"{days} d {hours} h" if days else f"{hours} h {rest // 60} min")
