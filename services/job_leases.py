"""The runner's side of job leases: several processes on one database, no job lost or run twice.

Every job a process runs is leased to it (``services/storage/leases.py``). Every
``lease_check_interval`` the keeper of each process:

- renews its leases every third of a lease, and stops here any job another process took
  over meanwhile (this one was too slow to renew: its writes would now be refused);
- takes over the jobs whose lease ran out, because their process died or stopped;
- carries out the Cancels pressed in another process for jobs running here;
- offers the jobs waiting here the Segmind slots another process freed.

Nothing here writes a job's course: the runner does, and each of its writes names this
process as the lease's holder, so a process that lost a job can no longer change it.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import secrets
import socket
from typing import Protocol

from services.clock import Clock
from services.models import Job
from services.runner_config import RunnerConfig
from services.storage import Storage
from services.storage.leases import CancelRequest

log = logging.getLogger(__name__)

_PAGE = 500


def process_name() -> str:
    """This process as a lease's owner: readable in logs, and unique to this start."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class LeaseHolder(Protocol):
    """What the keeper needs of the runner."""

    def local_jobs(self) -> set[int]: ...

    def has_waiting(self) -> bool: ...

    async def adopt(self, jobs: list[Job]) -> None: ...

    def lose(self, job_ids: set[int]) -> None: ...

    async def cancel_requested(self, request: CancelRequest) -> None: ...

    async def dispatch(self) -> None: ...


class LeaseKeeper:
    def __init__(self, storage: Storage, config: RunnerConfig, clock: Clock, owner: str) -> None:
        self._storage = storage
        self._config = config
        self._clock = clock
        self.owner = owner
        self._renewed_at = clock.time()
        self._cancelling: set[int] = set()
        self._cancels: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        # Let the store lease each new job to this process as it is stored.
        storage.jobs.lease = (owner, config.lease_seconds)

    def until(self) -> float:
        return self._clock.time() + self._config.lease_seconds

    async def take_over(self, *, everything: bool = False) -> list[Job]:
        """Jobs whose lease ran out (``everything``: every unfinished one), now this process's."""
        now = self._clock.time()
        expired_before = float("inf") if everything else now
        taken: list[Job] = []
        while True:
            page = await self._storage.leases.take_over(
                self.owner, now=now, until=self.until(), expired_before=expired_before, limit=_PAGE
            )
            taken += page
            if len(page) < _PAGE:
                return taken

    def start(self, holder: LeaseHolder) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._keep(holder), name="job-leases")

    async def stop(self, job_ids: set[int]) -> None:
        """Stop looking, and give ``job_ids`` back at once: another process takes them over."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        try:
            handed = await self._storage.leases.hand_back(self.owner, job_ids)
        except Exception:  # noqa: BLE001 - they come back anyway once the lease runs out
            log.warning("could not hand back %d jobs; they wait out their lease", len(job_ids))
            return
        if handed:
            log.info("handed back %d unfinished jobs for another process", handed)

    async def _keep(self, holder: LeaseHolder) -> None:
        while True:
            # Real time, like every housekeeping loop: a fake job clock must not spin it.
            await asyncio.sleep(self._config.lease_check_interval)
            try:
                await self.tick(holder)
            except Exception:  # the next look tries again; a lease lasts many looks
                log.warning("could not look after the job leases", exc_info=True)

    async def tick(self, holder: LeaseHolder) -> None:
        """One look: renew, take over, carry out Cancels, fill freed slots."""
        now = self._clock.time()
        if now - self._renewed_at >= self._config.lease_seconds / 3:
            lost = await self._storage.leases.renew(
                self.owner, until=self.until(), running=holder.local_jobs()
            )
            self._renewed_at = now
            if lost:
                log.warning("jobs %s were taken over by another process", sorted(lost))
                holder.lose(lost)
        taken = await self.take_over()
        if taken:
            log.info("took over %d jobs whose lease ran out", len(taken))
            await holder.adopt(taken)
        for request in await self._storage.leases.cancel_requests(self.owner):
            if request.job_id in holder.local_jobs() and request.job_id not in self._cancelling:
                self._cancelling.add(request.job_id)
                task = asyncio.create_task(
                    self._cancel(holder, request), name=f"cancel-{request.job_id}"
                )
                self._cancels.add(task)  # held until done, so it is not collected
                task.add_done_callback(self._cancels.discard)
        if holder.has_waiting():
            await holder.dispatch()

    async def _cancel(self, holder: LeaseHolder, request: CancelRequest) -> None:
        try:
            await holder.cancel_requested(request)
        except Exception:
            log.warning("job=%s could not be cancelled as asked", request.job_id, exc_info=True)
        finally:
            self._cancelling.discard(request.job_id)


BEHIND_OWN_JOB = 0  # a waiting job's place when only the member's own running video holds it


class LeaseHolding(abc.ABC):
    """The runner's side of what the keeper asks (``services.jobs.JobRunner`` derives from it),
    and the places in line, counted over every process's waiting jobs."""

    _storage: Storage
    _config: RunnerConfig
    _accepting: bool
    _waiting: list[Job]
    _running: dict[int, asyncio.Task[None]]
    _positions: dict[int, int]
    _told_places: dict[int, int]
    _lost: set[int]

    @abc.abstractmethod
    async def _resume(self, job: Job) -> None: ...

    @abc.abstractmethod
    async def _dispatch(self) -> None: ...

    def local_jobs(self) -> set[int]:
        return set(self._running) | {job.id for job in self._waiting}

    def has_waiting(self) -> bool:
        return bool(self._waiting) and self._accepting

    async def adopt(self, jobs: list[Job]) -> None:
        """Jobs taken over from a process that is gone: run them here from where they stood."""
        if not self._accepting:
            return
        local = self.local_jobs()
        for job in jobs:
            if job.id not in local:
                await self._resume(job)
        await self._dispatch()

    def lose(self, job_ids: set[int]) -> None:
        """Another process runs these now: drop them here without writing anything."""
        self._waiting = [job for job in self._waiting if job.id not in job_ids]
        for job_id in job_ids:
            self._positions.pop(job_id, None)
            task = self._running.get(job_id)
            if task is not None:
                self._lost.add(job_id)
                task.cancel()

    async def dispatch(self) -> None:
        await self._dispatch()

    async def _places(self) -> list[tuple[Job, int]]:
        """Every waiting job's place (in every process); those of ours that moved."""
        line, slots = await self._storage.leases.line()
        places: dict[int, int] = {}
        ahead = 0
        for job_id, guild_id, user_id in line:
            if slots.members[(guild_id, user_id)] >= self._config.max_per_member:
                places[job_id] = BEHIND_OWN_JOB  # starts when the member's own video ends
            else:
                ahead += 1
                places[job_id] = ahead
        changed = [
            (job, places[job.id])
            for job in self._waiting
            if job.id in places and self._told_places.get(job.id) != places[job.id]
        ]
        told = self._told_places | {job.id: place for job, place in changed}
        self._told_places = {job.id: told[job.id] for job in self._waiting if job.id in told}
        self._positions = places
        return changed
