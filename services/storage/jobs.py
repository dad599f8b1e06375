"""Jobs: insert before submit, update at each transition, find unfinished ones on start."""

from __future__ import annotations

import functools
import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from services.models import TERMINAL_STATES, Job, JobState, VideoRequest
from services.storage.database import Database, Executor, Row
from services.storage.dialect import json_number

# A job counts against a member's limit and the server's budget while it holds a
# reservation (queued, being submitted, outcome unknown) or once Segmind accepted it
# (it has a request_id, whatever happened next). A refusal, a validation error or a
# submit that Segmind surely refused never gets here or never counts.
COUNTED = "(state IN ('queued', 'submitting', 'unknown') OR request_id IS NOT NULL)"
# A member's own limit leaves out a job a moderator cancelled for them, even one Segmind had
# accepted: the member did not choose to spend it. The server's budget and the operator's
# ceiling still count what Segmind billed (COUNTED).
COUNTED_FOR_MEMBER = (
    f"({COUNTED} AND NOT (state = 'cancelled' AND cancelled_by IS NOT NULL"
    " AND cancelled_by != user_id))"
)

_UPDATABLE = frozenset(
    {
        "state",
        "channel_id",
        "request_id",
        "status_url",
        "response_url",
        "segmind_state",
        "message_id",
        "interaction_token",
        "interaction_created_at",
        "application_id",
        "upload_limit",
        "submitted_at",
        "finished_at",
        "video_url",
        "clip_path",
        "result_message_id",
        "error",
        "cost_usd",
        "posting_started_at",
        "shared_at",
        "shared_message_id",
        "failure_notice_due",
        "cancelled_by",
        "cost_reported",
    }
)
# How much of the request's text the delivered-request index holds (migration 0014).
_REQUEST_PREFIX = 200
_TERMINAL_VALUES = tuple(state.value for state in TERMINAL_STATES)
# Jobs that ended without a clip on the way: a repeat of one is a real retry, not a double
# click (an abandoned, never-acknowledged job is CANCELLED). Not UNKNOWN: Segmind may have
# billed that one, so the second click of a double click must not bill again.
_ENDED_WITHOUT_CLIP = (
    JobState.CANCELLED.value,
    JobState.FAILED.value,
    JobState.EXPIRED.value,
)


@dataclass(frozen=True, slots=True)
class NewJob:
    """What is known about a job before it is stored."""

    guild_id: int
    channel_id: int
    user_id: int
    request: VideoRequest
    created_at: float
    private: bool = False
    parent_job_id: int | None = None
    interaction_token: str | None = field(default=None, repr=False)  # a secret for 15 min
    interaction_created_at: float | None = None
    application_id: int | None = None
    upload_limit: int | None = None
    cost_usd: float = 0.0  # the price admission charges for it
    fingerprint: str | None = None  # what makes a repeated request "the same" one


# Longer texts (long prompts in many languages are escaped to six bytes a character) are
# parsed each time: 1,024 of the longest would hold about 66 MB.
_CACHED_REQUEST_MAX = 4096


def stored_request(text: str) -> VideoRequest:
    """The request stored as ``text``, validated again (stored data is input too).

    A job's request never changes once stored, yet its row is read a dozen times over the
    job's life (each progress edit checks the stored job): the same text is parsed once.
    A text that fails raises each time (an exception is not cached).
    """
    if len(text) > _CACHED_REQUEST_MAX:
        return _parsed_request(text)
    return _cached_request(text)


def _parsed_request(text: str) -> VideoRequest:
    return VideoRequest.from_payload(json.loads(text))


_cached_request = functools.lru_cache(maxsize=1024)(_parsed_request)


def _job_from_row(row: Row) -> Job:
    return Job(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        request=stored_request(row["request_json"]),
        state=JobState(row["state"]),
        created_at=row["created_at"],
        private=bool(row["private"]),
        parent_job_id=row["parent_job_id"],
        request_id=row["request_id"],
        status_url=row["status_url"],
        response_url=row["response_url"],
        segmind_state=row["segmind_state"],
        message_id=row["message_id"],
        interaction_token=row["interaction_token"],
        interaction_created_at=row["interaction_created_at"],
        application_id=row["application_id"],
        upload_limit=row["upload_limit"],
        submitted_at=row["submitted_at"],
        finished_at=row["finished_at"],
        video_url=row["video_url"],
        clip_path=row["clip_path"],
        result_message_id=row["result_message_id"],
        error=row["error"],
        cost_usd=row["cost_usd"],
        fingerprint=row["fingerprint"],
        posting_started_at=row["posting_started_at"],
        shared_at=row["shared_at"],
        shared_message_id=row["shared_message_id"],
        failure_notice_due=row["failure_notice_due"],
        result_deleted_at=row["result_deleted_at"],
        shared_deleted_at=row["shared_deleted_at"],
        cancelled_by=row["cancelled_by"],
        cost_reported=bool(row["cost_reported"]),
        lease_owner=row["lease_owner"],
        lease_until=row["lease_until"],
        slot_held=bool(row["slot_held"]),
        cancel_requested=bool(row["cancel_requested"]),
        cancel_requested_by=row["cancel_requested_by"],
    )


class LeaseLost(Exception):
    """The job's lease is another process's now: this one must leave the job alone."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} is leased to another process")
        self.job_id = job_id


class JobStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        # Set by the runner: a stored job is leased at once to the process that admitted it.
        self.lease: tuple[str, float] | None = None  # (owner, seconds)
        # RETURNING came with SQLite 3.35 (2021); with an older system library (some
        # long-term distributions) an update reads the row back instead.
        self.returning = db.dialect != "sqlite" or sqlite3.sqlite_version_info >= (3, 35)

    async def insert(self, new: NewJob, *, tx: Executor | None = None) -> Job:
        """Store a job in QUEUED state; the returned Job carries its id."""
        ex = tx or self._db
        owner, seconds = self.lease or (None, 0.0)
        job_id = await ex.insert(
            """INSERT INTO jobs (guild_id, channel_id, user_id, request_json, state, private,
                   parent_job_id, interaction_token, interaction_created_at, application_id,
                   upload_limit, cost_usd, fingerprint, created_at, updated_at,
                   lease_owner, lease_until)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                new.guild_id,
                new.channel_id,
                new.user_id,
                json.dumps(new.request.to_payload()),
                JobState.QUEUED.value,
                int(new.private),
                new.parent_job_id,
                new.interaction_token,
                new.interaction_created_at,
                new.application_id,
                new.upload_limit,
                new.cost_usd,
                new.fingerprint,
                new.created_at,
                new.created_at,
                owner,
                new.created_at + seconds if owner else None,
            ),
        )
        job = await self.get(job_id, tx=ex)
        assert job is not None
        return job

    async def get(self, job_id: int, *, tx: Executor | None = None) -> Job | None:
        row = await (tx or self._db).fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job_from_row(row) if row else None

    async def update(
        self,
        job_id: int,
        *,
        now: float,
        durable: bool = False,
        owner: str | None = None,
        **fields: Any,
    ) -> Job:
        """Change some columns of a job; returns the job as stored afterwards.

        ``durable``: on disk before this returns (see ``Database.transaction``). ``owner``:
        only while that process holds the job's lease, else ``LeaseLost`` and nothing changes.
        """
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        values = {k: (v.value if isinstance(v, JobState) else v) for k, v in fields.items()}
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        sql = f"UPDATE jobs SET {assignments}, updated_at = :updated_at WHERE id = :id"
        params: dict[str, Any] = {**values, "updated_at": now, "id": job_id}
        if owner is not None:
            sql += " AND lease_owner = :lease_owner"
            params["lease_owner"] = owner
        if self.returning:
            rows = await self._db.change(sql + " RETURNING *", params, durable=durable)
            job = _job_from_row(rows[0]) if rows else None
        else:
            changed = await self._db.execute(sql, params, durable=durable)
            job = await self.get(job_id) if changed else None
        if job is None:
            if owner is not None and await self.get(job_id) is not None:
                raise LeaseLost(job_id)
            raise LookupError(f"job {job_id} does not exist")
        return job

    async def claim_share(self, job_id: int, *, now: float) -> bool:
        """Mark a private clip shared unless it already is; True when this call marked it.

        One statement, so two clicks (or two processes) cannot both post the share.
        """
        changed = await self._db.execute(
            "UPDATE jobs SET shared_at = ?, updated_at = ? WHERE id = ? AND shared_at IS NULL",
            (now, now, job_id),
            durable=True,
        )
        return changed == 1

    async def release_share(self, job_id: int, *, now: float) -> None:
        """The share could not be posted: let the member try again."""
        await self._db.execute(
            "UPDATE jobs SET shared_at = NULL, updated_at = ? WHERE id = ?", (now, job_id)
        )

    async def unfinished(self) -> list[Job]:
        """Jobs a restart must pick up, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT * FROM jobs WHERE state NOT IN ({','.join('?' * len(_TERMINAL_VALUES))})"
            " ORDER BY id",
            _TERMINAL_VALUES,
        )
        return [_job_from_row(row) for row in rows]

    async def unfinished_in_guild(
        self, guild_id: int, *, user_id: int | None = None, limit: int = 500
    ) -> list[Job]:
        """A server's (or one member's there) unfinished jobs, oldest first, for `/videoqueue`."""
        where, params = "guild_id = ?", [guild_id]
        if user_id is not None:
            where += " AND user_id = ?"
            params.append(user_id)
        rows = await self._db.fetchall(
            f"SELECT * FROM jobs WHERE {where}"
            f" AND state NOT IN ({','.join('?' * len(_TERMINAL_VALUES))}) ORDER BY id LIMIT ?",
            (*params, *_TERMINAL_VALUES, limit),
        )
        return [_job_from_row(row) for row in rows]

    async def failure_notices_due(self, since: float) -> list[Job]:
        """Ended jobs whose member is still owed the failure message, due since ``since``."""
        rows = await self._db.fetchall(
            "SELECT * FROM jobs WHERE failure_notice_due IS NOT NULL AND failure_notice_due >= ?"
            " ORDER BY id",
            (since,),
        )
        return [_job_from_row(row) for row in rows]

    async def counted_times(
        self, guild_id: int, user_id: int, since: float, *, tx: Executor | None = None
    ) -> list[float]:
        """Creation times of the jobs counted against a member's limit since ``since``, oldest
        first (``COUNTED_FOR_MEMBER``)."""
        rows = await (tx or self._db).fetchall(
            f"SELECT created_at FROM jobs WHERE guild_id = ? AND user_id = ? AND created_at >= ?"
            f" AND {COUNTED_FOR_MEMBER} ORDER BY created_at",
            (guild_id, user_id, since),
        )
        return [row[0] for row in rows]

    async def same_request_since(
        self,
        guild_id: int,
        user_id: int,
        fingerprint: str,
        since: float,
        *,
        tx: Executor | None = None,
    ) -> Job | None:
        """The member's latest job with this fingerprint since ``since`` that is still on its way.

        Ended jobs without a clip (cancelled, abandoned, failed) are left out: asking again
        after one of those is a retry.
        """
        row = await (tx or self._db).fetchone(
            "SELECT * FROM jobs WHERE guild_id = ? AND user_id = ? AND fingerprint = ?"
            f" AND created_at >= ? AND state NOT IN ({','.join('?' * len(_ENDED_WITHOUT_CLIP))})"
            " ORDER BY id DESC LIMIT 1",
            (guild_id, user_id, fingerprint, since, *_ENDED_WITHOUT_CLIP),
        )
        return _job_from_row(row) if row else None

    async def counted_since(self, since: float, *, tx: Executor | None = None) -> tuple[int, float]:
        """Counted clips across every server since ``since``, and what they cost.

        Jobs not yet sent count too, whenever they were admitted: Segmind bills at submit,
        so a backlog admitted before midnight is billed, and counted, after it.
        """
        ex = tx or self._db
        recent = await ex.fetchone(
            f"SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM jobs"
            f" WHERE created_at >= ? AND {COUNTED}",
            (since,),
        )
        unsent = await ex.fetchone(
            "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM jobs"
            " WHERE created_at < ? AND state IN ('queued', 'submitting')",
            (since,),
        )
        rows = [row for row in (recent, unsent) if row is not None]
        return sum(int(r[0]) for r in rows), sum(float(r[1]) for r in rows)

    async def highest_reported_costs(
        self,
        since: float,
        *,
        low: float,
        high: float,
        limit: int,
        latest: int,
        tx: Executor | None = None,
    ) -> dict[tuple[int, int], float]:
        """For each (input_frames, steps), the highest of the ``latest`` newest costs Segmind
        reported, among the latest ``limit`` jobs created since ``since`` whose figure lies
        within [low, high].

        Only the newest few per size: one odd figure is outvoted once that many newer ones
        exist, while a real price change shows in the next report. Read inside admission's
        transaction: newest first along the jobs_created index and stopped after ``limit``
        reported jobs, so its cost does not grow with history.
        """
        rows = await (tx or self._db).fetchall(
            "SELECT frames, steps, MAX(cost_usd) FROM ("
            " SELECT frames, steps, cost_usd, ROW_NUMBER() OVER ("
            "  PARTITION BY frames, steps ORDER BY created_at DESC, id DESC) AS newness"
            " FROM (SELECT id, created_at, cost_usd,"
            f"  {json_number(self._db.dialect, 'request_json', 'input_frames')} AS frames,"
            f"  {json_number(self._db.dialect, 'request_json', 'steps')} AS steps"
            "  FROM jobs"
            "  WHERE created_at >= ? AND cost_reported = 1 AND cost_usd BETWEEN ? AND ?"
            "  ORDER BY created_at DESC LIMIT ?) AS recent) AS ranked"
            " WHERE newness <= ? GROUP BY frames, steps",
            (since, low, high, limit, latest),
        )
        return {(int(row[0]), int(row[1])): float(row[2]) for row in rows}

    async def guild_counted(
        self, guild_id: int, since: float, *, tx: Executor | None = None
    ) -> tuple[int, float]:
        """How many counted clips the server made since ``since``, and what they cost."""
        row = await (tx or self._db).fetchone(
            f"SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM jobs"
            f" WHERE guild_id = ? AND created_at >= ? AND {COUNTED}",
            (guild_id, since),
        )
        return (int(row[0]), float(row[1])) if row else (0, 0.0)

    async def recent(
        self, guild_id: int, *, limit: int = 10, offset: int = 0, user_id: int | None = None
    ) -> list[Job]:
        """The server's latest jobs, newest first (for moderators)."""
        where, params = "guild_id = ?", [guild_id]
        if user_id is not None:
            where += " AND user_id = ?"
            params.append(user_id)
        rows = await self._db.fetchall(
            f"SELECT * FROM jobs WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [_job_from_row(row) for row in rows]

    async def delivered_with_request(
        self, guild_id: int, request: VideoRequest, *, viewer_id: int, limit: int = 5
    ) -> list[Job]:
        """The server's delivered clips of exactly ``request``, newest first, that ``viewer_id``
        may see: public ones and shared ones whose post is not deleted, and the viewer's own
        private ones.

        Identity is the stored request, every parameter and the seed: the JSON is written
        here as ``insert`` writes it, so equal requests are equal text.
        """
        # The state is written out, not bound, and the prefix is the index's own expression:
        # only then can SQLite use the partial index jobs_delivered_request (migration 0014).
        # The text is compared as prefix and rest: "request_json = ?" would have SQLite put
        # the value into the prefix's expression, which then no longer matches the index.
        # Deleted posts are left out here, not by the caller, so that ``limit`` counts clips
        # that can still be offered.
        text = json.dumps(request.to_payload())  # ASCII: a character is a byte
        rows = await self._db.fetchall(
            "SELECT * FROM jobs WHERE guild_id = ? AND state = 'delivered'"
            f" AND substr(request_json, 1, {_REQUEST_PREFIX}) = ?"
            f" AND substr(request_json, {_REQUEST_PREFIX + 1}) = ?"
            " AND result_message_id IS NOT NULL"
            " AND (private = 0 AND result_deleted_at IS NULL"
            " OR private = 1 AND shared_message_id IS NOT NULL AND shared_deleted_at IS NULL"
            " OR private = 1 AND user_id = ?)"
            " ORDER BY id DESC LIMIT ?",
            (guild_id, text[:_REQUEST_PREFIX], text[_REQUEST_PREFIX:], viewer_id, limit),
        )
        return [_job_from_row(row) for row in rows]

    async def mark_post_deleted(self, job_id: int, message_id: int, *, now: float) -> Job | None:
        """Record that ``message_id``, the job's result or shared post, was deleted.

        Whichever of the two it is gets its time, in one statement; any other message
        (a progress message, an old copy) changes nothing. None when the job is unknown.
        """
        sql = (
            "UPDATE jobs SET"
            " result_deleted_at = CASE WHEN result_message_id = :message"
            " THEN COALESCE(result_deleted_at, :now) ELSE result_deleted_at END,"
            " shared_deleted_at = CASE WHEN shared_message_id = :message"
            " THEN COALESCE(shared_deleted_at, :now) ELSE shared_deleted_at END,"
            " updated_at = :now WHERE id = :id"
        )
        params = {"message": message_id, "now": now, "id": job_id}
        if self.returning:
            rows = await self._db.change(sql + " RETURNING *", params)
            return _job_from_row(rows[0]) if rows else None
        await self._db.execute(sql, params)
        return await self.get(job_id)
