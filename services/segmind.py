"""Asynchronous Segmind v2 client: submit at most once, poll politely, fetch the MP4 safely.

Every failure is one of the typed errors in ``services.errors``. Three rules shape the code:

* A submit is sent again only when the answer proves it was not accepted (429, or a
  connection that failed before anything was sent). Anything ambiguous raises
  ``SubmitOutcomeUnknown``, so a member is never billed twice. The job runner does
  those waits itself (``attempts=1``), where a cancel can still stop them.
* The API key goes only to the configured base URL's origin, in ``x-api-key``. Links in
  Segmind's answers that point elsewhere are replaced by the documented paths, keyed
  requests never follow redirects, and the CDN download never carries the key.
* The key never appears in an exception, a log line or a repr: texts taken from answers
  are cut short, stripped of markup and scrubbed of the key.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import random
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from services.clock import Clock, SystemClock
from services.errors import (
    DeadlineExceeded,
    DownloadNotAVideo,
    DownloadTooLarge,
    GenerationFailed,
    SegmindAuthError,
    SegmindBadRequest,
    SegmindError,
    SegmindInsufficientCredits,
    SegmindMalformedResponse,
    SegmindNotFound,
    SegmindRateLimited,
    SegmindRequestExpired,
    SegmindResultNotReady,
    SegmindServerError,
    SegmindUnavailable,
    SubmitOutcomeUnknown,
)
from services.models import (
    MODEL_SLUG,
    SegmindState,
    SegmindStatus,
    Submission,
    VideoRequest,
    VideoResult,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

API_KEY_HEADER = "x-api-key"
_MAX_API_BODY = 1024 * 1024  # API answers are small JSON; a runaway proxy page must not be
_MAX_ERROR_BODY = 64 * 1024  # an error page is only read for an excerpt
_EXCERPT_CHARS = 300
_DOWNLOAD_CHUNK = 64 * 1024
_MALFORMED_RETRIES = 3  # a garbled body may be a proxy hiccup; a persistent one is a bug
# A 404 seconds after submit may be a status store lagging behind; a lasting one is final.
_NOT_FOUND_RETRIES = 2
_MIN_KEY_FRAGMENT = 6  # a cut-off tail of the key this long is still scrubbed
_POLL_GROWTH = 1.25  # each quiet poll waits a quarter longer, up to max_poll_interval
_PROXY_STATUSES = frozenset({502, 503, 504})  # a proxy may have passed the submit on
_TIMEOUT_STATUS = 408  # a server or proxy gave up waiting: transient, but after a send
_EXPIRED_DOWNLOAD_STATUSES = frozenset({403, 404, 410})  # how CDNs answer an expired link
_OUTPUT_URL_KEYS = ("video", "video_url", "url", "output")
_VIDEO_SUFFIXES = (".mp4", ".webm", ".mov")
_MAX_OUTPUT_DEPTH = 3
_NOT_READY_STATES = frozenset({SegmindState.QUEUED.value, SegmindState.PROCESSING.value})
# Content types no video is served as: a CDN or proxy error page with a 200.
_NOT_VIDEO_TYPES = ("text/", "application/json")
# The box types an MP4 (ISO-BMFF / QuickTime) may open with; bytes 4..8 of the file.
_MP4_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})
_BOX_HEADER = 8

_SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry; the defaults suit Segmind's documented limits."""

    base_delay: float = 1.0  # first backoff, doubled each time, full jitter
    max_delay: float = 30.0
    submit_attempts: int = 5  # only for answers that PROVE the submit was not accepted
    request_timeout: float = 30.0  # per HTTP call (aiohttp.ClientTimeout total)
    # Opening the connection gets its own, shorter limit: a connect that times out has sent
    # nothing, so a submit is safely retried instead of ending with an unknown outcome.
    connect_timeout: float = 10.0
    # A COMPLETED job is paid for: its result may take this long past the deadline to fetch.
    result_grace: float = 300.0


@dataclass(frozen=True, slots=True)
class _Answer:
    """An HTTP answer read in full (capped), with its body parsed when it is JSON."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    data: Any  # the parsed JSON, or None when the body is not JSON

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def json_object(self) -> dict[str, Any] | None:
        return self.data if isinstance(self.data, dict) else None


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
    ) -> None:
        if policy.submit_attempts < 1:
            raise ValueError("RetryPolicy.submit_attempts must be at least 1")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self._session = session
        self._api_key = api_key
        self._base = _api_root(base_url)
        self._origin = _origin_of(self._base)
        self._model = model
        self._clock: Clock = clock or SystemClock()
        self._policy = policy
        self._poll_interval = poll_interval
        # A configured poll interval above the cap wins: the operator asked for calm.
        self._max_poll_interval = max(max_poll_interval, poll_interval)
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        key = "<hidden>" if self._api_key else "<none>"
        return f"SegmindClient(base_url={str(self._base)!r}, model={self._model!r}, api_key={key})"

    __str__ = __repr__

    @property
    def base_url(self) -> str:
        return str(self._base)

    @property
    def model(self) -> str:
        return self._model

    # --- submit -----------------------------------------------------------------------

    async def submit(self, request: VideoRequest, *, attempts: int | None = None) -> Submission:
        """Submit one job; resend only when Segmind surely did not accept it.

        ``attempts`` (default: the policy's) bounds the sends; with 1 every wait is the
        caller's, which raises ``SegmindRateLimited`` or ``SegmindUnavailable`` at once.
        """
        attempts = self._policy.submit_attempts if attempts is None else attempts
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        url = f"{self._base}/v2/{quote(self._model, safe='')}"
        payload = request.to_payload()
        for attempt in range(1, attempts + 1):
            try:
                submission = await self._submit_once(url, payload)
            except (SegmindRateLimited, SegmindUnavailable) as exc:
                # Both prove the job was not accepted, so sending it again cannot bill twice.
                delay = self._retry_delay(exc, attempt)
                if attempt == attempts or delay > self._policy.max_delay:
                    # A long Retry-After is the caller's to wait (it holds retry_after),
                    # not something to sit on inside one call.
                    log.info("segmind submit not accepted attempt=%d error=%s", attempt, exc.detail)
                    raise
                log.info(
                    "segmind submit not accepted attempt=%d/%d retry_in=%.2fs error=%s",
                    attempt,
                    attempts,
                    delay,
                    exc.detail,
                )
                await self._clock.sleep(delay)
            else:
                log.info("segmind submitted request_id=%s", submission.request_id)
                self._warn_foreign_links(submission)
                return submission
        raise AssertionError("unreachable: the last attempt returns or raises")

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
        if answer.status == _TIMEOUT_STATUS:
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

    def _parse_submission(self, answer: _Answer) -> Submission:
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
        return Submission(**fields)

    def _shown_id(self, request_id: Any) -> str:
        """A request id as the operator may read it: short, printable, without the key."""
        if request_id is None or isinstance(request_id, (dict, list)):
            return "(none)"
        return self._cut(self._scrub(_clean_text(str(request_id))), 100) or "(empty)"

    def _warn_foreign_links(self, submission: Submission) -> None:
        for name in ("status_url", "response_url"):
            if not self._same_origin(getattr(submission, name)):
                log.warning(
                    "segmind request_id=%s %s points to another origin; using %s instead",
                    submission.request_id,
                    name,
                    self.base_url,
                )

    # --- status and result --------------------------------------------------------------

    async def status(self, submission: Submission) -> SegmindStatus:
        """Ask Segmind once where a job is; FAILED comes back as a status, not an error."""
        url = self._status_url(submission)
        answer = await self._get(url, "status", submission)
        failed = _failed_body(answer)
        if failed is not None:
            return SegmindStatus(SegmindState.FAILED, self._failure_text(failed))
        if answer.ok:
            return SegmindStatus(self._parse_state(answer, submission))
        raise self._poll_error(answer, "status", submission)

    async def result(self, submission: Submission) -> VideoResult:
        """Fetch a finished job's body once and find the video URL in its ``output``."""
        url = self._result_url(submission)
        answer = await self._get(url, "result", submission)
        failed = _failed_body(answer)
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
        state = _state_text(data)
        if state in _NOT_READY_STATES:
            raise SegmindResultNotReady(
                detail=f"result request_id={submission.request_id} still says {state}",
                status=answer.status,
            )
        if state is not None and state != SegmindState.COMPLETED.value:
            raise self._malformed(answer, "result", submission, "is not a completed job")
        video_url = _find_video_url(data.get("output"))
        if video_url is None:
            kind = type(data.get("output")).__name__
            raise self._malformed(
                answer, "result", submission, f"output ({kind}) holds no http(s) URL"
            )
        metrics = data.get("metrics")
        return VideoResult(video_url, dict(metrics) if isinstance(metrics, dict) else {})

    def _parse_state(self, answer: _Answer, submission: Submission) -> SegmindState:
        data = answer.json_object
        if data is None:
            raise self._malformed(answer, "status", submission, "body is not a JSON object")
        state = _state_text(data)
        try:
            return SegmindState(state)
        except ValueError:
            raise self._malformed(answer, "status", submission, "has no known state") from None

    def _poll_error(self, answer: _Answer, what: str, submission: Submission) -> SegmindError:
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
    ) -> VideoResult:
        """Poll until the job ends, back off calmly, and return its result or raise.

        ``deadline`` is a ``clock.monotonic()`` value. Transient trouble (5xx, timeouts,
        lost connections, 429, a few malformed bodies or 404s) is retried until then; the
        last look happens at the deadline itself, then ``DeadlineExceeded``. A COMPLETED
        job is paid for, so its result gets ``result_grace`` more, even past the deadline.
        """
        interval = self._poll_interval
        last_state: SegmindState | None = None
        while True:
            status = await self._retrying(lambda: self.status(submission), submission, deadline)
            if status.state is not last_state:
                last_state = status.state
                log.info(
                    "segmind request_id=%s state=%s", submission.request_id, status.state.value
                )
                await self._notify(on_state, status.state, submission)
            if status.state is SegmindState.COMPLETED:
                grace = max(deadline, self._clock.monotonic() + self._policy.result_grace)
                return await self._retrying(
                    lambda: self.result(submission), submission, grace, finished=True
                )
            if status.state is SegmindState.FAILED:
                text = status.error or ""
                raise GenerationFailed(
                    text, detail=f"request_id={submission.request_id} FAILED: {text}"
                )
            await self._sleep_within(interval, deadline, submission)
            interval = min(interval * _POLL_GROWTH, self._max_poll_interval)

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

    def _retry_delay(self, error: SegmindError, attempt: int) -> float:
        """Segmind's own Retry-After when it gave one, else exponential backoff, full jitter."""
        retry_after = (
            error.retry_after
            if isinstance(error, (SegmindRateLimited, SegmindServerError))
            else None
        )
        if retry_after is not None:
            # A floor: "Retry-After: 0" or a reset time already past (clock skew) must not
            # turn polling into a tight loop.
            return max(retry_after, self._policy.base_delay)
        # The exponent is capped: a long grace of quick retries must not overflow a float.
        cap = min(self._policy.max_delay, self._policy.base_delay * 2 ** min(attempt - 1, 32))
        return self._rng.uniform(0, cap)

    # --- download ---------------------------------------------------------------------

    async def download(
        self, url: str, dest: pathlib.Path, *, max_bytes: int, timeout: float = 120.0
    ) -> int:
        """Stream the MP4 to ``dest`` atomically, within a size cap; return the bytes written.

        The URL is a CDN link: it gets no API key. A partial file never stays behind.
        """
        if not _is_http_url(url):
            raise SegmindMalformedResponse(detail="download: the video URL is not http(s)")
        dest = pathlib.Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Same directory, so the final rename is atomic and a reader never sees half a file.
        fd, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        temp = pathlib.Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                written = await self._stream(url, out, max_bytes=max_bytes, timeout=timeout)
            os.replace(temp, dest)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        log.info("segmind downloaded bytes=%d to=%s", written, dest.name)
        return written

    async def _stream(self, url: str, out: BinaryIO, *, max_bytes: int, timeout: float) -> int:
        shown = _without_query(url)  # CDN links may be signed: keep the signature out of logs
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                if not 200 <= resp.status < 300:
                    body = await _read_capped(resp, _MAX_ERROR_BODY)
                    raise self._download_error(resp.status, body, shown)
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise DownloadTooLarge(
                        detail=f"download: {resp.content_length} bytes announced, cap {max_bytes}"
                    )
                _refuse_non_video_type(resp, shown)
                written = 0
                head = b""
                async for chunk in resp.content.iter_chunked(_DOWNLOAD_CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        raise DownloadTooLarge(detail=f"download: over the {max_bytes}-byte cap")
                    if len(head) < _BOX_HEADER:
                        head += chunk[: _BOX_HEADER - len(head)]
                        if len(head) == _BOX_HEADER:
                            _refuse_non_mp4(head, resp.status, shown)  # before reading on
                    # Plain file writes: 64 KiB to local disk takes microseconds.
                    out.write(chunk)
                if len(head) < _BOX_HEADER:
                    _refuse_non_mp4(head, resp.status, shown)
                return written
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SegmindUnavailable(
                detail=f"download {shown} failed: {self._describe(exc)}"
            ) from exc

    def _download_error(self, status: int, body: bytes, shown_url: str) -> SegmindError:
        excerpt = self._body_excerpt(body)
        detail = f"download {shown_url}: HTTP {status}: {excerpt}"
        if status in _EXPIRED_DOWNLOAD_STATUSES:
            return SegmindRequestExpired(detail=detail, status=status)
        return SegmindServerError(detail=detail, status=status)

    # --- HTTP plumbing ------------------------------------------------------------------

    async def _get(self, url: str, what: str, submission: Submission) -> _Answer:
        try:
            return await self._call("GET", url)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SegmindUnavailable(
                detail=f"{what}: request_id={submission.request_id}: {self._describe(exc)}"
            ) from exc

    async def _call(self, method: str, url: str, *, json_body: Any = None) -> _Answer:
        """One keyed request to the API origin; redirects are not followed, so the key stays."""
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
            limit = _MAX_API_BODY if 200 <= resp.status < 300 else _MAX_ERROR_BODY
            body = await _read_capped(resp, limit)
            return _Answer(resp.status, resp.headers, body, _parse_json(body))

    def _status_url(self, submission: Submission) -> str:
        fallback = f"{self._base}/v2/requests/{quote(submission.request_id, safe='')}/status"
        return self._own_url(submission.status_url, fallback)

    def _result_url(self, submission: Submission) -> str:
        fallback = f"{self._base}/v2/requests/{quote(submission.request_id, safe='')}"
        return self._own_url(submission.response_url, fallback)

    def _own_url(self, given: str, fallback: str) -> str:
        """``given`` when it is on the API origin (the key may go there), else ``fallback``."""
        resolved = self._resolve_own(given)
        if resolved is None:
            log.debug("segmind link to another origin ignored; using the documented path")
            return fallback
        return resolved

    def _resolve_own(self, url: str) -> str | None:
        try:
            resolved = self._base.join(URL(url))
        except (ValueError, TypeError):
            return None
        if _origin_of(resolved) != self._origin or resolved.path in ("", "/"):
            return None
        return str(resolved)

    def _same_origin(self, url: str) -> bool:
        return self._resolve_own(url) is not None

    # --- errors -----------------------------------------------------------------------

    def _http_error(
        self, answer: _Answer, what: str, submission: Submission | None = None
    ) -> SegmindError:
        """The typed error for a non-2xx answer that no caller handled more precisely."""
        status = answer.status
        where = what if submission is None else f"{what} request_id={submission.request_id}"
        text = self._error_text(answer)
        detail = f"{where}: HTTP {status}: {text or '(empty body)'}"
        if status in (400, 422):
            message = f"Segmind refused this request: {text}" if text else None
            return SegmindBadRequest(message, detail=detail, status=status)
        if status in (401, 403):
            return SegmindAuthError(detail=detail, status=status)
        if status == 404:
            return SegmindNotFound(detail=detail, status=status)
        if status == 406:
            return SegmindInsufficientCredits(detail=detail, status=status)
        if status == 429:
            return SegmindRateLimited(retry_after=self._retry_after(answer.headers), detail=detail)
        if status >= 500 or status == _TIMEOUT_STATUS:
            # Transient on a poll; the submit path turns these into SubmitOutcomeUnknown first.
            return SegmindServerError(
                detail=detail, status=status, retry_after=self._retry_after(answer.headers)
            )
        if 300 <= status < 400:
            detail += " (redirects are not followed with the key; check SEGMIND_BASE_URL)"
        return SegmindError(detail=detail, status=status)

    def _malformed(
        self, answer: _Answer, what: str, submission: Submission, problem: str
    ) -> SegmindMalformedResponse:
        return SegmindMalformedResponse(
            detail=f"{what} request_id={submission.request_id}: HTTP {answer.status} {problem}: "
            f"{self._excerpt(answer)}",
            status=answer.status,
        )

    def _retry_after(self, headers: Mapping[str, str]) -> float | None:
        """Seconds to wait from ``Retry-After`` or ``x-rate-limit-reset-at-utc``, if they parse."""
        retry_after = headers.get("Retry-After")
        if retry_after is not None:
            seconds = _parse_seconds(retry_after)
            if seconds is not None:
                return seconds
            moment = _parse_moment(retry_after)
            if moment is not None:
                return max(0.0, moment - self._clock.time())
        reset_at = headers.get("x-rate-limit-reset-at-utc")
        if reset_at is not None:
            moment = _parse_moment(reset_at)
            if moment is not None:
                return max(0.0, moment - self._clock.time())
        return None

    def _failure_text(self, data: Mapping[str, Any]) -> str | None:
        """Segmind's reason for a FAILED job, wherever in the body it put it."""
        error = data.get("error")
        candidates = [error]
        if isinstance(error, dict):
            candidates += [error.get("message"), error.get("detail")]
        candidates += [data.get("message"), data.get("detail")]
        for text in candidates:
            if isinstance(text, str) and text.strip():
                return self._scrub(_clean_text(text))
        return None

    def _error_text(self, answer: _Answer) -> str:
        """Segmind's ``error`` text when the body has one, else a short excerpt of the body."""
        data = answer.json_object
        if data is not None:
            for key in ("error", "message", "detail"):
                value = data.get(key)
                if isinstance(value, str) and value.strip():
                    return self._scrub(_clean_text(value))[:_EXCERPT_CHARS]
        return self._excerpt(answer)

    def _excerpt(self, answer: _Answer) -> str:
        return self._body_excerpt(answer.body)

    def _body_excerpt(self, body: bytes) -> str:
        # Scrub the whole text before cutting it: a cut through the key would leave a
        # prefix of it that no longer matches the key.
        text = _clean_text(body[:_MAX_ERROR_BODY].decode("utf-8", errors="replace"))
        return self._cut(self._scrub(text)) or "(empty body)"

    def _describe(self, exc: BaseException) -> str:
        return self._cut(self._scrub(f"{type(exc).__name__}: {exc}"))

    @staticmethod
    def _cut(text: str, limit: int = _EXCERPT_CHARS) -> str:
        return text[: limit - 1] + "…" if len(text) > limit else text

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


# --- helpers ------------------------------------------------------------------------------


def _api_root(base_url: str) -> URL:
    """The base URL without a trailing slash or version segment (``/v1`` as in Segmind's docs)."""
    text = base_url.strip().rstrip("/")
    if text.endswith(("/v1", "/v2")):
        text = text[:-3]
    url = URL(text)
    if url.scheme not in ("http", "https") or not url.host or url.query_string or url.fragment:
        raise ValueError("base_url must be an absolute http(s) URL without query or fragment")
    return url


def _origin_of(url: URL) -> tuple[str, str, int | None]:
    """Scheme, host and effective port: what decides where the key may be sent."""
    return (url.scheme.lower(), (url.host or "").lower(), url.port)


def _failed_body(answer: _Answer) -> dict[str, Any] | None:
    """The body of a FAILED job: Segmind serves it as HTTP 422, the state still in the body."""
    data = answer.json_object
    if data is not None and answer.status < 500 and _state_text(data) == SegmindState.FAILED.value:
        return data
    return None


def _state_text(data: Mapping[str, Any]) -> str | None:
    state = data.get("status")
    return state.strip().upper() if isinstance(state, str) else None


def _find_video_url(output: Any) -> str | None:
    """The video's URL in ``output``: a string, a list of them, or an object holding one.

    ``output`` may also list a thumbnail or a poster first, so a URL that looks like a
    video (by its extension, or the key it came under) wins over the first one found.
    """
    urls = list(_http_urls(output))
    for url, under_video_key in urls:
        if under_video_key or _looks_like_video(url):
            return url
    return urls[0][0] if urls else None


def _http_urls(
    value: Any, depth: int = 0, under_video_key: bool = False
) -> Iterator[tuple[str, bool]]:
    """Every http(s) URL in ``value``, in order, with whether a key naming 'video' led to it."""
    if isinstance(value, str):
        candidate = value.strip()
        if _is_http_url(candidate):
            yield candidate, under_video_key
        return
    if depth >= _MAX_OUTPUT_DEPTH:
        return
    if isinstance(value, list):
        for item in value:
            yield from _http_urls(item, depth + 1, under_video_key)
    elif isinstance(value, dict):
        keys = [key for key in _OUTPUT_URL_KEYS if key in value]
        keys += [key for key in value if key not in _OUTPUT_URL_KEYS]
        for key in keys:
            named_video = isinstance(key, str) and "video" in key.lower()
            yield from _http_urls(value[key], depth + 1, under_video_key or named_video)


def _looks_like_video(url: str) -> bool:
    return URL(url).path.lower().endswith(_VIDEO_SUFFIXES)


def _refuse_non_video_type(resp: aiohttp.ClientResponse, shown_url: str) -> None:
    """An error page served with a 200 (a CDN's or a captive proxy's) is not the clip."""
    content_type = resp.content_type.lower()
    if content_type.startswith(_NOT_VIDEO_TYPES) or content_type.endswith("+json"):
        raise DownloadNotAVideo(
            detail=f"download {shown_url}: HTTP {resp.status} is {content_type}, not a video",
            status=resp.status,
        )


def _refuse_non_mp4(head: bytes, status: int, shown_url: str) -> None:
    """Refuse a body whose first ISO-BMFF box type (bytes 4..8) no MP4 begins with."""
    if not head:
        problem = "is empty"
    elif head[4:_BOX_HEADER] not in _MP4_FIRST_BOXES:
        problem = f"does not start like an MP4 (first bytes {head.hex()})"
    else:
        return
    raise DownloadNotAVideo(detail=f"download {shown_url}: HTTP {status} {problem}", status=status)


def _is_http_url(text: str) -> bool:
    try:
        url = URL(text)
    except (ValueError, TypeError):
        return False
    return url.scheme in ("http", "https") and bool(url.host)


def _without_query(url: str) -> str:
    try:
        return str(URL(url).with_query(None).with_fragment(None))
    except (ValueError, TypeError):
        return "(invalid URL)"


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read at most ``limit`` bytes of the body; the rest is dropped with the connection."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(16 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _clean_text(text: str) -> str:
    """Printable, single-spaced text without markup, as safe to log as to show."""
    text = _SCRIPT_OR_STYLE.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())


def _parse_seconds(text: str) -> float | None:
    try:
        seconds = float(text.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _parse_moment(text: str) -> float | None:
    """A Unix time from an HTTP date, an ISO 8601 time or Unix seconds (or milliseconds)."""
    text = text.strip()
    seconds = _parse_seconds(text)
    if seconds is not None:
        return seconds / 1000 if seconds > 1e11 else seconds
    moment: datetime | None
    try:
        moment = datetime.fromisoformat(text)  # 3.11 also reads a trailing "Z"
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the header name says UTC
    return moment.timestamp()
