"""Polling one Segmind job to its end: how often to look, what to retry, when to give up.

``services.segmind`` makes the keyed status and result calls; this only decides when to
make them. Polls retry transient trouble within their deadline, waiting as
``services.backoff`` says; anything unforeseen while polling is transient too, as a job
being paid for must not end on it.
"""

from __future__ import annotations

import logging
import math
import random
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from services.account_pace import AccountPace
from services.backoff import Backoff
from services.clock import Clock
from services.errors import (
    BotError,
    DeadlineExceeded,
    GenerationFailed,
    SegmindError,
    SegmindMalformedResponse,
    SegmindRateLimited,
    SegmindRequestExpired,
    SegmindResultNotReady,
    SegmindServerError,
    SegmindUnavailable,
    SegmindUnexpectedError,
)
from services.metrics import Metrics
from services.models import SegmindState, SegmindStatus, Submission, VideoResult
from services.poll_schedule import GrowingSchedule, PollSchedule

# These lines tell of the client's requests, so they keep its logger's name.
log = logging.getLogger("services.segmind")

T = TypeVar("T")

_MALFORMED_RETRIES = 3  # a garbled body may be a proxy hiccup; a persistent one is a bug
# A 404 seconds after submit may be a status store lagging behind; a lasting one is final.
_NOT_FOUND_RETRIES = 2


class Poller:
    """Runs a client's polls: ``describe`` is the client's scrubbed account of an exception."""

    def __init__(
        self,
        *,
        clock: Clock,
        backoff: Backoff,
        result_grace: float,
        poll_interval: float,
        max_poll_interval: float,
        rng: random.Random,
        describe: Callable[[BaseException], str],
        metrics: Metrics,
        pace: AccountPace,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self._clock = clock
        self._backoff = backoff
        self._result_grace = result_grace
        self._poll_interval = poll_interval
        # A configured poll interval above the cap wins: the operator asked for calm.
        self._max_poll_interval = max(max_poll_interval, poll_interval)
        self._rng = rng
        self._describe = describe
        self._metrics = metrics
        self._pace = pace

    async def until_done(
        self,
        submission: Submission,
        *,
        status: Callable[[], Awaitable[SegmindStatus]],
        result: Callable[[], Awaitable[VideoResult]],
        deadline: float,
        on_state: Callable[[SegmindState], Awaitable[None]] | None = None,
        schedule: PollSchedule | None = None,
    ) -> VideoResult:
        """``SegmindClient.poll_until_done``, given the calls that ask about ``submission``."""
        if schedule is None:
            schedule = GrowingSchedule(self._poll_interval, self._max_poll_interval)
        last_state: SegmindState | None = None
        # When a status answer last said "not finished": Segmind ended the job after that.
        seen_unfinished: float | None = None
        schedule = _Contained(schedule, self._poll_interval, self._max_poll_interval)
        first = schedule.first_delay(self._clock.monotonic())
        if first > 0:
            await self._sleep_within(first, deadline, submission)
        while True:
            current = await self._retrying(status, submission, deadline)
            schedule.seen(current.state, self._clock.monotonic())
            if current.state in (SegmindState.COMPLETED, SegmindState.FAILED):
                if seen_unfinished is not None:
                    self._metrics.detected(self._clock.monotonic() - seen_unfinished)
            else:
                seen_unfinished = self._clock.monotonic()
            if current.state is not last_state:
                last_state = current.state
                log.info(
                    "segmind request_id=%s state=%s", submission.request_id, current.state.value
                )
                await self._notify(on_state, current.state, submission)
            if current.state is SegmindState.COMPLETED:
                grace = max(deadline, self._clock.monotonic() + self._result_grace)
                return await self._retrying(result, submission, grace, finished=True)
            if current.state is SegmindState.FAILED:
                text = current.error or ""
                raise GenerationFailed(
                    text, detail=f"request_id={submission.request_id} FAILED: {text}"
                )
            delay = schedule.next_delay(self._clock.monotonic())
            await self._sleep_within(delay, deadline, submission)

    async def _retrying(
        self,
        call: Callable[[], Awaitable[T]],
        submission: Submission,
        deadline: float,
        *,
        finished: bool = False,
    ) -> T:
        """Run one status or result call, retrying transient failures within the deadline.

        ``finished``: Segmind said COMPLETED, so at the deadline the last error is what
        went wrong; "took too long" (``DeadlineExceeded``) is only for unfinished jobs.
        """
        failures = 0
        malformed = 0
        not_found = 0
        while True:
            # A 429 to any job of the account holds this one back too.
            await self._pace.wait(at_most=max(0.0, deadline - self._clock.monotonic()))
            try:
                return await call()
            except SegmindMalformedResponse as exc:
                malformed += 1
                if malformed > _MALFORMED_RETRIES:
                    raise
                error: SegmindError = exc
            except SegmindRequestExpired as exc:
                not_found += 1
                if not_found > _NOT_FOUND_RETRIES:
                    raise
                error = exc
            except (
                SegmindRateLimited,
                SegmindServerError,
                SegmindUnavailable,
                SegmindResultNotReady,
            ) as exc:
                error = exc
            except BotError:
                raise  # the job's own end: FAILED, a refused key or request
            except Exception as exc:  # noqa: BLE001 - logged, scrubbed, in _unexpected
                # Unforeseen, so not known to be final: retried like a 5xx rather than
                # ending a job that is being paid for.
                error = self._unexpected(exc, submission)
            if self._clock.monotonic() >= deadline and (
                finished or isinstance(error, SegmindRequestExpired)
            ):
                # "Forgotten", or the result's own trouble, says more than "took too long".
                raise error
            failures += 1
            delay = self._retry_delay(error, failures)
            log.info(
                "segmind request_id=%s transient error, retry_in=%.2fs error=%s",
                submission.request_id,
                delay,
                error.detail,
            )
            await self._sleep_within(delay, deadline, submission)

    async def _sleep_within(self, delay: float, deadline: float, submission: Submission) -> None:
        """Sleep ``delay`` but never past the deadline; at the deadline, give up."""
        remaining = deadline - self._clock.monotonic()
        if remaining <= 0:
            log.warning("segmind request_id=%s deadline reached", submission.request_id)
            raise DeadlineExceeded(
                detail=f"request_id={submission.request_id} did not finish before the deadline"
            )
        await self._clock.sleep(min(delay, remaining))

    async def _notify(
        self,
        on_state: Callable[[SegmindState], Awaitable[None]] | None,
        state: SegmindState,
        submission: Submission,
    ) -> None:
        if on_state is None:
            return
        try:
            await on_state(state)
        except Exception:
            # A failed progress update must not abandon a job that is being paid for.
            log.exception("on_state callback failed request_id=%s", submission.request_id)

    def _unexpected(self, exc: Exception, submission: Submission) -> SegmindUnexpectedError:
        # Where it was raised instead of a traceback: the message may hold text from outside,
        # so it is logged only scrubbed of the key, like every other text here.
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        error = SegmindUnexpectedError(
            detail=f"request_id={submission.request_id}: unexpected {self._describe(exc)}{where}"
        )
        log.warning("segmind poll failed unexpectedly; retrying: %s", error.detail)
        return error

    def _retry_delay(self, error: SegmindError, attempt: int) -> float:
        """Segmind's own Retry-After when it gave one, else the policy's backoff.

        A 429 holds the whole account back for that long (``services.account_pace``).
        """
        retry_after = (
            error.retry_after
            if isinstance(error, (SegmindRateLimited, SegmindServerError))
            else None
        )
        delay = self._backoff.delay(attempt, self._rng, retry_after)
        if isinstance(error, SegmindRateLimited):
            self._pace.hold(delay)  # the account's limit: every job waits, not just this one
        return delay


class _Contained:
    """A schedule whose failure costs only its cleverness: polls go on, growing calmly.

    The schedule reads learned data; nothing wrong with that data may end a job that
    Segmind has accepted and billed.
    """

    def __init__(self, schedule: PollSchedule, interval: float, ceiling: float) -> None:
        self._schedule: PollSchedule = schedule
        self._failed = False
        self._fallback = GrowingSchedule(interval, ceiling)

    def first_delay(self, now: float) -> float:
        return self._delay(lambda: self._schedule.first_delay(now), now, first=True)

    def next_delay(self, now: float) -> float:
        return self._delay(lambda: self._schedule.next_delay(now), now, first=False)

    def seen(self, state: SegmindState, now: float) -> None:
        if not self._failed:
            try:
                self._schedule.seen(state, now)
            except Exception as exc:  # noqa: BLE001 - any failure: see the class docstring
                self._give_up(exc)

    def _delay(self, ask: Callable[[], float], now: float, *, first: bool) -> float:
        if not self._failed:
            try:
                delay = ask()
                if math.isfinite(delay) and delay >= 0:
                    return delay
                raise ValueError(f"a poll delay of {delay!r}")
            except Exception as exc:  # noqa: BLE001 - any failure: see the class docstring
                self._give_up(exc)
        return self._fallback.first_delay(now) if first else self._fallback.next_delay(now)

    def _give_up(self, exc: Exception) -> None:
        log.warning("poll schedule failed; polling on a plain back-off", exc_info=exc)
        self._failed = True
