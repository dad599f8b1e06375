"""Counted clips and their cost per UTC day and member: what `/videolimit usage` reports and charts.

One read gives both the per-day series and the per-member totals, so the chart and the text
beside it can never disagree (a job stored between two reads would make them differ).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.storage.database import Executor
from services.storage.jobs import COUNTED

DAY_SECONDS = 86400


@dataclass(frozen=True, slots=True)
class DayMemberCount:
    """One member's counted clips and their cost on one UTC day (``day`` = days since 1970)."""

    day: int
    user_id: int
    clips: int
    cost_usd: float


async def counted_per_day_and_member(
    db: Executor, guild_id: int, since: float, *, user_id: int | None = None
) -> list[DayMemberCount]:
    """Counted jobs created at or after ``since``, grouped by UTC day and member.

    The same rule (``COUNTED``) and the same boundary (``created_at >= since``) as the
    per-member totals the usage report always showed. Unix time has no leap seconds, so a
    UTC day is exactly the integer part of ``created_at / 86400`` (times are never negative).
    """
    where, params = "guild_id = ? AND created_at >= ?", [guild_id, since]
    if user_id is not None:
        where += " AND user_id = ?"
        params.append(user_id)
    # PostgreSQL's CAST rounds (noon would be the next day) where SQLite's truncates, and
    # SQLite has FLOOR only when built with its math functions.
    day = f"created_at / {DAY_SECONDS}"
    if db.dialect == "postgresql":
        day = f"FLOOR({day})"
    rows = await db.fetchall(
        f"SELECT CAST({day} AS INTEGER) AS day, user_id,"
        " COUNT(*), COALESCE(SUM(cost_usd), 0) FROM jobs"
        f" WHERE {where} AND {COUNTED} GROUP BY day, user_id ORDER BY day, user_id",
        params,
    )
    return [DayMemberCount(int(r[0]), int(r[1]), int(r[2]), float(r[3])) for r in rows]
