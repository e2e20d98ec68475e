"""Times as people read them: parse what the store or an API hands back, count down to a deadline,
and show a moment to a customer in the lender's local time (`lender_time`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo


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


# Long names of the zones a lender may run in (zoneinfo knows only abbreviations such as "CST",
# which is also a US zone). Any other zone shows its abbreviation.
ZONE_NAMES = {
    "Asia/Shanghai": "China Standard Time", "Asia/Chongqing": "China Standard Time",
    "Asia/Hong_Kong": "Hong Kong Time", "Asia/Taipei": "Taipei Standard Time",
    "Asia/Singapore": "Singapore Time", "Asia/Tokyo": "Japan Standard Time",
    "UTC": "Coordinated Universal Time", "Etc/UTC": "Coordinated Universal Time",
}


def lender_time(moment: Any, tz: Any) -> str:
    """The one customer-facing time format: the lender's local time with its zone,
    "Tue 9 Dec 2025, 17:00 (China Standard Time, UTC+8)". `tz` is a zone name or a tzinfo."""
    when = parse_time(moment)
    if when is None:
        return ""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    local = when.astimezone(zone)
    offset = int((local.utcoffset() or timedelta(0)).total_seconds()) // 60
    hours, minutes = divmod(abs(offset), 60)
    utc = f"UTC{'-' if offset < 0 else '+'}{hours}{f':{minutes:02d}' if minutes else ''}"
    name = ZONE_NAMES.get(str(getattr(zone, "key", "")), local.tzname() or "")
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} ({name}, {utc})"


LOCAL_KEYS = ("created_at", "ack_due", "resolve_due", "respond_by", "acknowledged_at", "resolved_at")


def with_local(data: dict[str, Any], tz: Any, keys: tuple[str, ...] = LOCAL_KEYS) -> dict[str, Any]:
    """`data` with a `<key>_local` display string (lender_time) beside each ISO UTC time it has."""
    return {**data, **{f"{k}_local": lender_time(data[k], tz) for k in keys if data.get(k)}}
