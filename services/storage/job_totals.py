"""Totals over every stored job, read when metrics are scraped so they are exact after a restart.

A server's budget counts (``services.storage.jobs.COUNTED``) what Segmind accepted plus what
is reserved for it (queued, being sent, outcome unknown); the two sums here are those parts,
each read from its own small index (migration 0005), never from the job rows.
"""

from __future__ import annotations

from services.storage.database import Executor

# Segmind accepted it, so it is billed. A request id is never cleared and jobs are never
# deleted, but a job's cost changes once: admission's estimate until Segmind's result
# reports its own figure (``cost_reported``), which may be lower. So this sum mostly grows
# and can fall by that difference; services/metrics.py keeps its counter from falling.
BILLED = "request_id IS NOT NULL"
# Counted but not accepted (yet): released when the job is cancelled or surely refused.
# BILLED OR RESERVED is COUNTED, and the two never overlap.
RESERVED = "request_id IS NULL AND state IN ('queued', 'submitting', 'unknown')"


async def jobs_by_state(db: Executor) -> dict[str, int]:
    """How many stored jobs stand in each state (states with none are absent)."""
    rows = await db.fetchall("SELECT state, COUNT(*) FROM jobs GROUP BY state")
    return {str(row[0]): int(row[1]) for row in rows}


async def spend_billed_by_guild(db: Executor) -> dict[int, float]:
    """Dollars of every clip Segmind ever accepted, per server (``bot.py generate``'s under 0)."""
    return await _spend_by_guild(db, BILLED)


async def spend_reserved_by_guild(db: Executor) -> dict[int, float]:
    """Dollars held for clips not yet accepted (queued, being sent, outcome unknown), per server."""
    return await _spend_by_guild(db, RESERVED)


async def _spend_by_guild(db: Executor, where: str) -> dict[int, float]:
    rows = await db.fetchall(
        f"SELECT guild_id, COALESCE(SUM(cost_usd), 0) FROM jobs WHERE {where} GROUP BY guild_id"
    )
    return {int(row[0]): float(row[1]) for row in rows}


async def answers(db: Executor) -> None:
    """A query that touches no table: proves the connection answers (the health check)."""
    await db.fetchone("SELECT 1")
