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
import contextlib
import logging
import random
from collections import Counter
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
from services.job_listener import JobCancelled, JobListener, JobReporter
from services.metrics import Metrics
from services.models import Job, JobState, Progress, ProgressPhase
from services.runner_config import SEGMIND_RETENTION_SECONDS, RunnerConfig
from services.segmind import SegmindClient
from services.segmind_steps import SegmindSteps
from services.storage import Storage

log = logging.getLogger(__name__)

BEHIND_OWN_JOB = 0  # a waiting job's place when only the member's own running video holds it


@dataclass(frozen=True, slots=True)
class RunnerLine:
    """The runner's line at one moment (read-only): who waits where, and what has started."""

    places: Mapping[int, int]  # waiting job id -> 1-based place, or BEHIND_OWN_JOB
    started: frozenset[int]  # at Segmind, or its clip being posted


class JobRunner:
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
    ) -> None:
        self._storage = storage
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
        )
        self._notices = FailureNotices(
            storage, config, clock=clock, reporter=self._reporter, rng=shared_rng
        )
        self._waiting: list[Job] = []
        self._running: dict[int, asyncio.Task[None]] = {}  # every started job, delivering too
        # The jobs holding a Segmind slot (``max_concurrent``, ``max_per_member``): from their
        # start until their clip is on disk.
        self._generating: set[int] = set()
        self._running_members: Counter[tuple[int, int]] = Counter()
        self._member_of: dict[int, tuple[int, int]] = {}
        self._positions: dict[int, int] = {}
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
        unfinished = await self._storage.jobs.unfinished()
        # Nothing downloads yet, so a partial download left here was cut short by a crash.
        self._sweep(unfinished, partial_downloads=True)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep_periodically(), name="clip-sweeper")
        # Before any job runs: an ending found after this is told by ``_finish_failed`` alone.
        await self._notices.resume()
        for job in unfinished:
            log.info("resuming job=%s state=%s", job.id, job.state.value)
            if job.state is JobState.QUEUED and job.interaction_token and job.message_id is None:
                # Admitted but never acknowledged (the answer to Discord failed, or the bot
                # died in between): the member saw no reply, so never run or bill it.
                await self._storage.jobs.update(
                    job.id,
                    now=self._clock.time(),
                    state=JobState.CANCELLED,
                    error="not acknowledged",
                )
            elif job.state is JobState.QUEUED:
                self._waiting.append(job)
            elif job.state is JobState.SUBMITTING:
                # The submit may or may not have reached Segmind: never send it again.
                await self._finish_failed(
                    job, SubmitOutcomeUnknown(detail="restarted during submit"), JobState.UNKNOWN
                )
            else:
                self._launch(job)
        await self._dispatch()
        return unfinished

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
            return await self._cancel_before_enqueue(job_id)
        if job_id not in self._user_cancelled:
            # A second click must not interrupt the first one's clean-up: it only waits.
            self._user_cancelled.add(job_id)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
        return await self._storage.jobs.get(job_id)

    async def cancel_guild(self, guild_id: int) -> int:
        """Drop a server's waiting jobs (the bot left it): nothing more is submitted for it."""
        doomed = [job for job in self._waiting if job.guild_id == guild_id]
        for job in doomed:
            await self.cancel(job.id)
        return len(doomed)

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
            state=JobState.CANCELLED,
            error=JobCancelled.said_to(stored.user_id, by).user_message,
            cancelled_by=by,
            finished_at=self._clock.time(),
            # Told by ``enqueue``; if the process dies first, by the next start.
            failure_notice_due=self._clock.time(),
        )

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
        if not self._deliverable(job):  # a resumed clip on disk needs nothing from Segmind
            member = self._member(job)
            self._generating.add(job.id)
            self._running_members[member] += 1
            self._member_of[job.id] = member
        # Its own context: every line the job logs, in any module, carries its ids.
        self._running[job.id] = asyncio.create_task(
            self._run(job), name=f"job-{job.id}", context=logcontext.job_context(job)
        )
        self._idle.clear()

    def _deliverable(self, job: Job) -> bool:
        return job.state is JobState.DOWNLOADED and self._clips.exists(job)

    async def _dispatch(self) -> None:
        """Start what may start, then tell waiting jobs whose place in line changed."""
        still_waiting: list[Job] = []
        for job in self._waiting:
            free = len(self._generating) < self._config.max_concurrent
            member_free = self._running_members[self._member(job)] < self._config.max_per_member
            if self._accepting and free and member_free:
                self._positions.pop(job.id, None)
                self._launch(job)
            else:
                still_waiting.append(job)
        self._waiting = still_waiting
        changed = []
        ahead = 0
        for job in self._waiting:
            if self._running_members[self._member(job)] >= self._config.max_per_member:
                place = BEHIND_OWN_JOB  # starts when the member's own video ends, not in line
            else:
                ahead += 1
                place = ahead
            if self._positions.get(job.id) != place:
                self._positions[job.id] = place
                changed.append((job, place))
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
        self._cancelled_by.pop(job_id, None)  # a Cancel that came too late records nobody
        self._leave_segmind(job_id)

    def _leave_segmind(self, job_id: int) -> None:
        """Give the job's Segmind slot (and its member's) to the next job; once is enough."""
        self._generating.discard(job_id)
        member = self._member_of.pop(job_id, None)
        if member is not None:
            self._running_members[member] -= 1
            if self._running_members[member] <= 0:
                del self._running_members[member]

    # --- one job -------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        try:
            fresh = job.state is JobState.QUEUED
            if fresh:
                job = await self._steps.submit_patiently(job)
            if job.state in (JobState.SUBMITTED, JobState.PROCESSING) and job.video_url is None:
                job = await self._steps.poll(job, fresh=fresh)
            if not self._deliverable(job):  # finished at Segmind, or its clip is gone since
                job = await self._delivery.download(job)
            await self._done_with_segmind(job)
            await self._delivery.deliver(job)
        except asyncio.CancelledError:
            if job.id in self._user_cancelled:
                await asyncio.shield(self._finish_cancelled(job))
                return
            log.info("job=%s paused for shutdown; it resumes at the next start", job.id)
            raise
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
        """The clip is on disk: a wait for Discord must not keep the next job from Segmind."""
        if job.id in self._generating:
            self._leave_segmind(job.id)
            if self._accepting:
                await self._dispatch()

    def _ending(self, job: Job, err: BotError) -> tuple[BotError, JobState]:
        """What the member is told and the state stored when ``err`` ends the job."""
        if isinstance(err, SegmindRequestExpired):
            return self._expiry_for_member(job, err), JobState.EXPIRED
        if isinstance(err, SubmitOutcomeUnknown):
            return err, JobState.UNKNOWN
        return err, JobState.FAILED

    def _stop_requested(self, job_id: int) -> bool:
        """Asked by the Segmind steps at the last moment a submit can still be called off."""
        return job_id in self._user_cancelled or not self._accepting

    def _expiry_for_member(self, job: Job, err: SegmindRequestExpired) -> SegmindRequestExpired:
        """Say "kept one hour and expired" only when the job is that old; else say what is known."""
        age = self._clock.time() - job.submitted_at if job.submitted_at else 0.0
        if age < SEGMIND_RETENTION_SECONDS:
            return err
        return SegmindRequestExpired(
            SegmindRequestExpired.retention_message, detail=err.detail, status=err.status
        )

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

    async def _finish_failed(self, job: Job, error: BotError, state: JobState) -> Job:
        by = self._cancelled_by.pop(job.id, None)
        cancelled: dict[str, Any] = {}
        if state is JobState.CANCELLED and isinstance(error, JobCancelled):
            error = JobCancelled.said_to(job.user_id, by)
            cancelled = {"cancelled_by": by}
        log.info("job=%s ended state=%s reason=%s by=%s", job.id, state.value, error.detail, by)
        stored = await self._storage.jobs.update(
            job.id,
            now=self._clock.time(),
            state=state,
            **cancelled,
            error=error.user_message,
            finished_at=self._clock.time(),
            # The member is owed this message: stored with the ending, so no crash or outage
            # between here and Discord loses it.
            failure_notice_due=self._clock.time(),
        )
        await self._notices.tell(stored, error)
        return stored
