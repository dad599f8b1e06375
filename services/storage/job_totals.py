"""Totals over every stored job, read when metrics are scraped so they are exact after a restart."""

from __future__ import annotations

from services.storage.database import Executor
from services.storage.jobs import COUNTED


async def jobs_by_state(db: Executor) -> dict[str, int]:
    """How many stored jobs stand in each state (states with none are absent)."""
    rows = await db.fetchall("SELECT state, COUNT(*) FROM jobs GROUP BY state")
    return {str(row[0]): int(row[1]) for row in rows}


async def spend_by_guild(db: Executor) -> dict[int, float]:
    """Dollars of every counted clip ever admitted, per server (``bot.py generate``'s under 0)."""
    rows = await db.fetchall(
        f"SELECT guild_id, COALESCE(SUM(cost_usd), 0) FROM jobs WHERE {COUNTED} GROUP BY guild_id"
    )
    return {int(row[0]): float(row[1]) for row in rows}


async def answers(db: Executor) -> None:
    """A query that touches no table: proves the connection answers (the health check)."""
    await db.fetchone("SELECT 1")
