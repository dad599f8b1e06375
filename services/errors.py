"""Typed errors that carry a message safe to show a member.

Every exception a service raises on purpose derives from ``BotError``. Its
``user_message`` is written for the person in Discord; ``detail`` is for the
operator's log. Neither may ever contain a token or key: the Segmind client
builds them from Segmind's answer body, never from its own request headers.
"""

from __future__ import annotations


class BotError(Exception):
    """Base for expected failures; ``user_message`` is safe to show a member."""

    user_message: str = "Something went wrong. Please try again later."

    def __init__(self, user_message: str | None = None, *, detail: str | None = None) -> None:
        if user_message is not None:
            self.user_message = user_message
        self.detail = detail or self.user_message
        super().__init__(self.detail)


class ValidationError(BotError):
    """A request or option value out of its allowed range; nothing was changed."""


class ConfigurationError(BotError):
    """The bot's own configuration is wrong (bad key, missing permission...)."""

    user_message = "The bot is misconfigured; the moderators have been told."


# --- admission -------------------------------------------------------------


class RefusedError(BotError):
    """A request refused before anything was submitted (limits, budget, credits).

    ``retry_at`` is the Unix time when trying again makes sense, if known; the
    cog renders it as a Discord relative timestamp.
    """

    def __init__(
        self, user_message: str, *, retry_at: float | None = None, detail: str | None = None
    ) -> None:
        super().__init__(user_message, detail=detail)
        self.retry_at = retry_at


# --- delivery ----------------------------------------------------------------


class ClipUndeliverable(BotError):
    """No route can ever reach the member with this clip, so the runner stops posting it.

    Raised by a job listener (the Discord messenger's "no route left"), never for an
    outage: anything else a post raises is tried again for as long as the clip is on
    disk. ``user_message`` is what the member is told, wherever that can still be shown.
    """

    user_message = "The video was made but could not be posted here."


# --- Segmind -----------------------------------------------------------------


class SegmindError(BotError):
    """Any failure talking to Segmind. ``status`` is the HTTP status, if any."""

    user_message = "The video service had a problem. Please try again later."

    def __init__(
        self,
        user_message: str | None = None,
        *,
        detail: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(user_message, detail=detail)
        self.status = status


class SegmindBadRequest(SegmindError):
    """400: Segmind refused the parameters or the prompt; its text is shown as is."""


class SegmindAuthError(SegmindError, ConfigurationError):
    """401/403: the API key is missing, wrong, or not allowed to use this model."""

    user_message = ConfigurationError.user_message


class SegmindNotFound(SegmindError):
    """404 on submit: the model or endpoint does not exist (a configuration error)."""

    user_message = ConfigurationError.user_message


class SegmindRequestExpired(SegmindError):
    """A lasting 404 for a known request id, or a dead CDN link: the result is out of reach.

    Segmind forgets results one hour after they finish, but a request can also vanish
    sooner; only the job runner knows the job's age, so it picks ``retention_message``
    for a job older than that hour and keeps this neutral ``user_message`` otherwise.
    """

    user_message = (
        "Segmind no longer knows this request, so the video cannot be fetched. Please try again."
    )
    retention_message = (
        "This video is no longer available: Segmind keeps results for one hour "
        "and this one has expired."
    )


class SegmindInsufficientCredits(SegmindError):
    """406: the Segmind account is out of credits."""

    user_message = (
        "Video generation is paused: the bot's video credits have run out. "
        "The moderators have been told."
    )


class SegmindRateLimited(SegmindError):
    """429: too many requests. ``retry_after`` in seconds when Segmind said so."""

    user_message = "The video service is busy right now. Please try again in a minute."

    def __init__(self, *, retry_after: float | None = None, detail: str | None = None) -> None:
        super().__init__(detail=detail, status=429)
        self.retry_after = retry_after


class SegmindServerError(SegmindError):
    """5xx (or a 408) from Segmind or a proxy in front of it (the body may be HTML).

    ``retry_after`` in seconds when the answer said when to come back (a 503 may).
    """

    def __init__(
        self,
        user_message: str | None = None,
        *,
        detail: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(user_message, detail=detail, status=status)
        self.retry_after = retry_after


class DownloadNotAVideo(SegmindServerError):
    """A 2xx download that is not an MP4 (empty, an error page): likely a CDN hiccup, retried."""


class SegmindUnavailable(SegmindError):
    """The connection failed or timed out; no HTTP answer was read."""


class SegmindMalformedResponse(SegmindError):
    """A 2xx answer whose body is not what the v2 API documents."""


class SegmindUnexpectedError(SegmindError):
    """A failure no code path foresaw while polling (a library's own error type, a bug).

    Polls retry it like a 5xx within their deadline: a job being paid for must not end
    on something that may well pass. ``detail`` names the type and where it was raised.
    """


class SegmindResultNotReady(SegmindError):
    """The result still says QUEUED or PROCESSING after the status said COMPLETED: ask again.

    Segmind's result store can lag behind its status; this is transient, not malformed.
    """


class GenerationFailed(SegmindError):
    """Segmind ran the job and reports FAILED (422); ``user_message`` is Segmind's text."""

    def __init__(self, error_text: str, *, detail: str | None = None) -> None:
        text = " ".join(error_text.split())[:500] or "Segmind reported a failure."
        super().__init__(
            f"Segmind could not make this video. It said: {text}",
            detail=detail or f"FAILED: {text}",
            status=422,
        )
        self.error_text = text


class SubmitOutcomeUnknown(SegmindError):
    """The submit was sent but its answer was lost: it may or may not have been accepted.

    Never resubmitted automatically, so a member is never billed twice.
    """

    user_message = (
        "The video service stopped answering while your request was being sent, so it "
        "is unknown whether it started. To avoid charging twice it was not resent; "
        "please try again."
    )


class DeadlineExceeded(SegmindError):
    """The job did not finish within the configured overall deadline."""

    user_message = "The video took too long to generate and was abandoned. Please try again."


class DownloadTooLarge(SegmindError):
    """The finished video is larger than the bot is willing to download."""

    user_message = "The finished video is too large to fetch."


class ClipStorageError(BotError):
    """The clip could not be written to local disk (full, read-only): the operator's to fix.

    Not the member's fault and not final: Segmind keeps the result for an hour, so the
    download is tried again.
    """

    user_message = "The video was made, but the bot could not store it. Please try again."
