"""A job's time at Segmind: submitted once, then polled until its clip is made.

Only a submit that Segmind surely did not accept (429, refused connection) is sent again,
after a wait here; the one request that may bill is shielded from cancels, and a submit
whose answer was lost ends as "outcome unknown", never resent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable
from typing import Any

from services import logcontext
from services.clock import Clock
from services.errors import (
    BotError,
    ConfigurationError,
    GenerationFailed,
    SegmindInsufficientCredits,
    SegmindMalformedResponse,
    SegmindNotFound,
    SegmindRateLimited,
    SegmindUnavailable,
    SubmitOutcomeUnknown,
)
from services.finish_estimate import JobForecast, TimingModel
from services.gates import AccountGates
from services.job_listener import JobReporter
from services.metrics import Metrics
from services.models import Job, JobState, Progress, ProgressPhase, SegmindState, Submission
from services.poll_schedule import AdaptiveSchedule
from services.reported_cost import reported_cost_usd
from services.runner_config import RESUMED_POLL_WINDOW, RunnerConfig
from services.segmind import SegmindClient
from services.storage import Storage

# The runner's log, whichever of its modules writes: its lines keep one name.
log = logging.getLogger("services.jobs")

# The most of the bar shown before the clip is here: a late job never looks finished.
_MOST_SHOWN = 0.99


class SegmindSteps:
    """Submits a job and polls it to the end, storing each step before the next."""

    def __init__(
        self,
        storage: Storage,
        segmind: SegmindClient,
        config: RunnerConfig,
        *,
        clock: Clock,
        gates: AccountGates,
        reporter: JobReporter,
        rng: random.Random,
        stop_requested: Callable[[Job], bool],
        metrics: Metrics,
        timings: TimingModel,
        owner: str | None = None,
    ) -> None:
        self._storage = storage
        self._owner = owner  # this process, as the lease holder each write must still be
        self._segmind = segmind
        self._config = config
        self._clock = clock
        self._gates = gates
        self._reporter = reporter
        self._rng = rng
        # Whether the member cancelled the job or the runner is stopping.
        self._stop_requested = stop_requested
        self._metrics = metrics
        # Recent jobs' times at Segmind: the polls and the progress bar follow them.
        self.timings = timings
        # Submits in flight: a shutdown waits for their answers.
        self.submitting: set[asyncio.Future[Job]] = set()
        # The forecast of each job being polled: `/videoqueue` reads it as the bar does.
        self._forecasts: dict[int, JobForecast] = {}

    async def submit_patiently(self, job: Job) -> Job:
        """Submit; when Segmind surely did not accept the job (429, refused connection), wait.

        Every such wait happens here, with the job stored as QUEUED again and outside the
        shield (the client sends once), so a cancel during it bills nothing and a crash or
        shutdown simply leaves the job queued.
        """
        attempts = self._config.submit_attempts
        for attempt in range(1, attempts + 1):
            # A 429 to any job of the account holds this submit back too.
            await self._segmind.pace.wait()
            try:
                # The queue's wait ends at the first send; a wait after a refusal is Segmind's.
                return await self._submit(job, first=attempt == 1)
            except (SegmindRateLimited, SegmindUnavailable) as err:
                if attempt == attempts:
                    raise
                retry_after = err.retry_after if isinstance(err, SegmindRateLimited) else None
                delay = self._config.submit_backoff.delay(attempt, self._rng, retry_after)
                if isinstance(err, SegmindRateLimited):
                    self._segmind.pace.hold(delay)  # the account's limit, not only this job's
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
                await self._reporter.progress(job, Progress(job.id, ProgressPhase.QUEUED))
                await self._clock.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _submit(self, job: Job, *, first: bool) -> Job:
        """Mark the job as being sent, then send it once; a cancel until the send costs nothing.

        Only the request itself is shielded: a Cancel or a shutdown while the mark is written
        or the member is shown "submitting" stops the job before anything leaves.
        """
        try:
            # On disk before the submit leaves: after a power cut the job must come back as
            # 'submitting' (outcome unknown, never resent), not 'queued' (sent, billed, again).
            job = await self._storage.jobs.update(
                job.id,
                owner=self._owner,
                now=self._clock.time(),
                state=JobState.SUBMITTING,
                durable=True,
            )
            await self._reporter.progress(job, Progress(job.id, ProgressPhase.SUBMITTING))
            # ``job`` as just stored: a Cancel pressed in another process shows here too.
            if self._stop_requested(job):
                # The last look before the request leaves, for a cancel that a listener
                # swallowed on the way: this is the last moment it is free.
                raise asyncio.CancelledError
        except asyncio.CancelledError:
            # Nothing was sent: back in line, so a restart submits it rather than calling its
            # outcome unknown, and a Cancel ends a job that never counted.
            await asyncio.shield(self._back_in_line(job))
            raise
        if first:
            # Timed right before the request leaves: a job called off at the last moment
            # never left the queue. Once per job in this process (a restart starts again).
            self._metrics.queue_waited(self._clock.time() - job.created_at)
        return await self._send_shielded(job)

    async def _back_in_line(self, job: Job) -> None:
        await self._storage.jobs.update(
            job.id, owner=self._owner, now=self._clock.time(), state=JobState.QUEUED
        )

    async def _send_shielded(self, job: Job) -> Job:
        """Send the submit so that a cancel (member or shutdown) lets it finish and stores it.

        Cancelling mid-request would leave the outcome unknown; waiting for the answer
        instead stores the request id, so the job can be resumed or properly cancelled.
        """
        send = asyncio.ensure_future(self._send(job))
        self.submitting.add(send)
        send.add_done_callback(self.submitting.discard)
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
            submission = await self._submit_counted(job)
        except (SegmindRateLimited, SegmindUnavailable):
            # Proven not accepted: back in line, so nothing is unknown while we wait.
            await self._back_in_line(job)
            raise
        except SegmindMalformedResponse as err:
            # A 2xx that lacks its fields may still have started (and billed) a job.
            raise SubmitOutcomeUnknown(detail=f"unreadable submit answer: {err.detail}") from err
        except SegmindInsufficientCredits as err:
            self._gates.key.resume()  # Segmind knew the key, so that much is fixed
            news = self._gates.credits.pause(err)
            await self._gates.publish()  # the other processes pause too
            if news:
                await self._reporter.alert(job, err)
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
        await self._gates.publish()  # nothing to store unless this ended a pause
        logcontext.bind(request_id=submission.request_id)  # the job's later lines carry it
        try:
            job = await self._storage.jobs.update(
                job.id,
                owner=self._owner,
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
        await self._reporter.progress(job, self._progress(job))
        return job

    async def _submit_counted(self, job: Job) -> Submission:
        """The client's one submit, counted by what Segmind's answer proves.

        One that never connected (not a byte sent) is no submit: only
        ``videobot_errors_total{service="segmind",code="connection"}`` counts it.
        """
        try:
            submission = await self._segmind.submit(job.request)
        except SegmindUnavailable:
            raise
        except (SubmitOutcomeUnknown, SegmindMalformedResponse):
            self._metrics.submitted("unknown")
            raise
        except BotError:  # an answer that refused it: nothing was started or billed
            self._metrics.submitted("refused")
            raise
        except Exception:
            self._metrics.submitted("unknown")  # nothing proves it did not leave
            raise
        self._metrics.submitted("accepted")
        return submission

    def _submission(self, job: Job) -> Submission:
        assert job.request_id and job.status_url and job.response_url
        return Submission(job.request_id, job.status_url, job.response_url)

    def _forecast(self, job: Job, *, fresh: bool) -> JobForecast:
        # On the monotonic clock: a wall clock stepped mid-job must not teach a wrong time.
        since_submit = max(0.0, self._clock.time() - (job.submitted_at or self._clock.time()))
        return JobForecast(
            self.timings,
            input_frames=job.request.input_frames,
            steps=job.request.steps,
            submitted_at=self._clock.monotonic() - since_submit,
            # Cells a quarter of the densest gap: fine enough to place each poll.
            cell=self._segmind.poll_interval / 4,
            fresh=fresh,
        )

    def _progress(self, job: Job, forecast: JobForecast | None = None) -> Progress:
        """Where the job stands, its bar and expected end from the same forecast as the polls."""
        now = self._clock.time()
        elapsed = max(0.0, now - (job.submitted_at or now))
        expected, likely_left, late = 0.0, None, False
        try:
            forecast = forecast or self._forecast(job, fresh=True)
            mono = self._clock.monotonic()
            outlook = forecast.outlook(mono)
            end = outlook.end - forecast.submitted_at
            if math.isfinite(end) and math.isfinite(outlook.likely_end):
                expected = max(elapsed, end)
                likely_left, late = max(0.0, outlook.likely_end - mono), outlook.late
        except Exception:  # an estimate, never worth a job: shown without one
            log.warning("job=%s progress estimate failed", job.id, exc_info=True)
        processing = job.state is JobState.PROCESSING
        phase = ProgressPhase.PROCESSING if processing else ProgressPhase.SEGMIND_QUEUED
        return Progress(
            job.id,
            phase,
            elapsed=elapsed,
            # Never a full bar before the clip is here, even for a job running late.
            fraction=min(_MOST_SHOWN, elapsed / expected) if expected > 0 else 0.0,
            expected=expected,
            likely_left=likely_left,
            late=late,
        )

    def progress_now(self, job: Job) -> Progress:
        """Where an accepted job stands at this moment, by the forecast its polls follow."""
        return self._progress(job, self._forecasts.get(job.id))

    async def poll(self, job: Job, *, fresh: bool = False) -> Job:
        """Poll a submitted job to its end; ``fresh``: submitted just now by this process."""
        submitted_at = job.submitted_at or self._clock.time()
        remaining = submitted_at + self._config.deadline_seconds - self._clock.time()
        # A job resumed after a long downtime still gets a short look: one status hiccup
        # must not end a clip that may be finished and paid for.
        window = min(RESUMED_POLL_WINDOW, self._config.deadline_seconds)
        deadline = self._clock.monotonic() + max(window, remaining)
        current = job
        # Generation is timed only for a job this process saw unfinished: one that ended
        # while the bot was down would count the downtime as Segmind's.
        seen_unfinished = False
        forecast = self._forecast(job, fresh=fresh)
        self._forecasts[job.id] = forecast

        async def on_state(state: SegmindState) -> None:
            nonlocal current, seen_unfinished
            if state is SegmindState.COMPLETED:
                if seen_unfinished and job.submitted_at is not None:
                    # When the answer came, not after the result's fetch.
                    self._metrics.generated(self._clock.time() - job.submitted_at)
                return
            if state in (SegmindState.QUEUED, SegmindState.PROCESSING):
                seen_unfinished = True
            if state is SegmindState.PROCESSING and current.state is not JobState.PROCESSING:
                current = await self._storage.jobs.update(
                    job.id,
                    owner=self._owner,
                    now=self._clock.time(),
                    state=JobState.PROCESSING,
                    segmind_state=state.value,
                )
                log.info("job=%s state=PROCESSING", job.id)
                await self._reporter.progress(current, self._progress(current, forecast))

        ticker = asyncio.create_task(self._tick(lambda: current, forecast))
        try:
            result = await self._segmind.poll_until_done(
                self._submission(job),
                deadline=deadline,
                on_state=on_state,
                schedule=AdaptiveSchedule(forecast, self._segmind.poll_interval),
            )
        except GenerationFailed:
            await self._storage.jobs.update(
                job.id,
                owner=self._owner,
                now=self._clock.time(),
                segmind_state=SegmindState.FAILED.value,
            )
            raise
        except ConfigurationError as err:
            # A key refused while polling needs the moderators as much as one refused at
            # submit; the member's message says they have been told.
            await self._key_refused(job, err)
            raise
        finally:
            ticker.cancel()
            self._forecasts.pop(job.id, None)
        log.info("job=%s completed at Segmind", job.id)
        await self._learn(forecast)
        # Segmind's own figure replaces admission's estimate in the same write as the
        # result, so the budgets never count a clip whose link is kept at the wrong price.
        cost = reported_cost_usd(
            result.metrics,
            job_id=job.id,
            estimate_usd=self._config.clip_cost_usd,
            reserved_usd=None if job.cost_reported else job.cost_usd,
        )
        priced: dict[str, Any] = {} if cost is None else {"cost_usd": cost, "cost_reported": True}
        if cost is not None and cost != job.cost_usd:
            log.info(
                "job=%s cost %.4f USD as Segmind reports (estimated %.4f)",
                job.id,
                cost,
                job.cost_usd,
            )
        return await self._storage.jobs.update(
            job.id,
            owner=self._owner,
            now=self._clock.time(),
            state=JobState.PROCESSING,
            segmind_state=SegmindState.COMPLETED.value,
            video_url=result.video_url,
            **priced,
        )

    async def _learn(self, forecast: JobForecast) -> None:
        """What this job's times teach the next jobs' polls; never at the cost of the job."""
        timing = forecast.timing()
        if timing is None:
            return
        self.timings.learn(timing)
        try:
            await self._storage.timings.add(timing, now=self._clock.time())
        except Exception:
            log.warning("could not keep the job's timing", exc_info=True)

    async def _tick(self, current: Callable[[], Job], forecast: JobForecast) -> None:
        """Elapsed-time updates while Segmind works; the listener decides how often to show them."""
        while True:
            await self._clock.sleep(self._config.progress_interval)
            await self._reporter.progress(current(), self._progress(current(), forecast))

    async def _key_refused(self, job: Job, error: BotError) -> None:
        """Pause new requests (each would fail the same way, publicly) and tell moderators."""
        self._gates.key.pause(error)
        await self._gates.publish()
        await self._reporter.alert(job, error)
