"""Telling a member their job ended without a clip, until the message is shown.

The job's end and the debt to tell its member are stored in one write
(``failure_notice_due``); the message is tried at once, again with the delivery's backoff
while Discord is down, and after a restart. It is given up only when the listener says no
route can show it (it returns normally then) or the notice is older than
``FAILURE_NOTICE_WINDOW``: a day-old "your video failed" tells nobody anything useful.

Several processes share the database: each attempt is claimed first (``jobs``'
``failure_notice_claimed_by/_until``, one conditional UPDATE), until the next attempt plus
``CLAIM_MARGIN``. A notice another live process is trying is left to it; one whose process
died is taken over by the sweep every ``SWEEP_SECONDS``, once its claim runs out.
"""

from __future__ import annotations

import asyncio
import logging
import random

from services.clock import Clock
from services.errors import BotError
from services.job_leases import process_name
from services.job_listener import JobReporter
from services.models import Job
from services.runner_config import RunnerConfig
from services.storage import Storage

log = logging.getLogger("services.jobs")

FAILURE_NOTICE_WINDOW = 24 * 3600.0
# One attempt's own time (discord.py's retries included) past the wait before it.
CLAIM_MARGIN = 60.0
SWEEP_SECONDS = 30.0


class StoredFailure(BotError):
    """A failure told again after a restart: only its stored wording is left.

    That wording may be Segmind's own text (echoing the prompt), so it is shown literally.
    """


class FailureNotices:
    def __init__(
        self,
        storage: Storage,
        config: RunnerConfig,
        *,
        clock: Clock,
        reporter: JobReporter,
        rng: random.Random,
        owner: str | None = None,
        shared: bool = True,
    ) -> None:
        self._storage = storage
        self._config = config
        self._clock = clock
        self._reporter = reporter
        self._rng = rng
        self._retrying: dict[int, asyncio.Task[None]] = {}
        # Jobs whose first attempt is under way in ``tell``: ``resume`` (the same jobs, read
        # back from the database) must not start a second telling of them.
        self._telling: set[int] = set()
        self._stopped = False
        self._owner = owner or process_name()
        self._shared = shared  # False: this process is alone, so others' claims are dead
        self._sweeper: asyncio.Task[None] | None = None

    async def tell(self, job: Job, error: BotError) -> None:
        """Tell the member now; if Discord is not answering, keep trying in the background."""
        if job.failure_notice_due is None or job.id in self._retrying or job.id in self._telling:
            return
        if not await self._claim(job, CLAIM_MARGIN):
            return
        self._telling.add(job.id)
        try:
            told = await self._try(job, error, attempt=1)
        finally:
            self._telling.discard(job.id)
        if not told:
            self._retry_later(job, error)

    async def resume(self) -> int:
        """Tell what a previous process could not; returns how many notices are under way.

        Then again every ``SWEEP_SECONDS``: another process that dies leaves its notices
        owed, and only a sweep of a live one tells them.
        """
        self._stopped = False
        if not self._shared:
            # Alone on the database: every claim was made by a process now gone.
            await self._storage.failure_claims.release(None)
        await self._sweep()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep_periodically(), name="failure-notices")
        return len(self._retrying)

    async def _sweep(self) -> None:
        since = self._clock.time() - FAILURE_NOTICE_WINDOW
        for job in await self._storage.jobs.failure_notices_due(since):
            if job.id in self._retrying or job.id in self._telling:
                continue
            # Held until ``_keep_trying`` claims it again, for its first wait and attempt.
            if not await self._claim(job, CLAIM_MARGIN):
                continue  # another live process is telling it
            log.info("job=%s member still to be told of its end; telling", job.id)
            stored = StoredFailure(job.error or None, detail="told after restart")
            self._retry_later(job, stored)

    async def _sweep_periodically(self) -> None:
        while not self._stopped:
            # Real time, like every housekeeping loop: a fake job clock must not spin it.
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self._sweep()
            except Exception:  # the next sweep tries again; the notices stay owed
                log.warning("could not look for failure notices still owed", exc_info=True)

    async def release(self) -> None:
        """After ``stop``: give back this process's claims, so the next process tells at once."""
        try:
            await self._storage.failure_claims.release(self._owner)
        except Exception:  # they run out on their own within a retry's wait
            log.warning("could not give back the failure notices' claims", exc_info=True)

    async def _claim(self, job: Job, hold: float) -> bool:
        """This process tells ``job``'s notice for the next ``hold`` seconds; False: another
        process does (or the database is out of reach: a later sweep tries again)."""
        now = self._clock.time()
        try:
            return await self._storage.failure_claims.claim(
                job.id, self._owner, now=now, until=now + hold
            )
        except Exception:  # still owed: a later sweep claims it
            log.warning("job=%s failure notice could not be claimed", job.id, exc_info=True)
            return False

    def stop(self) -> list[asyncio.Task[None]]:
        """Stop trying (shutdown): the notices stay due and the next start tells them."""
        self._stopped = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        tasks = list(self._retrying.values())
        for task in tasks:
            task.cancel()
        return tasks

    @property
    def pending(self) -> int:
        return len(self._retrying)

    def _retry_later(self, job: Job, error: BotError) -> None:
        if self._stopped:  # an ending shielded through shutdown: the next start tells it
            return
        task = asyncio.create_task(self._keep_trying(job, error), name=f"failure-notice-{job.id}")
        self._retrying[job.id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._retrying.get(job.id) is done:
                del self._retrying[job.id]

        task.add_done_callback(forget)

    async def _keep_trying(self, job: Job, error: BotError) -> None:
        assert job.failure_notice_due is not None
        give_up_at = job.failure_notice_due + FAILURE_NOTICE_WINDOW
        attempt = 1
        while True:
            if self._clock.time() >= give_up_at:
                log.error("job=%s member could not be told of its end within a day", job.id)
                await self._settle(job)
                return
            delay = self._config.delivery_backoff.delay(attempt, self._rng)
            if not await self._claim(job, delay + CLAIM_MARGIN):
                log.info("job=%s failure notice is being told by another process", job.id)
                return
            await self._clock.sleep(delay)
            attempt += 1
            if await self._try(job, error, attempt=attempt):
                return

    async def _try(self, job: Job, error: BotError, *, attempt: int) -> bool:
        """One attempt; True once the member was told (or no route can ever tell them)."""
        listener = self._reporter.listener
        if listener is not None:
            try:
                await listener.on_failed(job, error)
            except Exception as exc:  # not CancelledError: a shutdown leaves the notice due
                log.warning(
                    "job=%s failure message attempt %d not shown (%s); trying again later",
                    job.id,
                    attempt,
                    type(exc).__name__,
                    exc_info=attempt == self._config.delivery_attempts,
                )
                return False
        await self._settle(job)
        return True

    async def _settle(self, job: Job) -> None:
        await self._storage.jobs.update(job.id, now=self._clock.time(), failure_notice_due=None)
