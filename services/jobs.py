"""The job runner: a fair queue in front of Segmind, durable at every step.

A job arrives already stored (QUEUED) by admission. The runner starts it when a
global slot and a per-member slot are free, submits it once, polls it to the end,
downloads the clip to disk and hands it to the listener (the Discord presenter, or the CLI) to
deliver. Every transition is written to the database first, so a restart resumes
each job from where it stood, and a submit whose answer was lost is never resent.

The slots bound the work at Segmind only: once its clip is on disk a job gives its slot to
the next one, and a delivery waiting out a Discord outage holds none. A downloaded clip is
posted again and again, as long as its file exists, until the member has it.

Every wait before another try (a submit Segmind refused, a download, a post) is
``services.backoff``'s; the client sends each submit once and leaves those waits here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from services.backoff import Backoff
from services.clips import ClipFiles
from services.clock import Clock
from services.download import ClipDownloader
from services.errors import (
    BotError,
    ClipStorageError,
    ClipUndeliverable,
    ConfigurationError,
    GenerationFailed,
    SegmindInsufficientCredits,
    SegmindMalformedResponse,
    SegmindNotFound,
    SegmindRateLimited,
    SegmindRequestExpired,
    SegmindServerError,
    SegmindUnavailable,
    SubmitOutcomeUnknown,
)
from services.gates import AccountGates
from services.models import Job, JobState, Progress, ProgressPhase, SegmindState, Submission
from services.segmind import SegmindClient
from services.storage import Storage

log = logging.getLogger(__name__)

# Segmind keeps a finished result for one hour; past that a resumed job cannot be fetched.
SEGMIND_RETENTION_SECONDS = 3600.0
# A 429 or a refused connection on submit proves the job was not accepted, so waiting and
# trying again is safe: this many submits in all, the waits between them done here.
RATE_LIMITED_SUBMIT_ATTEMPTS = 8
# Segmind's Retry-After is honoured up to two minutes; a longer one is a quota, not a blip.
SUBMIT_BACKOFF = Backoff(base=1.0, cap=30.0, max_retry_after=120.0)
# A paid clip's download is retried quickly at first, yet for longer in all than a CDN
# hiccup lasts (at least 30 s over 6 tries): the least each may wait is half its ceiling.
DOWNLOAD_BACKOFF = Backoff(base=2.0, cap=30.0)
# Its post is retried without end while the clip is on disk: quickly at first, then every
# few minutes at most, so an outage of hours costs Discord a request per clip in that time.
DELIVERY_BACKOFF = Backoff(base=2.0, cap=180.0)
RESUMED_POLL_WINDOW = 60.0
BEHIND_OWN_JOB = 0  # a waiting job's place when only the member's own running video holds it


class JobCancelled(BotError):
    user_message = "This video was cancelled."


class DeliveryFailed(BotError):
    user_message = "The video was made but could not be posted here."


class ClipLost(DeliveryFailed):
    """The downloaded clip's file vanished before it was posted: nothing is left to deliver."""

    user_message = (
        "The video was made, but its file was lost before it could be posted here. "
        "Please try again."
    )


class DownloadFailed(BotError):
    user_message = "The video was made, but the bot could not fetch it from Segmind."


class JobListener(Protocol):
    """What the runner tells the outside world (cogs/video/presenter.py, or the CLI)."""

    async def on_progress(self, job: Job, progress: Progress) -> None:
        """Something visible changed: queue position, Segmind state, elapsed time."""

    async def on_clip_ready(self, job: Job) -> int | None:
        """The clip is at ``job.clip_path``: deliver it; return the posted message id.

        Raise to have the runner retry later, for as long as the clip is on disk; the job
        stays stored (DOWNLOADED) until delivered. Raise ``ClipUndeliverable`` only when no
        route can ever reach the member: that ends the job.
        """

    async def on_failed(self, job: Job, error: BotError) -> None:
        """The job ended without a clip; ``error.user_message`` says why, for the member."""

    async def on_operator_alert(self, job: Job, error: BotError) -> None:
        """Something the moderators must hear about (bad key, no credits)."""


@dataclass(frozen=True)
class RunnerConfig:
    max_concurrent: int = 3
    max_per_member: int = 1
    deadline_seconds: float = 15 * 60
    expected_seconds: float = 240.0
    max_download_bytes: int = 200 * 1024 * 1024
    progress_interval: float = 5.0
    # Sends of one job while Segmind proves it did not accept them (429, refused connection).
    submit_attempts: int = RATE_LIMITED_SUBMIT_ATTEMPTS
    submit_backoff: Backoff = SUBMIT_BACKOFF
    # A finished clip is paid for: a dropped connection or a 5xx from the CDN is tried again.
    download_attempts: int = 6
    download_backoff: Backoff = DOWNLOAD_BACKOFF
    # Posting to Discord never gives up while the clip is on disk: an outage delays a paid
    # clip, it never ends it. After this many failed posts in a row the operator is told
    # (one ERROR with the traceback); each retry is one WARNING line.
    delivery_attempts: int = 8
    delivery_backoff: Backoff = DELIVERY_BACKOFF
    # Clips posted at the same time (each may be re-encoded to fit): after an outage many
    # wait at once. No Segmind slot is held meanwhile (``max_concurrent`` is for Segmind).
    max_concurrent_deliveries: int = 3
    # Private clips are kept this long after delivery so their owner can share them.
    clip_retention_seconds: float = 24 * 3600
    sweep_interval: float = 3600.0

    def __post_init__(self) -> None:
        for name in (
            "submit_attempts",
            "download_attempts",
            "delivery_attempts",
            "max_concurrent_deliveries",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"RunnerConfig.{name} must be at least 1")


def estimate_fraction(elapsed: float, expected: float) -> float:
    """A progress estimate that moves steadily and never claims to be done before it is."""
    if expected <= 0:
        return 0.0
    ratio = elapsed / expected
    if ratio <= 0.8:
        return ratio
    # Past 80 %, approach 99 % asymptotically instead of sitting at 100 % for minutes.
    return min(0.99, 0.8 + 0.19 * (1 - 1 / (1 + 4 * (ratio - 0.8))))


def expected_duration(job: Job, base_seconds: float) -> float:
    """Scale the typical time (45 steps x 49 frames) by this job's work."""
    work = (job.request.steps * job.request.input_frames) / (45 * 49)
    return base_seconds * max(0.2, work)


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
    ) -> None:
        self._storage = storage
        self._segmind = segmind
        self._downloader = downloader
        self._clips = clips
        self._config = config
        self._clock = clock
        self._gates = gates
        self._listener = listener
        self._rng = rng or random.Random()
        self._waiting: list[Job] = []
        self._running: dict[int, asyncio.Task[None]] = {}  # every started job, delivering too
        # The jobs holding a Segmind slot (``max_concurrent``, ``max_per_member``): from their
        # start until their clip is on disk.
        self._generating: set[int] = set()
        self._running_members: Counter[tuple[int, int]] = Counter()
        self._member_of: dict[int, tuple[int, int]] = {}
        self._delivery_slots = asyncio.Semaphore(config.max_concurrent_deliveries)
        self._positions: dict[int, int] = {}
        self._user_cancelled: set[int] = set()
        self._cancelled_before_enqueue: set[int] = set()
        self._submitting: set[asyncio.Future[Job]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._accepting = True
        self._idle = asyncio.Event()
        self._idle.set()

    def set_listener(self, listener: JobListener) -> None:
        self._listener = listener

    # --- public API ----------------------------------------------------------

    async def start(self) -> list[Job]:
        """Resume every unfinished job from the database; returns them."""
        self._accepting = True
        self._stopping = None
        self._clips.directory.mkdir(parents=True, exist_ok=True)
        unfinished = await self._storage.jobs.unfinished()
        # Nothing downloads yet, so a partial download left here was cut short by a crash.
        self._sweep(unfinished, partial_downloads=True)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep_periodically(), name="clip-sweeper")
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

    async def cancel(self, job_id: int) -> Job | None:
        """Stop a job, waiting, running or not yet enqueued; returns it, or None if it had ended."""
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
            return None
        self._cancelled_before_enqueue.add(job_id)
        log.info("job=%s cancelled before it was queued", job_id)
        return await self._storage.jobs.update(
            job_id,
            now=self._clock.time(),
            state=JobState.CANCELLED,
            error=JobCancelled().user_message,
            finished_at=self._clock.time(),
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
        pending: list[asyncio.Future[Any]] = [*tasks, *self._submitting]
        if self._submitting:
            log.info(
                "waiting for %d submit(s) to be answered before stopping", len(self._submitting)
            )
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
        self._running[job.id] = asyncio.create_task(self._run(job), name=f"job-{job.id}")
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
            await self._emit(job, progress)

    def _release(self, job_id: int) -> None:
        self._running.pop(job_id, None)
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
            if job.state is JobState.QUEUED:
                job = await self._submit_patiently(job)
            if job.state in (JobState.SUBMITTED, JobState.PROCESSING) and job.video_url is None:
                job = await self._poll(job)
            if not self._deliverable(job):  # finished at Segmind, or its clip is gone since
                job = await self._download(job)
            await self._done_with_segmind(job)
            await self._deliver(job)
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

    async def _submit_patiently(self, job: Job) -> Job:
        """Submit; when Segmind surely did not accept the job (429, refused connection), wait.

        Every such wait happens here, with the job stored as QUEUED again and outside the
        shield (the client sends once), so a cancel during it bills nothing and a crash or
        shutdown simply leaves the job queued.
        """
        attempts = self._config.submit_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._submit(job)
            except (SegmindRateLimited, SegmindUnavailable) as err:
                if attempt == attempts:
                    raise
                retry_after = err.retry_after if isinstance(err, SegmindRateLimited) else None
                delay = self._config.submit_backoff.delay(attempt, self._rng, retry_after)
                if isinstance(err, SegmindRateLimited):
                    log.warning(
                        "job=%s rate limited at submit; trying again in %.1fs", job.id, delay
                    )
                else:
                    log.warning(
                        "job=%s could not reach Segmind to submit (%s); trying again in %.1fs",
                        job.id,
                        err.detail,
                        delay,
                    )
                # Back in line as far as the member can tell, not "submitting" for minutes.
                await self._emit(job, Progress(job.id, ProgressPhase.QUEUED))
                await self._clock.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _submit(self, job: Job) -> Job:
        """Mark the job as being sent, then send it once; a cancel until the send costs nothing.

        Only the request itself is shielded: a Cancel or a shutdown while the mark is written
        or the member is shown "submitting" stops the job before anything leaves.
        """
        try:
            # On disk before the submit leaves: after a power cut the job must come back as
            # 'submitting' (outcome unknown, never resent), not 'queued' (sent, billed, again).
            job = await self._storage.jobs.update(
                job.id, now=self._clock.time(), state=JobState.SUBMITTING, durable=True
            )
            await self._emit(job, Progress(job.id, ProgressPhase.SUBMITTING))
            if self._stop_requested(job.id):
                # The last look before the request leaves, for a cancel that a listener
                # swallowed on the way: this is the last moment it is free.
                raise asyncio.CancelledError
        except asyncio.CancelledError:
            # Nothing was sent: back in line, so a restart submits it rather than calling its
            # outcome unknown, and a Cancel ends a job that never counted.
            await asyncio.shield(self._back_in_line(job))
            raise
        return await self._send_shielded(job)

    def _stop_requested(self, job_id: int) -> bool:
        return job_id in self._user_cancelled or not self._accepting

    async def _back_in_line(self, job: Job) -> None:
        await self._storage.jobs.update(job.id, now=self._clock.time(), state=JobState.QUEUED)

    async def _send_shielded(self, job: Job) -> Job:
        """Send the submit so that a cancel (member or shutdown) lets it finish and stores it.

        Cancelling mid-request would leave the outcome unknown; waiting for the answer
        instead stores the request id, so the job can be resumed or properly cancelled.
        """
        send = asyncio.ensure_future(self._send(job))
        self._submitting.add(send)
        send.add_done_callback(self._submitting.discard)
        try:
            return await asyncio.shield(send)
        except asyncio.CancelledError:
            # A second cancel (a shutdown right after a member's Cancel) must not cut the
            # request either: its answer decides whether the job was billed.
            while not send.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({send})
            raise

    async def _send(self, job: Job) -> Job:
        """The one request that may bill, and its answer stored; runs inside the shield."""
        try:
            # The client sends once; a wait inside the shield would make a cancel wait, then bill.
            submission = await self._segmind.submit(job.request)
        except (SegmindRateLimited, SegmindUnavailable):
            # Proven not accepted: back in line, so nothing is unknown while we wait.
            await self._back_in_line(job)
            raise
        except SegmindMalformedResponse as err:
            # A 2xx that lacks its fields may still have started (and billed) a job.
            raise SubmitOutcomeUnknown(detail=f"unreadable submit answer: {err.detail}") from err
        except SegmindInsufficientCredits as err:
            self._gates.key.resume()  # Segmind knew the key, so that much is fixed
            if self._gates.credits.pause(err):
                await self._alert(job, err)
            raise
        except (ConfigurationError, SegmindNotFound) as err:
            await self._key_refused(job, err)
            raise
        except BotError:
            raise
        except Exception as exc:
            # Nothing proves the request did not leave before this broke: ended as "outcome
            # unknown" (counted, never resent), never as a failure the member would retry.
            log.error("job=%s submit failed unexpectedly", job.id, exc_info=True)
            raise SubmitOutcomeUnknown(
                detail=f"submit failed unexpectedly: {type(exc).__name__}"
            ) from exc
        self._gates.resume()
        try:
            job = await self._storage.jobs.update(
                job.id,
                now=self._clock.time(),
                state=JobState.SUBMITTED,
                request_id=submission.request_id,
                status_url=submission.status_url,
                response_url=submission.response_url,
                segmind_state=SegmindState.QUEUED.value,
                submitted_at=self._clock.time(),
            )
        except Exception as exc:
            # Segmind has the job (billed) but the record does not: the id is in the log.
            log.error(
                "job=%s accepted as request_id=%s but not stored",
                job.id,
                submission.request_id,
                exc_info=True,
            )
            raise SubmitOutcomeUnknown(
                detail=f"accepted as request_id={submission.request_id}, not stored"
            ) from exc
        log.info("job=%s submitted request_id=%s", job.id, submission.request_id)
        await self._emit(job, self._progress(job))
        return job

    def _submission(self, job: Job) -> Submission:
        assert job.request_id and job.status_url and job.response_url
        return Submission(job.request_id, job.status_url, job.response_url)

    def _progress(self, job: Job) -> Progress:
        elapsed = max(0.0, self._clock.time() - (job.submitted_at or self._clock.time()))
        processing = job.state is JobState.PROCESSING
        phase = ProgressPhase.PROCESSING if processing else ProgressPhase.SEGMIND_QUEUED
        expected = expected_duration(job, self._config.expected_seconds)
        return Progress(
            job.id,
            phase,
            elapsed=elapsed,
            fraction=estimate_fraction(elapsed, expected),
            expected=expected,
        )

    async def _poll(self, job: Job) -> Job:
        submitted_at = job.submitted_at or self._clock.time()
        remaining = submitted_at + self._config.deadline_seconds - self._clock.time()
        # A job resumed after a long downtime still gets a short look: one status hiccup
        # must not end a clip that may be finished and paid for.
        window = min(RESUMED_POLL_WINDOW, self._config.deadline_seconds)
        deadline = self._clock.monotonic() + max(window, remaining)
        current = job

        async def on_state(state: SegmindState) -> None:
            nonlocal current
            if state is SegmindState.PROCESSING and current.state is not JobState.PROCESSING:
                current = await self._storage.jobs.update(
                    job.id,
                    now=self._clock.time(),
                    state=JobState.PROCESSING,
                    segmind_state=state.value,
                )
                log.info("job=%s state=PROCESSING", job.id)
                await self._emit(current, self._progress(current))

        ticker = asyncio.create_task(self._tick(lambda: current))
        try:
            result = await self._segmind.poll_until_done(
                self._submission(job), deadline=deadline, on_state=on_state
            )
        except GenerationFailed:
            await self._storage.jobs.update(
                job.id, now=self._clock.time(), segmind_state=SegmindState.FAILED.value
            )
            raise
        except ConfigurationError as err:
            # A key refused while polling needs the moderators as much as one refused at
            # submit; the member's message says they have been told.
            await self._key_refused(job, err)
            raise
        finally:
            ticker.cancel()
        log.info("job=%s completed at Segmind", job.id)
        return await self._storage.jobs.update(
            job.id,
            now=self._clock.time(),
            state=JobState.PROCESSING,
            segmind_state=SegmindState.COMPLETED.value,
            video_url=result.video_url,
        )

    async def _tick(self, current: Callable[[], Job]) -> None:
        """Elapsed-time updates while Segmind works; the listener decides how often to show them."""
        while True:
            await self._clock.sleep(self._config.progress_interval)
            await self._emit(current(), self._progress(current()))

    async def _download(self, job: Job) -> Job:
        if job.video_url is None:
            raise SegmindRequestExpired(detail="no result URL stored")
        # No age check here: the CDN's own 403/404/410 says when a link is gone, and a wall
        # clock corrected mid-job (NTP after boot) must not throw away a paid clip.
        await self._emit(job, Progress(job.id, ProgressPhase.DOWNLOADING, fraction=0.99))
        dest = self._clips.path_for(job.id)
        size = await self._download_patiently(job, job.video_url, dest)
        log.info("job=%s downloaded bytes=%s", job.id, size)
        return await self._storage.jobs.update(
            job.id, now=self._clock.time(), state=JobState.DOWNLOADED, clip_path=str(dest)
        )

    async def _download_patiently(self, job: Job, url: str, dest: Path) -> int:
        """Download, trying again after a transient failure; expiry and size limits are final."""
        attempts = self._config.download_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._downloader.download(
                    url, dest, max_bytes=self._config.max_download_bytes
                )
            except (SegmindUnavailable, SegmindServerError, ClipStorageError) as err:
                if attempt == attempts:
                    raise DownloadFailed(detail=err.detail) from err
                delay = self._config.download_backoff.delay(attempt, self._rng)
                log.warning(
                    "job=%s download failed (%s); retrying in %.1fs", job.id, err.detail, delay
                )
                await self._clock.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _deliver(self, job: Job) -> None:
        """Post the clip until the member has it: a Discord outage delays delivery, never ends it.

        The job stays DOWNLOADED meanwhile, so a shutdown during a wait leaves it to the next
        start. It ends unposted only when the clip file is gone (nothing left to post) or the
        listener raises ``ClipUndeliverable`` (no route can ever reach the member).
        """
        attempt = 0
        while True:
            if not self._clips.exists(job):
                log.error(
                    "job=%s clip file %s is gone; it cannot be delivered", job.id, job.clip_path
                )
                raise ClipLost(detail=f"clip file gone before delivery: {job.clip_path}")
            attempt += 1
            try:
                async with self._delivery_slots:
                    await self._post_clip(job)
                return
            except ClipUndeliverable as err:
                log.error("job=%s could not be delivered: %s", job.id, err.detail)
                raise
            except Exception as exc:
                delay = self._config.delivery_backoff.delay(attempt, self._rng)
                if attempt == self._config.delivery_attempts:
                    log.error(
                        "job=%s still not delivered after %d attempts; posting goes on while "
                        "its clip is on disk",
                        job.id,
                        attempt,
                        exc_info=True,
                    )
                log.warning(
                    "job=%s delivery attempt %d failed (%s); retrying in %.1fs",
                    job.id,
                    attempt,
                    _briefly(exc),
                    delay,
                )
            await self._clock.sleep(delay)

    async def _post_clip(self, job: Job) -> None:
        """Post the clip and record it, as one step no cancel (shutdown, Cancel) interrupts.

        A post that reached the channel but was not stored as delivered would be posted
        (and the member pinged) a second time after the restart.
        """
        listener = self._listener

        async def post_and_record() -> None:
            message_id = await listener.on_clip_ready(job) if listener is not None else None
            await self._mark_delivered(job, message_id)

        post = asyncio.ensure_future(post_and_record())
        try:
            await asyncio.shield(post)
        except asyncio.CancelledError:
            while not post.done():  # a second cancel must not cut the upload short either
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({post})
            raise

    async def _mark_delivered(self, job: Job, message_id: int | None) -> None:
        await self._storage.jobs.update(
            job.id,
            now=self._clock.time(),
            state=JobState.DELIVERED,
            result_message_id=message_id,
            finished_at=self._clock.time(),
        )
        if not job.private and job.clip_path:
            # Public clips live on in Discord; private ones stay for sharing until swept.
            self._clips.remove(Path(job.clip_path))
        log.info("job=%s delivered message=%s", job.id, message_id)

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
        log.info("job=%s ended state=%s reason=%s", job.id, state.value, error.detail)
        stored = await self._storage.jobs.update(
            job.id,
            now=self._clock.time(),
            state=state,
            error=error.user_message,
            finished_at=self._clock.time(),
        )
        if self._listener is not None:
            try:
                await self._listener.on_failed(stored, error)
            except Exception:
                log.exception("job=%s could not report its failure", job.id)
        return stored

    async def _key_refused(self, job: Job, error: BotError) -> None:
        """Pause new requests (each would fail the same way, publicly) and tell moderators."""
        self._gates.key.pause(error)
        await self._alert(job, error)

    async def _alert(self, job: Job, error: BotError) -> None:
        log.error("job=%s needs the operator: %s", job.id, error.detail)
        if self._listener is not None:
            try:
                await self._listener.on_operator_alert(job, error)
            except Exception:
                log.exception("job=%s could not alert moderators", job.id)

    async def _emit(self, job: Job, progress: Progress) -> None:
        if self._listener is None:
            return
        try:
            await self._listener.on_progress(job, progress)
        except Exception:
            log.warning("job=%s progress update failed", job.id, exc_info=True)


def _briefly(exc: BaseException) -> str:
    """An error on one line for a retry's log: its type and the start of its message."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
