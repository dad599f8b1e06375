"""The job runner: a fair queue in front of Segmind, durable at every step.

A job arrives already stored (QUEUED) by admission. The runner starts it when a
global slot and a per-member slot are free, submits it once, polls it to the end,
downloads the clip to disk and hands it to the listener (the Discord presenter, or the CLI) to
deliver. Every transition is written to the database first, so a restart resumes
each job from where it stood, and a submit whose answer was lost is never resent.

The slots bound the work at Segmind only: once its clip is on disk a job gives its slot to
the next one, and a delivery waiting out a Discord outage holds none. A downloaded clip is
posted again and again, as long as its file exists, until the member has it.

The runner keeps the queue, the slots and each job's course; the steps are done beside it:
the submit and the polls in ``services.segmind_steps``, the download and the posts in
``services.clip_delivery``. Its settings are in ``services.runner_config``, what it tells the
listener in ``services.job_listener``.

Every wait before another try (a submit Segmind refused, a download, a post) is
``services.backoff``'s; the client sends each submit once and leaves those waits to the runner.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services import logcontext
from services.clip_delivery import ClipDelivery
from services.clips import ClipFiles
from services.clock import Clock
from services.download import ClipDownloader
from services.errors import BotError, SegmindRequestExpired, SubmitOutcomeUnknown
from services.failure_notices import FailureNotices
from services.finish_estimate import TimingModel
from services.gates import AccountGates
from services.job_cancel import Cancelling
from services.job_leases import BEHIND_OWN_JOB as BEHIND_OWN_JOB
from services.job_leases import LeaseHolding, LeaseKeeper, process_name
from services.job_listener import JobCancelled, JobListener, JobReporter
from services.metrics import Metrics
from services.models import Job, JobState, Progress, ProgressPhase
from services.runner_config import SEGMIND_RETENTION_SECONDS, RunnerConfig
from services.segmind import SegmindClient
from services.segmind_steps import SegmindSteps
from services.storage import LeaseLost, Storage

log = logging.getLogger(__name__)

# A job whose process died between admitting it and recording Discord's acknowledgement.
NOT_STARTED = "Your video could not be started; nothing was spent. Please ask again."


@dataclass(frozen=True, slots=True)
class RunnerLine:
    """The runner's line at one moment (read-only): who waits where, and what has started."""

    places: Mapping[int, int]  # waiting job id -> 1-based place, or BEHIND_OWN_JOB
    started: frozenset[int]  # at Segmind, or its clip being posted


class JobRunner(Cancelling, LeaseHolding):
    def __init__(
        self,
        storage: Storage,
        segmind: SegmindClient,
        config: RunnerConfig,
        *,
        downloader: ClipDownloader,
        clips: ClipFiles,
        clock: Clock,
        gates: AccountGates,
        listener: JobListener | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        timings: TimingModel | None = None,
        owner: str | None = None,
    ) -> None:
        self._storage = storage
        # This process as the holder of its jobs' leases (several may share the database).
        self._leases = LeaseKeeper(storage, config, clock, owner or process_name())
        self.owner = self._leases.owner
        self._clips = clips
        self._config = config
        self._clock = clock
        self._reporter = JobReporter(listener)
        shared_rng = rng or random.Random()  # one generator for every retry's jitter
        metrics = metrics or Metrics()
        self._steps = SegmindSteps(
            storage,
            segmind,
            config,
            clock=clock,
            gates=gates,
            reporter=self._reporter,
            rng=shared_rng,
            stop_requested=self._stop_requested,
            metrics=metrics,
            timings=timings or TimingModel(config.expected_seconds),
            owner=self.owner,
        )
        self._delivery = ClipDelivery(
            storage,
            config,
            downloader=downloader,
            clips=clips,
            clock=clock,
            reporter=self._reporter,
            rng=shared_rng,
            metrics=metrics,
            # Alone on the database no other process can take a job over: no look needed.
            owner=self.owner if config.shared_database else None,
        )
        self._notices = FailureNotices(
            storage,
            config,
            clock=clock,
            reporter=self._reporter,
            rng=shared_rng,
            owner=self.owner,
            shared=config.shared_database,
        )
        self._waiting: list[Job] = []
        self._running: dict[int, asyncio.Task[None]] = {}  # every started job, delivering too
        # Segmind's slots (``max_concurrent``, ``max_per_member``) are counted in the database,
        # across processes (services/storage/leases.py); one dispatch at a time here.
        self._dispatching = asyncio.Lock()
        self._lost: set[int] = set()  # taken over by another process: stop, write nothing
        self._positions: dict[int, int] = {}  # every waiting job's place, in every process
        self._told_places: dict[int, int] = {}  # the place each of ours was last shown
        self._user_cancelled: set[int] = set()
        # Who pressed Cancel, until the ending is stored (``cancelled_by``).
        self._cancelled_by: dict[int, int] = {}
        self._cancelled_before_enqueue: set[int] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._timings_loaded = False
        self._stopping: asyncio.Future[None] | None = None
        self._accepting = True
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def timings(self) -> TimingModel:
        """What recent jobs took at Segmind: the polls and progress bars follow it."""
        return self._steps.timings

    def set_listener(self, listener: JobListener) -> None:
        self._reporter.listener = listener

    # --- public API ----------------------------------------------------------

    async def start(self) -> list[Job]:
        """Resume every unfinished job from the database; returns them."""
        self._accepting = True
        self._stopping = None
        self._clips.directory.mkdir(parents=True, exist_ok=True)
        if not self._timings_loaded:
            self._timings_loaded = True
            try:
                # What recent jobs took: the first polls after a restart are as good as the last.
                self._steps.timings.learn_all(await self._storage.timings.recent())
            except Exception:  # only polls' cleverness is lost; resuming jobs matters more
                log.warning(
                    "could not read recent jobs' timings; starting from the prior", exc_info=True
                )
        shared = self._config.shared_database
        unfinished = await self._storage.jobs.unfinished()
        # Nothing downloads yet, so a partial download left here was cut short by a crash
        # (unless another process on this machine shares the folder).
        self._sweep(unfinished, partial_downloads=not shared)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep_periodically(), name="clip-sweeper")
        # Before any job runs: an ending found after this is told by ``_finish_failed`` alone.
        await self._notices.resume()
        # Alone on the database (SQLite's lock file), every unfinished job is this process's;
        # shared, only those whose process is gone (their lease ran out), the rest later.
        taken = await self._leases.take_over(everything=not shared)
        for job in taken:
            await self._resume(job)
        self._leases.start(self)
        await self._dispatch()
        return taken

    async def _resume(self, job: Job) -> None:
        """Carry on with a job from where it stood: after a restart, or from a dead process."""
        log.info("resuming job=%s state=%s", job.id, job.state.value)
        if job.cancel_requested and job.state is JobState.QUEUED:
            # Cancelled in another process while its own was gone: never started, never billed.
            if job.cancel_requested_by is not None:
                self._cancelled_by.setdefault(job.id, job.cancel_requested_by)
            await self._finish_failed(job, JobCancelled(), JobState.CANCELLED)
            return
        if job.state is JobState.QUEUED and job.interaction_token and job.message_id is None:
            # Admitted, and its acknowledgement never recorded: its process died in between.
            # Never run or bill it. Alone on the database, the start's recovery (cogs) has
            # already looked for the answer; shared, the member may have seen "queued", so
            # they are told, as any ending is (by the progress message, else anew).
            if self._config.shared_database:
                await self._finish_failed(
                    job, BotError(NOT_STARTED, detail="not acknowledged"), JobState.CANCELLED
                )
            else:
                await self._storage.jobs.update(
                    job.id,
                    now=self._clock.time(),
                    owner=self.owner,
                    state=JobState.CANCELLED,
                    error="not acknowledged",
                )
        elif job.state is JobState.QUEUED and not job.slot_held:
            self._waiting.append(job)
        elif job.state is JobState.SUBMITTING:
            # The submit may or may not have reached Segmind: never send it again.
            await self._finish_failed(
                job, SubmitOutcomeUnknown(detail="restarted during submit"), JobState.UNKNOWN
            )
        else:
            self._launch(job)

    async def enqueue(self, job: Job) -> int | None:
        """Queue a stored job; returns its 1-based position in line, or None if it started or ended.

        ``BEHIND_OWN_JOB`` (0) means it waits only for the member's own running video.

        During shutdown the job is left as stored (QUEUED): the next start picks it up.
        """
        if job.id in self._cancelled_before_enqueue:
            # Cancelled before it got here: tell the listener now that it can show it.
            self._cancelled_before_enqueue.discard(job.id)
            await self._finish_failed(job, JobCancelled(), JobState.CANCELLED)
            return None
        if not self._accepting:
            log.info("job=%s arrived during shutdown; it starts after the restart", job.id)
            return None
        if job.lease_owner != self.owner:
            # Stored before this runner leased new jobs to itself: take its lease first.
            taken = await self._storage.leases.adopt(
                job.id, self.owner, now=self._clock.time(), until=self._leases.until()
            )
            if taken is None:
                log.info("job=%s is another process's to run", job.id)
                return None
            job = taken
        self._waiting.append(job)
        await self._dispatch()
        return self._positions.get(job.id)

    def is_active(self, job_id: int) -> bool:
        return job_id in self._running or job_id in self._positions

    def line(self) -> RunnerLine:
        """A copy of the line as it stands now: `/videoqueue` reads it at the moment it is asked."""
        return RunnerLine(dict(self._positions), frozenset(self._running))

    def progress_now(self, job: Job) -> Progress | None:
        """An accepted job's elapsed time and expected end now, by its bar's forecast; else None."""
        if job.submitted_at is None or job.state not in (JobState.SUBMITTED, JobState.PROCESSING):
            return None
        return self._steps.progress_now(job)

    async def stored(self, job_id: int) -> Job | None:
        """The job as stored now: message ids, tokens and its delivery change under a copy."""
        return await self._storage.jobs.get(job_id)

    @property
    def accepting(self) -> bool:
        """False once shutdown began: new requests would only wait for the restart."""
        return self._accepting

    async def shutdown(self, timeout: float = 8.0) -> None:
        """Stop taking jobs; stop polling. Jobs stay stored and resume at the next start.

        A submit or a clip post in flight is shielded and gets up to ``timeout`` to finish,
        so its outcome is stored rather than lost; longer would outlast a container's stop
        window (10 s in Docker) and end in SIGKILL anyway. A second call (a second Ctrl-C)
        waits for the first instead of cutting it short.
        """
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(timeout))
        await asyncio.shield(self._stopping)

    async def _stop(self, timeout: float) -> None:
        self._accepting = False
        mine = self.local_jobs()
        started = dict(self._running)
        self._waiting.clear()
        self._positions.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        submitting = self._steps.submitting
        # Failure messages not yet shown stay due in the database: the next start tells them.
        notices = self._notices.stop()
        pending: list[asyncio.Future[Any]] = [*tasks, *submitting, *notices]
        if submitting:
            log.info("waiting for %d submit(s) to be answered before stopping", len(submitting))
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        await self._notices.release()
        # Their states are stored: another process may carry on with them at once. Not one
        # whose submit or post is still under way: another could post it beside this one;
        # that one waits out its lease, by when this process is gone.
        busy = {job_id for job_id, task in started.items() if not task.done()}
        await self._leases.stop(mine - busy)

    async def _sweep_periodically(self) -> None:
        """Private clips wait on disk for sharing; a bot running for weeks must still drop them."""
        while True:
            # Real time, not the job clock: housekeeping must not spin under a fake clock.
            await asyncio.sleep(self._config.sweep_interval)
            try:
                # Jobs may be downloading now: their partial files must stay.
                self._sweep(await self._storage.jobs.unfinished(), partial_downloads=False)
            except Exception:  # housekeeping must never stop the bot
                log.warning("clip sweep failed", exc_info=True)

    def _sweep(self, unfinished: list[Job], *, partial_downloads: bool) -> None:
        removed = self._clips.sweep(
            older_than=self._config.clip_retention_seconds,
            now=self._clock.time(),
            keep={job.clip_path for job in unfinished if job.clip_path},
            partial_downloads=partial_downloads,
        )
        if removed:
            log.info("removed %d clips older than the retention period", removed)

    async def wait_idle(self) -> None:
        """Until nothing runs or waits (for the CLI and tests)."""
        await self._idle.wait()

    # --- scheduling ------------------------------------------------------------

    def _member(self, job: Job) -> tuple[int, int]:
        return (job.guild_id, job.user_id)

    def _launch(self, job: Job) -> None:
        # Its own context: every line the job logs, in any module, carries its ids.
        self._running[job.id] = asyncio.create_task(
            self._run(job), name=f"job-{job.id}", context=logcontext.job_context(job)
        )
        self._idle.clear()

    def _deliverable(self, job: Job) -> bool:
        return job.state is JobState.DOWNLOADED and self._clips.exists(job)

    async def _dispatch(self) -> None:
        """Start what may start, then tell waiting jobs whose place in line changed."""
        async with self._dispatching:
            if self._accepting and self._waiting:
                started = set(
                    await self._storage.leases.claim_slots(
                        self.owner,
                        self._waiting,
                        max_total=self._config.max_concurrent,
                        max_per_member=self._config.max_per_member,
                    )
                )
                # The list as it is now: a Cancel may have taken a job out during the claim.
                for job in [job for job in self._waiting if job.id in started]:
                    self._positions.pop(job.id, None)
                    self._launch(job)
                self._waiting = [job for job in self._waiting if job.id not in started]
            changed = await self._places() if self._waiting else []
        if not self._running and not self._waiting:
            self._idle.set()
        for job, place in changed:
            progress = (
                Progress(job.id, ProgressPhase.QUEUED, behind_own_job=True)
                if place == BEHIND_OWN_JOB
                else Progress(job.id, ProgressPhase.QUEUED, position=place)
            )
            await self._reporter.progress(job, progress)

    def _release(self, job_id: int) -> None:
        self._running.pop(job_id, None)
        self._lost.discard(job_id)
        self._cancelled_by.pop(job_id, None)  # a Cancel that came too late records nobody

    # --- one job -------------------------------------------------------------------

    async def _course(self, job: Job) -> None:
        """Submit, poll, download and deliver, from wherever the job stands."""
        fresh = job.state is JobState.QUEUED
        if fresh:
            job = await self._steps.submit_patiently(job)
        if job.state in (JobState.SUBMITTED, JobState.PROCESSING) and job.video_url is None:
            job = await self._steps.poll(job, fresh=fresh)
        if not self._deliverable(job):  # finished at Segmind, or its clip is gone since
            job = await self._delivery.download(job)
        await self._done_with_segmind(job)
        await self._delivery.deliver(job)

    async def _run(self, job: Job) -> None:
        try:
            await self._course(job)
        except asyncio.CancelledError:
            if job.id in self._lost:
                return  # another process runs it now
            if job.id in self._user_cancelled:
                await asyncio.shield(self._finish_cancelled(job))
                return
            log.info("job=%s paused for shutdown; it resumes at the next start", job.id)
            raise
        except LeaseLost:
            log.warning("job=%s was taken over by another process; leaving it to it", job.id)
        except BotError as err:
            await self._finish_failed(job, *self._ending(job, err))
        except Exception as exc:
            log.exception("job=%s failed unexpectedly", job.id)
            await self._finish_failed(job, BotError(detail=repr(exc)), JobState.FAILED)
        finally:
            self._release(job.id)
            if self._accepting:
                await self._dispatch()
            elif not self._running:
                self._idle.set()

    async def _done_with_segmind(self, job: Job) -> None:
        """The clip is on disk (DOWNLOADED holds no slot): the next job may go to Segmind."""
        if self._accepting and self._waiting:
            await self._dispatch()

    def _ending(self, job: Job, err: BotError) -> tuple[BotError, JobState]:
        """What the member is told and the state stored when ``err`` ends the job."""
        if isinstance(err, SegmindRequestExpired):
            return self._expiry_for_member(job, err), JobState.EXPIRED
        if isinstance(err, SubmitOutcomeUnknown):
            return err, JobState.UNKNOWN
        return err, JobState.FAILED

    def _stop_requested(self, job: Job) -> bool:
        """Asked by the Segmind steps at the last moment a submit can still be called off."""
        if job.cancel_requested and job.id not in self._user_cancelled:
            # Pressed in another process, not yet seen by the keeper: it is a Cancel all the same.
            self._user_cancelled.add(job.id)
            if job.cancel_requested_by is not None:
                self._cancelled_by.setdefault(job.id, job.cancel_requested_by)
        return job.id in self._user_cancelled or not self._accepting

    def _expiry_for_member(self, job: Job, err: SegmindRequestExpired) -> SegmindRequestExpired:
        """Say "kept one hour and expired" only when the job is that old; else say what is known."""
        age = self._clock.time() - job.submitted_at if job.submitted_at else 0.0
        if age < SEGMIND_RETENTION_SECONDS:
            return err
        return SegmindRequestExpired(
            SegmindRequestExpired.retention_message, detail=err.detail, status=err.status
        )

    async def _finish_failed(self, job: Job, error: BotError, state: JobState) -> Job:
        by = self._cancelled_by.pop(job.id, None)
        cancelled: dict[str, Any] = {}
        if state is JobState.CANCELLED and isinstance(error, JobCancelled):
            error = JobCancelled.said_to(job.user_id, by)
            cancelled = {"cancelled_by": by}
        log.info("job=%s ended state=%s reason=%s by=%s", job.id, state.value, error.detail, by)
        try:
            stored = await self._storage.jobs.update(
                job.id,
                now=self._clock.time(),
                owner=self.owner,
                state=state,
                **cancelled,
                error=error.user_message,
                finished_at=self._clock.time(),
                # The member is owed this message: stored with the ending, so no crash or outage
                # between here and Discord loses it.
                failure_notice_due=self._clock.time(),
            )
        except LeaseLost:
            log.warning("job=%s was taken over by another process; its ending is not ours", job.id)
            return job
        await self._notices.tell(stored, error)
        return stored
