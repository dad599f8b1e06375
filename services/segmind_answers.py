"""Reading Segmind's answers: states, the video's URL, failure texts, waits, typed errors.

Pure functions of an answer already received; the keyed requests that fetch them, and the
scrubbing of the key from any text taken out of them, stay in ``services.segmind``. Texts
returned here come from outside: the client scrubs them before they go anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from yarl import URL

from services.clock import Clock
from services.errors import (
    SegmindAuthError,
    SegmindBadRequest,
    SegmindError,
    SegmindInsufficientCredits,
    SegmindNotFound,
    SegmindRateLimited,
    SegmindServerError,
)
from services.http_text import clean_text, is_http_url
from services.models import SegmindState

TIMEOUT_STATUS = 408  # a server or proxy gave up waiting: transient, but after a send
NOT_READY_STATES = frozenset({SegmindState.QUEUED.value, SegmindState.PROCESSING.value})
_OUTPUT_URL_KEYS = ("video", "video_url", "url", "output")
_VIDEO_SUFFIXES = (".mp4", ".webm", ".mov")
_MAX_OUTPUT_DEPTH = 3


@dataclass(frozen=True, slots=True)
class Answer:
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


# --- states and output ----------------------------------------------------------------


def failed_body(answer: Answer) -> dict[str, Any] | None:
    """The body of a FAILED job: Segmind serves it as HTTP 422, the state still in the body."""
    data = answer.json_object
    if data is not None and answer.status < 500 and state_text(data) == SegmindState.FAILED.value:
        return data
    return None


def state_text(data: Mapping[str, Any]) -> str | None:
    state = data.get("status")
    return state.strip().upper() if isinstance(state, str) else None


def find_video_url(output: Any) -> str | None:
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
        if is_http_url(candidate):
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


# --- texts ------------------------------------------------------------------------------


def failure_text(data: Mapping[str, Any]) -> str | None:
    """Segmind's reason for a FAILED job, wherever in the body it put it (not yet scrubbed)."""
    error = data.get("error")
    candidates = [error]
    if isinstance(error, dict):
        candidates += [error.get("message"), error.get("detail")]
    candidates += [data.get("message"), data.get("detail")]
    for text in candidates:
        if isinstance(text, str) and text.strip():
            return clean_text(text)
    return None


def error_field(answer: Answer) -> str | None:
    """Segmind's ``error`` text when the body has one (not yet scrubbed), else None."""
    data = answer.json_object
    if data is not None:
        for key in ("error", "message", "detail"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return clean_text(value)
    return None


# --- errors and waits -----------------------------------------------------------------


def error_for_status(answer: Answer, where: str, text: str, clock: Clock) -> SegmindError:
    """The typed error for a non-2xx answer; ``text`` is its reason, already scrubbed."""
    status = answer.status
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
        return SegmindRateLimited(retry_after=retry_after(answer.headers, clock), detail=detail)
    if status >= 500 or status == TIMEOUT_STATUS:
        # Transient on a poll; the submit path turns these into SubmitOutcomeUnknown first.
        return SegmindServerError(
            detail=detail, status=status, retry_after=retry_after(answer.headers, clock)
        )
    if 300 <= status < 400:
        detail += " (redirects are not followed with the key; check SEGMIND_BASE_URL)"
    return SegmindError(detail=detail, status=status)


def retry_after(headers: Mapping[str, str], clock: Clock) -> float | None:
    """Seconds to wait from ``Retry-After`` or ``x-rate-limit-reset-at-utc``, if they parse."""
    value = headers.get("Retry-After")
    if value is not None:
        seconds = _parse_seconds(value)
        if seconds is not None:
            return seconds
        moment = _parse_moment(value)
        if moment is not None:
            return max(0.0, moment - clock.time())
    reset_at = headers.get("x-rate-limit-reset-at-utc")
    if reset_at is not None:
        moment = _parse_moment(reset_at)
        if moment is not None:
            return max(0.0, moment - clock.time())
    return None


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
