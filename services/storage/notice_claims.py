"""Which process tells a job's failure: a claim, so two processes never tell it twice.

A claim lasts until its holder's next attempt (plus a margin); a process that dies leaves
it to run out, and another process's sweep then takes the notice over.
"""

from __future__ import annotations

from services.storage.database import Executor


class FailureNoticeClaims:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def claim(self, job_id: int, owner: str, *, now: float, until: float) -> bool:
        """Hold the job's owed notice for ``owner`` until ``until``; False if another holds it
        (or it is no longer owed). One conditional UPDATE: only one process wins."""
        changed = await self._db.execute(
            "UPDATE jobs SET failure_notice_claimed_by = ?, failure_notice_claimed_until = ?"
            " WHERE id = ? AND failure_notice_due IS NOT NULL"
            " AND (failure_notice_claimed_by = ? OR failure_notice_claimed_until IS NULL"
            " OR failure_notice_claimed_until <= ?)",
            (owner, until, job_id, owner, now),
        )
        return changed > 0

    async def release(self, owner: str | None) -> None:
        """Give back ``owner``'s claims (None: everyone's), so another process tells them now."""
        where = "failure_notice_due IS NOT NULL AND failure_notice_claimed_until IS NOT NULL"
        params: tuple[str, ...] = ()
        if owner is not None:
            where += " AND failure_notice_claimed_by = ?"
            params = (owner,)
        await self._db.execute(
            f"UPDATE jobs SET failure_notice_claimed_until = NULL WHERE {where}", params
        )
