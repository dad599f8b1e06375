"""What is queued and running, per member or per server, as `/videoqueue` shows it.

Read at the moment it is asked: the jobs from the database, their places and forecasts from
the runner, never from a cache, so a listing is right to the second it was made. The rules
of Cancel live here too: the requester may cancel their own job, a moderator any job, and a
moderator's cancel of someone else's job is recorded as theirs (it does not count against
the member's limit).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.clock import Clock
from services.errors import BotError
from services.jobs import BEHIND_OWN_JOB, JobRunner, RunnerLine
from services.models import Job, JobState, Progress
from services.storage import Storage

log = logging.getLogger(__name__)

MAX_LISTED = 500  # a backlog beyond this is a runaway, not something to page through


class JobNotFound(BotError):
    user_message = "That video is no longer known to me."


class NotYourJob(BotError):
    user_message = "Only the person who asked for this video, or a moderator, can cancel it."


class AlreadyFinished(BotError):
    user_message = "This video has already finished."


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One unfinished job as it stands now."""

    job: Job
    # 1-based place in the bot's line while waiting; BEHIND_OWN_JOB (0) when it waits only
    # for the member's own running video; None once started, or not in the line yet.
    place: int | None
    started: bool  # at Segmind, or its clip being posted
    progress: Progress | None  # elapsed and expected end, once Segmind accepted it

    @property
    def cancellable(self) -> bool:
        """From DOWNLOADED on, the clip is made and paid for, and may be posted already."""
        return not self.job.state.is_terminal and self.job.state is not JobState.DOWNLOADED


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """Every listed job, started ones first, then the line in order; ``at``: when it was read."""

    entries: tuple[QueueEntry, ...]
    at: float


@dataclass(frozen=True, slots=True)
class Cancelled:
    """A stopped job, and whether a moderator stopped someone else's (the member is told)."""

    job: Job
    by_moderator: bool


def _order(entry: QueueEntry) -> tuple[int, int, int]:
    if entry.started:
        return (0, 0, entry.job.id)
    if entry.place is not None and entry.place != BEHIND_OWN_JOB:
        return (1, entry.place, entry.job.id)
    return (2, 0, entry.job.id)  # behind the member's own video, or about to join the line


class JobQueue:
    def __init__(self, storage: Storage, runner: JobRunner, clock: Clock) -> None:
        self._storage = storage
        self._runner = runner
        self._clock = clock

    async def of_member(self, guild_id: int, user_id: int) -> QueueSnapshot:
        """The member's own unfinished jobs on this server."""
        jobs = await self._storage.jobs.unfinished_in_guild(
            guild_id, user_id=user_id, limit=MAX_LISTED
        )
        return self._snapshot(jobs)

    async def of_server(self, guild_id: int) -> QueueSnapshot:
        """Every unfinished job on the server, private ones included (for moderators)."""
        jobs = await self._storage.jobs.unfinished_in_guild(guild_id, limit=MAX_LISTED)
        return self._snapshot(jobs)

    def _snapshot(self, jobs: list[Job]) -> QueueSnapshot:
        # Read right after the jobs, with no wait between: the line matches the rows.
        line: RunnerLine = self._runner.line()
        entries = [
            QueueEntry(
                job=job,
                place=line.places.get(job.id),
                # Started here, or anywhere: another process's job holds its slot.
                started=job.id in line.started or job.slot_held or job.state is not JobState.QUEUED,
                progress=self._runner.progress_now(job),
            )
            for job in jobs
        ]
        return QueueSnapshot(tuple(sorted(entries, key=_order)), self._clock.time())

    async def job_in(self, guild_id: int, job_id: int) -> Job:
        """The job, if it belongs to this server."""
        job = await self._storage.jobs.get(job_id)
        if job is None or job.guild_id != guild_id:
            raise JobNotFound()
        return job

    async def reveal_prompt(self, guild_id: int, job_id: int, *, moderator_id: int) -> Job:
        """A private job's request, for a moderator; recorded in the log (who, which job)."""
        job = await self.job_in(guild_id, job_id)
        if job.private:
            log.info(
                "guild=%s moderator user=%s viewed the private prompt of job=%s (user=%s)",
                guild_id,
                moderator_id,
                job.id,
                job.user_id,
            )
        return job

    async def cancel(self, job: Job, *, by: int, moderator: bool) -> Cancelled:
        """Stop ``job`` for ``by``: its requester, or a moderator (``moderator``) for anyone's.

        Raises ``NotYourJob`` for anyone else, ``AlreadyFinished`` when nothing is left to stop.
        """
        if by != job.user_id and not moderator:
            raise NotYourJob()
        if job.state.is_terminal or job.state is JobState.DOWNLOADED:
            raise AlreadyFinished()
        stopped = await self._runner.cancel(job.id, by=by)
        if stopped is None or stopped.state is not JobState.CANCELLED:
            # It ended first, or its submit's answer was lost (it counts, and is never resent).
            raise AlreadyFinished()
        by_moderator = stopped.cancelled_by is not None and stopped.cancelled_by != job.user_id
        if by_moderator:
            log.info(
                "guild=%s job=%s of user=%s cancelled by moderator user=%s",
                job.guild_id,
                job.id,
                job.user_id,
                by,
            )
        return Cancelled(stopped, by_moderator)
