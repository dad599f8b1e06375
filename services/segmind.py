"""Asynchronous Segmind v2 client: submit exactly once, poll politely; the one holder of the key.

Every failure is one of the typed errors in ``services.errors``. Three rules shape the code:

* A submit is sent once. An answer that proves it was not accepted (429, or a connection
  that failed before anything was sent) raises ``SegmindRateLimited`` or
  ``SegmindUnavailable`` at once: whether and when to send it again is the job runner's
  call, made outside its shield where a cancel can still stop the wait. Anything
  ambiguous raises ``SubmitOutcomeUnknown``, so a member is never billed twice.
* The API key goes only to the configured base URL's origin, in ``x-api-key``. Links in
  Segmind's answers that point elsewhere are replaced by the documented paths, and keyed
  requests never follow redirects. The clip itself comes from a CDN through
  ``services.download``, which never sees the key.
* The key never appears in an exception, a log line or a repr: texts taken from answers
  are cut short, stripped of markup and scrubbed of the key.

What an answer says is read by ``services.segmind_answers``; when to ask again is decided
by ``services.segmind_polling``; which URLs may receive the key, by
``services.segmind_origin``. None holds the key: every keyed request is made here.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from services.account_pace import AccountPace
from services.backoff import Backoff
from services.clock import Clock, SystemClock
from services.errors import (
    GenerationFailed,
    SegmindError,
    SegmindMalformedResponse,
    SegmindRateLimited,
    SegmindRequestExpired,
    SegmindResultNotReady,
    SegmindUnavailable,
    SubmitOutcomeUnknown,
)
from services.http_text import (
    EXCERPT_CHARS,
    MAX_ERROR_BODY,
    body_text,
    clean_text,
    cut,
    parse_json,
    read_capped,
)
from services.metrics import Metrics
from services.models import (
    MODEL_SLUG,
    SegmindState,
    SegmindStatus,
    Submission,
    VideoRequest,
    VideoResult,
)
from services.poll_schedule import PollSchedule
from services.segmind_answers import (
    NOT_READY_STATES,
    TIMEOUT_STATUS,
    Answer,
    error_field,
    error_for_status,
    failed_body,
    failure_text,
    find_video_url,
    state_text,
)
from services.segmind_origin import ApiOrigin
from services.segmind_polling import Poller

log = logging.getLogger(__name__)

API_KEY_HEADER = "x-api-key"
_MAX_API_BODY = 1024 * 1024  # API answers are small JSON; a runaway proxy page must not be
_MIN_KEY_FRAGMENT = 6  # a cut-off tail of the key this long is still scrubbed
_PROXY_STATUSES = frozenset({502, 503, 504})  # a proxy may have passed the submit on


@dataclass(frozen=True)
class RetryPolicy:
    """Timeouts and the polls' backoff; the defaults suit Segmind's documented limits."""

    base_delay: float = 1.0  # the polls' Backoff.base: first wait, doubled each time
    max_delay: float = 30.0  # the polls' Backoff.cap
    request_timeout: float = 30.0  # per HTTP call (aiohttp.ClientTimeout total)
    # Opening the connection gets its own, shorter limit: a connect that times out has sent
    # nothing, so the runner may submit again instead of ending with an unknown outcome.
    connect_timeout: float = 10.0
    # A COMPLETED job is paid for: its result may take this long past the deadline to fetch.
    result_grace: float = 300.0
    # A poll never sleeps past its deadline anyway; this only bounds a Retry-After between.
    max_retry_after: float = 15 * 60.0

    def __post_init__(self) -> None:
        _ = self.backoff  # an impossible backoff is refused here, not at the first retry

    @property
    def backoff(self) -> Backoff:
        """How long a poll waits after a transient failure."""
        return Backoff(self.base_delay, self.max_delay, max_retry_after=self.max_retry_after)


class SegmindClient:
    """Talks to Segmind's v2 API through a shared aiohttp session; see the module docstring.

    ``api_key=""`` sends no key at all (for the simulator behind ``--simulate``).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str,
        base_url: str = "https://api.segmind.com",
        model: str = MODEL_SLUG,
        clock: Clock | None = None,
        policy: RetryPolicy = RetryPolicy(),
        poll_interval: float = 2.0,
        max_poll_interval: float = 15.0,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self._metrics = metrics or Metrics()
        rng = rng or random.Random()
        # Shared by every job of this key: a 429 to one slows them all.
        self.pace = AccountPace(self._clock, rng)
        self._poller = Poller(  # refuses a poll_interval that is not positive
            clock=self._clock,
            backoff=policy.backoff,
            result_grace=policy.result_grace,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            rng=rng,
            describe=self._describe,
            metrics=self._metrics,
            pace=self.pace,
        )
        self._poll_interval = poll_interval
        self._session = session
        self._api_key = api_key
        self._origin = ApiOrigin(base_url)  # where the key may go, and only there
        self._model = model
        self._policy = policy

    def __repr__(self) -> str:
        key = "<hidden>" if self._api_key else "<none>"
        return f"SegmindClient(base_url={self.display_url!r}, model={self._model!r}, api_key={key})"

    __str__ = __repr__

    @property
    def base_url(self) -> str:
        return self._origin.base

    @property
    def poll_interval(self) -> float:
        """The densest gap between a job's status polls (``POLL_INTERVAL_SECONDS``)."""
        return self._poll_interval

    @property
    def display_url(self) -> str:
        """The base URL as logs and the doctor show it: without a proxy's user and password."""
        return self._origin.display

    @property
    def model(self) -> str:
        return self._model

    # --- submit -----------------------------------------------------------------------

    async def submit(self, request: VideoRequest) -> Submission:
        """Send one job to Segmind, once; whether and when to send it again is the caller's.

        ``SegmindRateLimited`` (with Segmind's ``retry_after``) and ``SegmindUnavailable``
        prove it was not accepted; ``SubmitOutcomeUnknown`` means it may have been.
        """
        url = self._origin.submit_url(self._model)
        try:
            submission = await self._submit_once(url, request.to_payload())
        except (SegmindRateLimited, SegmindUnavailable) as exc:
            log.info("segmind submit not accepted error=%s", exc.detail)
            raise
        log.info("segmind submitted request_id=%s", submission.request_id)
        self._warn_foreign_links(submission)
        return submission

    async def _submit_once(self, url: str, payload: dict[str, Any]) -> Submission:
        try:
            answer = await self._call("POST", url, json_body=payload)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The connection never opened: not one byte of the request was sent.
            raise SegmindUnavailable(
                detail=f"submit: could not connect: {self._describe(exc)}"
            ) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            # Sent, then the answer was lost: Segmind may have started (and billed) the job.
            raise SubmitOutcomeUnknown(
                detail=f"submit: answer lost after sending: {self._describe(exc)}"
            ) from exc
        if answer.ok:
            return self._parse_submission(answer)
        if answer.status == TIMEOUT_STATUS:
            # Whoever timed out had the request, and a proxy may have passed it on already.
            raise SubmitOutcomeUnknown(
                detail=f"submit: HTTP 408 after sending: {self._excerpt(answer)}", status=408
            )
        if answer.status in _PROXY_STATUSES or (
            answer.status >= 500 and answer.json_object is None
        ):
            # Gateway errors and HTML error pages come from proxies, which may have passed
            # the submit on before failing; only Segmind's own JSON 500 proves a refusal.
            raise SubmitOutcomeUnknown(
                detail=f"submit: HTTP {answer.status} from a proxy: {self._excerpt(answer)}",
                status=answer.status,
            )
        raise self._http_error(answer, "submit")

    def _parse_submission(self, answer: Answer) -> Submission:
        data = answer.json_object
        if data is None:
            raise SegmindMalformedResponse(
                detail=f"submit: HTTP {answer.status} body is not a JSON object: "
                f"{self._excerpt(answer)}",
                status=answer.status,
            )
        fields = {name: data.get(name) for name in ("request_id", "status_url", "response_url")}
        request_id = fields["request_id"]
        if isinstance(request_id, int) and not isinstance(request_id, bool):
            fields["request_id"] = str(request_id)  # an id is an id, whatever JSON type it has
        missing = sorted(
            name for name, value in fields.items() if not isinstance(value, str) or not value
        )
        if missing:
            # The job may have started: the operator needs its id to find it at Segmind.
            raise SegmindMalformedResponse(
                detail=f"submit: HTTP {answer.status} without {', '.join(missing)}; "
                f"request_id={self._shown_id(fields['request_id'])} keys={sorted(data)[:20]}",
                status=answer.status,
            )
        return Submission(
            str(fields["request_id"]), str(fields["status_url"]), str(fields["response_url"])
        )

    def _shown_id(self, request_id: Any) -> str:
        """A request id as the operator may read it: short, printable, without the key."""
        if request_id is None or isinstance(request_id, (dict, list)):
            return "(none)"
        return cut(self._scrub(clean_text(str(request_id))), 100) or "(empty)"

    def _warn_foreign_links(self, submission: Submission) -> None:
        for name in ("status_url", "response_url"):
            if not self._origin.holds(getattr(submission, name)):
                log.warning(
                    "segmind request_id=%s %s points to another origin; using %s instead",
                    submission.request_id,
                    name,
                    self.base_url,
                )

    # --- status and result --------------------------------------------------------------

    async def status(self, submission: Submission) -> SegmindStatus:
        """Ask Segmind once where a job is; FAILED comes back as a status, not an error."""
        url = self._origin.status_url(submission)
        answer = await self._get(url, "status", submission)
        self._metrics.polled()  # answered; a request that got no answer is an error
        failed = failed_body(answer)
        if failed is not None:
            return SegmindStatus(SegmindState.FAILED, self._failure_text(failed))
        if answer.ok:
            return SegmindStatus(self._parse_state(answer, submission))
        raise self._poll_error(answer, "status", submission)

    async def result(self, submission: Submission) -> VideoResult:
        """Fetch a finished job's body once and find the video URL in its ``output``."""
        url = self._origin.result_url(submission)
        answer = await self._get(url, "result", submission)
        failed = failed_body(answer)
        if failed is not None:
            text = self._failure_text(failed) or ""
            raise GenerationFailed(
                text, detail=f"request_id={submission.request_id} FAILED: {text}"
            )
        if not answer.ok:
            raise self._poll_error(answer, "result", submission)
        data = answer.json_object
        if data is None:
            raise self._malformed(answer, "result", submission, "body is not a JSON object")
        state = state_text(data)
        if state in NOT_READY_STATES:
            raise SegmindResultNotReady(
                detail=f"result request_id={submission.request_id} still says {state}",
                status=answer.status,
            )
        if state is not None and state != SegmindState.COMPLETED.value:
            raise self._malformed(answer, "result", submission, "is not a completed job")
        video_url = find_video_url(data.get("output"))
        if video_url is None:
            kind = type(data.get("output")).__name__
            raise self._malformed(
                answer, "result", submission, f"output ({kind}) holds no http(s) URL"
            )
        metrics = data.get("metrics")
        return VideoResult(video_url, dict(metrics) if isinstance(metrics, dict) else {})

    def _parse_state(self, answer: Answer, submission: Submission) -> SegmindState:
        data = answer.json_object
        if data is None:
            raise self._malformed(answer, "status", submission, "body is not a JSON object")
        state = state_text(data)
        try:
            return SegmindState(state)
        except ValueError:
            raise self._malformed(answer, "status", submission, "has no known state") from None

    def _poll_error(self, answer: Answer, what: str, submission: Submission) -> SegmindError:
        if answer.status == 404:
            # The id came from Segmind, so a 404 means it forgot the job (one hour after).
            return SegmindRequestExpired(
                detail=f"{what}: request_id={submission.request_id} unknown or expired (HTTP 404)",
                status=404,
            )
        return self._http_error(answer, what, submission)

    # --- polling ----------------------------------------------------------------------

    async def poll_until_done(
        self,
        submission: Submission,
        *,
        deadline: float,
        on_state: Callable[[SegmindState], Awaitable[None]] | None = None,
        schedule: PollSchedule | None = None,
    ) -> VideoResult:
        """Poll until the job ends, when ``schedule`` says, and return its result or raise.

        Without a schedule, polls start at ``poll_interval`` and grow to ``max_poll_interval``.

        ``deadline`` is a ``clock.monotonic()`` value. Transient trouble (5xx, timeouts,
        lost connections, 429, a few malformed bodies or 404s) is retried until then; the
        last look happens at the deadline itself, then ``DeadlineExceeded``. A COMPLETED
        job is paid for, so its result gets ``result_grace`` more, even past the deadline.
        """
        return await self._poller.until_done(
            submission,
            status=lambda: self.status(submission),
            result=lambda: self.result(submission),
            deadline=deadline,
            on_state=on_state,
            schedule=schedule,
        )

    # --- HTTP plumbing ------------------------------------------------------------------

    async def _get(self, url: str, what: str, submission: Submission) -> Answer:
        try:
            return await self._call("GET", url)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SegmindUnavailable(
                detail=f"{what}: request_id={submission.request_id}: {self._describe(exc)}"
            ) from exc

    async def _call(self, method: str, url: str, *, json_body: Any = None) -> Answer:
        """One keyed request to the API origin; redirects are not followed, so the key stays."""
        try:
            answer = await self._send(method, url, json_body)
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors too
            self._metrics.error("segmind", "timeout")
            raise
        except aiohttp.ClientError:
            self._metrics.error("segmind", "connection")
            raise
        if answer.status >= 400:
            self._metrics.error("segmind", answer.status)
        return answer

    async def _send(self, method: str, url: str, json_body: Any) -> Answer:
        headers = {API_KEY_HEADER: self._api_key} if self._api_key else {}
        async with self._session.request(
            method,
            url,
            json=json_body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(
                total=self._policy.request_timeout,
                connect=min(self._policy.connect_timeout, self._policy.request_timeout),
            ),
        ) as resp:
            limit = _MAX_API_BODY if 200 <= resp.status < 300 else MAX_ERROR_BODY
            body = await read_capped(resp, limit)
            return Answer(resp.status, resp.headers, body, parse_json(body))

    # --- errors -----------------------------------------------------------------------

    def _http_error(
        self, answer: Answer, what: str, submission: Submission | None = None
    ) -> SegmindError:
        """The typed error for a non-2xx answer that no caller handled more precisely."""
        where = what if submission is None else f"{what} request_id={submission.request_id}"
        return error_for_status(answer, where, self._error_text(answer), self._clock)

    def _malformed(
        self, answer: Answer, what: str, submission: Submission, problem: str
    ) -> SegmindMalformedResponse:
        return SegmindMalformedResponse(
            detail=f"{what} request_id={submission.request_id}: HTTP {answer.status} {problem}: "
            f"{self._excerpt(answer)}",
            status=answer.status,
        )

    def _failure_text(self, data: dict[str, Any]) -> str | None:
        """Segmind's reason for a FAILED job, scrubbed of the key."""
        text = failure_text(data)
        return None if text is None else self._scrub(text)

    def _error_text(self, answer: Answer) -> str:
        """Segmind's ``error`` text when the body has one, else a short excerpt of the body."""
        text = error_field(answer)
        if text is not None:
            return self._scrub(text)[:EXCERPT_CHARS]
        return self._excerpt(answer)

    def _excerpt(self, answer: Answer) -> str:
        return self._body_excerpt(answer.body)

    def _body_excerpt(self, body: bytes) -> str:
        # Scrub the whole text before cutting it: a cut through the key would leave a
        # prefix of it that no longer matches the key.
        return cut(self._scrub(body_text(body))) or "(empty body)"

    def _describe(self, exc: BaseException) -> str:
        return cut(self._scrub(f"{type(exc).__name__}: {exc}"))

    def _scrub(self, text: str) -> str:
        """Remove the key from text that came from outside (a server may echo it back).

        A body read up to a size cap may end in the middle of the key: that tail goes too.
        """
        key = self._api_key
        if not key:
            return text
        text = text.replace(key, "[redacted]")
        for length in range(len(key) - 1, _MIN_KEY_FRAGMENT - 1, -1):
            if text.endswith(key[:length]):
                return text[:-length] + "[redacted]"
        return text
