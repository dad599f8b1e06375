"""Job leases: which process runs which job, and the Segmind slots, counted across processes.

Every unfinished job belongs to one process at a time (``lease_owner``), which renews its
lease well before ``lease_until``. A job whose lease ran out (its process died, or stopped
and handed it back) is taken over by the next process that looks. Every statement that
decides between processes runs inside one write transaction, so two processes can never
both take one job or both fill the last slot: on SQLite the one writer, on PostgreSQL the
write lock (``postgres_database``), the equivalent of FOR UPDATE on every row it reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from services.models import Job, JobState
from services.storage.database import Database, Executor
from services.storage.jobs import _job_from_row

# Not ended: the jobs someone must run (a DOWNLOADED clip still waits to be posted).
UNFINISHED = "state IN ({})".format(
    ", ".join(f"'{state.value}'" for state in JobState if not state.is_terminal)
)
# Holding a Segmind slot: started, and its clip not yet on disk.
HOLDS_SLOT = (
    "(state IN ('submitting', 'submitted', 'processing') OR (state = 'queued' AND slot_held = 1))"
)
# Waiting for a slot, and shown to its member (a job not yet acknowledged must not start).
WAITING = (
    "state = 'queued' AND slot_held = 0 AND (message_id IS NOT NULL OR interaction_token IS NULL)"
)
_PAGE = 500  # a start taking over a long queue reads it in pages


@dataclass(frozen=True, slots=True)
class Slots:
    """Who holds Segmind slots now, in every process: the total and per (guild, member)."""

    total: int
    members: Counter[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class CancelRequest:
    job_id: int
    by: int | None


class LeaseStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def take_over(
        self, owner: str, *, now: float, until: float, expired_before: float, limit: int = _PAGE
    ) -> list[Job]:
        """Unfinished jobs of other processes (or none) whose lease ran out before
        ``expired_before``, now ``owner``'s until ``until``; oldest first."""
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                f"SELECT id FROM jobs WHERE {UNFINISHED}"
                " AND (lease_owner IS NULL OR lease_until IS NULL OR lease_until < ?)"
                " AND (lease_owner IS NULL OR lease_owner <> ?) ORDER BY id LIMIT ?",
                (expired_before, owner, limit),
            )
            ids = [int(row[0]) for row in rows]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            await tx.execute(
                f"UPDATE jobs SET lease_owner = ?, lease_until = ?, updated_at = ?"
                f" WHERE id IN ({marks})",
                (owner, until, now, *ids),
            )
            taken = await tx.fetchall(f"SELECT * FROM jobs WHERE id IN ({marks}) ORDER BY id", ids)
        return [_job_from_row(row) for row in taken]

    async def adopt(self, job_id: int, owner: str, *, now: float, until: float) -> Job | None:
        """Lease one job to ``owner`` unless another process holds a live lease on it."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE jobs SET lease_owner = ?, lease_until = ? WHERE id = ? AND {UNFINISHED}"
                " AND (lease_owner IS NULL OR lease_owner = ? OR lease_until IS NULL"
                " OR lease_until < ?)",
                (owner, until, job_id, owner, now),
            )
            row = (
                await tx.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,)) if changed else None
            )
        return _job_from_row(row) if row is not None else None

    async def renew(self, owner: str, *, until: float, running: Collection[int] = ()) -> set[int]:
        """Push ``owner``'s leases out to ``until``; those of ``running`` another process took.

        A job taken over (this process was too slow to renew) must not be touched here any
        more. One that merely ended meanwhile is not taken: it still names this process.
        """
        async with self._db.transaction() as tx:
            await tx.execute(
                f"UPDATE jobs SET lease_until = ? WHERE lease_owner = ? AND {UNFINISHED}",
                (until, owner),
            )
            if not running:
                return set()
            marks = ",".join("?" * len(running))
            rows = await tx.fetchall(
                f"SELECT id FROM jobs WHERE id IN ({marks}) AND lease_owner <> ?",
                (*running, owner),
            )
        return {int(row[0]) for row in rows}

    async def hand_back(self, owner: str, job_ids: Collection[int]) -> int:
        """Give jobs back at once (a graceful stop): the next process to look takes them over.

        A job that was started but never sent gives its slot back too: it waits in line again.
        """
        if not job_ids:
            return 0
        marks = ",".join("?" * len(job_ids))
        async with self._db.transaction() as tx:
            await tx.execute(
                f"UPDATE jobs SET slot_held = 0 WHERE lease_owner = ? AND state = 'queued'"
                f" AND id IN ({marks})",
                (owner, *job_ids),
            )
            return await tx.execute(
                f"UPDATE jobs SET lease_until = 0 WHERE lease_owner = ? AND {UNFINISHED}"
                f" AND id IN ({marks})",
                (owner, *job_ids),
            )

    async def slots(self, *, tx: Executor | None = None) -> Slots:
        rows = await (tx or self._db).fetchall(
            f"SELECT guild_id, user_id, COUNT(*) FROM jobs WHERE {HOLDS_SLOT}"
            " GROUP BY guild_id, user_id"
        )
        members = Counter({(int(r[0]), int(r[1])): int(r[2]) for r in rows})
        return Slots(sum(members.values()), members)

    async def claim_slots(
        self, owner: str, waiting: Sequence[Job], *, max_total: int, max_per_member: int
    ) -> list[int]:
        """Start as many of ``waiting`` (in order) as the slots free in every process allow.

        The ids started. A job no longer ``owner``'s, or no longer waiting, is skipped.
        """
        if not waiting:
            return []
        started: list[int] = []
        async with self._db.transaction() as tx:
            slots = await self.slots(tx=tx)
            total, members = slots.total, slots.members
            for job in waiting:
                member = (job.guild_id, job.user_id)
                if total >= max_total:
                    break
                if members[member] >= max_per_member:
                    continue
                # Not one whose Cancel, pressed in another process, is waiting to be done.
                changed = await tx.execute(
                    "UPDATE jobs SET slot_held = 1 WHERE id = ? AND lease_owner = ?"
                    " AND state = 'queued' AND slot_held = 0 AND cancel_requested = 0",
                    (job.id, owner),
                )
                if changed:
                    started.append(job.id)
                    total += 1
                    members[member] += 1
        return started

    async def line(self) -> tuple[list[tuple[int, int, int]], Slots]:
        """Every waiting job in every process, oldest first, as (id, guild, member); and the
        slots held now: a job's place in line is counted from both. Two plain reads, not a
        transaction: a place shown a moment stale costs nothing, the write lock would."""
        rows = await self._db.fetchall(
            f"SELECT id, guild_id, user_id FROM jobs WHERE {WAITING} ORDER BY id"
        )
        slots = await self.slots()
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows], slots

    async def request_cancel(self, job_id: int, by: int | None) -> bool:
        """Ask the process running a job to cancel it; False when it has ended already."""
        changed = await self._db.execute(
            f"UPDATE jobs SET cancel_requested = 1, cancel_requested_by = ?"
            f" WHERE id = ? AND {UNFINISHED}",
            (by, job_id),
        )
        return changed == 1

    async def cancel_waiting_elsewhere(self, guild_id: int, owner: str) -> int:
        """Ask other processes to cancel a server's jobs that have not gone to Segmind yet."""
        return await self._db.execute(
            "UPDATE jobs SET cancel_requested = 1 WHERE guild_id = ? AND state = 'queued'"
            " AND slot_held = 0 AND cancel_requested = 0 AND lease_owner <> ?",
            (guild_id, owner),
        )

    async def cancel_requests(self, owner: str) -> list[CancelRequest]:
        rows = await self._db.fetchall(
            f"SELECT id, cancel_requested_by FROM jobs WHERE lease_owner = ?"
            f" AND cancel_requested = 1 AND {UNFINISHED}",
            (owner,),
        )
        return [CancelRequest(int(r[0]), None if r[1] is None else int(r[1])) for r in rows]

    async def still_mine(self, job_id: int, owner: str) -> bool:
        """Whether ``owner`` still holds the job's lease (a last look before sending or posting)."""
        row = await self._db.fetchone(
            "SELECT 1 FROM jobs WHERE id = ? AND lease_owner = ?", (job_id, owner)
        )
        return row is not None
