"""Calendar days and months in UTC: where budgets and the operator's ceiling reset.

Each takes a Unix time and returns one: the start of its UTC day or month, the start of
the next, or a key naming the day or month (for alerts sent once per period).
"""

from __future__ import annotations

from datetime import UTC, datetime


def _utc(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def utc_day_start(now: float) -> float:
    return _utc(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def utc_next_day(now: float) -> float:
    return utc_day_start(now) + 86400


def utc_month_start(now: float) -> float:
    return _utc(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def utc_next_month(now: float) -> float:
    start = _utc(utc_month_start(now))
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month).timestamp()


def day_key(now: float) -> str:
    return _utc(now).strftime("%Y-%m-%d")


def month_key(now: float) -> str:
    return _utc(now).strftime("%Y-%m")
