"""Cancelling a job, wherever it is: waiting, running, not yet queued, or in another process.

A part of the runner (``services.jobs.JobRunner`` derives from it), kept apart because a
Cancel has more paths than any other step: the job may be waiting here, running here,
stored but not yet handed to the runner, or leased to another process sharing the database.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging

from services.clock import Clock
from services.errors import BotError, SubmitOutcomeUnknown
from services.job_listener import JobCancelled
from services.models import Job, JobState
from services.runner_config import RunnerConfig
from services.storage import Storage
from services.storage.leases import CancelRequest

log = logging.getLogger("services.jobs")


class Cancelling(abc.ABC):
    """The runner's Cancel: what it needs of the runner is declared here."""

    owner: str
    _storage: Storage
    _config: RunnerConfig
    _clock: Clock
    _waiting: list[Job]
    _positions: dict[int, int]
    _running: dict[int, asyncio.Task[None]]
    _user_cancelled: set[int]
    _cancelled_by: dict[int, int]
    _cancelled_before_enqueue: set[int]

    @abc.abstractmethod
    def is_active(self, job_id: int) -> bool: ...

    @abc.abstractmethod
    async def _dispatch(self) -> None: ...

    @abc.abstractmethod
    async def _finish_failed(self, job: Job, error: BotError, state: JobState) -> Job: ...

    async def cancel(self, job_id: int, *, by: int | None = None) -> Job | None:
        """Stop a job, waiting, running or not yet enqueued; returns it, or None if it had ended.

        ``by``, who asked, is stored as ``cancelled_by``: a moderator's cancel does not count.
        """
        if by is not None:
            self._cancelled_by.setdefault(job_id, by)  # a second click does not change who
        for index, waiting in enumerate(self._waiting):
            if waiting.id == job_id:
                del self._waiting[index]
                self._positions.pop(job_id, None)
                job = await self._finish_failed(waiting, JobCancelled(), JobState.CANCELLED)
                await self._dispatch()
                return job
        task = self._running.get(job_id)
        if task is None:
            stored = await self._storage.jobs.get(job_id)
            if stored is not None and stored.lease_owner not in (None, self.owner):
                return await self._cancel_elsewhere(stored, by)
            return await self._cancel_before_enqueue(job_id)
        if job_id not in self._user_cancelled:
            # A second click must not interrupt the first one's clean-up: it only waits.
            self._user_cancelled.add(job_id)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
        return await self._storage.jobs.get(job_id)

    async def _cancel_elsewhere(self, job: Job, by: int | None) -> Job | None:
        """Ask the process running ``job`` to cancel it; the job once it ended (or as it is).

        Its runner looks every ``lease_check_interval``; a job whose process died is
        cancelled by the one that takes it over, within a lease.
        """
        self._cancelled_by.pop(job.id, None)
        if not await self._storage.leases.request_cancel(job.id, by):
            return None  # it ended meanwhile
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.lease_seconds + 2 * self._config.lease_check_interval
        current: Job | None = job
        while loop.time() < deadline:
            await asyncio.sleep(self._config.lease_check_interval / 2)
            current = await self._storage.jobs.get(job.id)
            if current is None or current.state.is_terminal:
                break
        return current

    async def cancel_guild(self, guild_id: int) -> int:
        """Drop a server's waiting jobs (the bot left it): nothing more is submitted for it.

        Also those waiting in another process (one that took them over from a dead one):
        asked to cancel there, as a Cancel pressed here would be.
        """
        doomed = [job for job in self._waiting if job.guild_id == guild_id]
        for job in doomed:
            await self.cancel(job.id)
        elsewhere = await self._storage.leases.cancel_waiting_elsewhere(guild_id, self.owner)
        return len(doomed) + elsewhere

    async def _cancel_before_enqueue(self, job_id: int) -> Job | None:
        """End a job stored as QUEUED that ``enqueue`` has not received yet; ``enqueue`` drops it.

        The starter posts the progress message, Cancel button included, before it enqueues the
        job, so a quick click can arrive in between; without this the job would run anyway.
        """
        stored = await self._storage.jobs.get(job_id)
        if self.is_active(job_id):  # it was enqueued while we looked
            return await self.cancel(job_id)
        if stored is None or stored.state is not JobState.QUEUED:
            self._cancelled_by.pop(job_id, None)
            return None
        self._cancelled_before_enqueue.add(job_id)
        log.info("job=%s cancelled before it was queued", job_id)
        by = self._cancelled_by.get(job_id)
        return await self._storage.jobs.update(
            job_id,
            now=self._clock.time(),
            owner=self.owner,
            state=JobState.CANCELLED,
            error=JobCancelled.said_to(stored.user_id, by).user_message,
            cancelled_by=by,
            finished_at=self._clock.time(),
            # Told by ``enqueue``; if the process dies first, by the next start.
            failure_notice_due=self._clock.time(),
        )

    async def cancel_requested(self, request: CancelRequest) -> None:
        await self.cancel(request.job_id, by=request.by)

    async def _finish_cancelled(self, job: Job) -> None:
        current = await self._storage.jobs.get(job.id) or job
        if current.state is JobState.DELIVERED:  # the post under way finished: not a cancel
            self._user_cancelled.discard(job.id)
            return
        if current.state is JobState.SUBMITTING:
            # The request left and its answer was lost: Segmind may have billed it, so it
            # counts and is never resent, whatever the member pressed.
            await self._finish_failed(
                current, SubmitOutcomeUnknown(detail="cancelled with the submit unanswered"),
                JobState.UNKNOWN,
            )  # fmt: skip
            self._user_cancelled.discard(job.id)
            return
        await self._finish_failed(current, JobCancelled(), JobState.CANCELLED)
        self._user_cancelled.discard(job.id)
