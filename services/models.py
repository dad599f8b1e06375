"""Data that crosses the boundary between services and cogs: small frozen dataclasses."""

from __future__ import annotations

import enum
import hashlib
import json
import secrets
import unicodedata
from dataclasses import InitVar, asdict, dataclass, field, fields
from typing import Any

from services.errors import ValidationError
from services.periods import LimitSpec

MODEL_SLUG = "cog-video-5b-t2v"

PROMPT_MAX = 2000
NEGATIVE_PROMPT_MAX = 2000
INPUT_FRAMES = (16, 60)
STEPS = (25, 50)
GUIDANCE_SCALE = (5.0, 10.0)
SEED = (0, 2**53 - 1)
FRAME_RATE = (8, 10)

DEFAULT_NEGATIVE_PROMPT = "low quality, blurry"
DEFAULT_INPUT_FRAMES = 49
DEFAULT_STEPS = 45
DEFAULT_GUIDANCE_SCALE = 6.0
DEFAULT_FRAME_RATE = 8


def random_seed() -> int:
    """A seed from the full documented range, so a clip can always be reproduced."""
    return secrets.randbelow(SEED[1] + 1)


# What shows on its own: letters, numbers, punctuation and symbols. Everything else
# (controls, format characters, spaces and separators, marks with nothing to sit on,
# unassigned, private-use and surrogate code points) counts as blank: the rule is turned
# this way round so that a character Unicode adds later cannot slip through.
_VISIBLE_CATEGORY_GROUPS = frozenset("LNPS")
# Letters and symbols by category that render as nothing, used to pass "not empty" checks:
# Hangul fillers, the braille blank, the Khitan filler, the musical null notehead, the
# combining grapheme joiner, Khmer inherent vowels and Mongolian variation selectors, and
# the variation selectors.
_INVISIBLE_CHARACTERS = frozenset(
    "\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180b\u180c\u180d\u180f"
    "\U00016fe4\U0001d159"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))
    + "".join(chr(c) for c in range(0xE0100, 0xE01F0))
)


def is_invisible(character: str) -> bool:
    """True for a character that shows nothing on its own (a space, a control, a filler)."""
    return (
        character in _INVISIBLE_CHARACTERS
        or unicodedata.category(character)[0] not in _VISIBLE_CATEGORY_GROUPS
    )


def has_visible_text(text: str) -> bool:
    """Whether ``text`` shows anything: a prompt of zero-width or blank characters does not."""
    return not all(is_invisible(character) for character in text)


def _check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not low <= value <= high:
        shown = (int(low), int(high)) if float(low).is_integer() else (low, high)
        raise ValidationError(f"`{name}` must be between {shown[0]} and {shown[1]} (got {value}).")


@dataclass(frozen=True, slots=True)
class VideoRequest:
    """One text-to-video request, validated; the Segmind payload is derived from it.

    Requests come from the slash command, re-roll buttons, the CLI and restarts, so the
    ranges are checked here and not only by Discord's option limits. A prompt must show
    something: one of only invisible characters would be billed for a clip of nothing.
    ``stored`` (``from_payload`` only) skips that one rule for requests admitted before it.
    """

    prompt: str
    seed: int
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    input_frames: int = DEFAULT_INPUT_FRAMES
    steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE
    frame_rate: int = DEFAULT_FRAME_RATE
    stored: InitVar[bool] = False

    def __post_init__(self, stored: bool) -> None:
        prompt = self.prompt.strip() if isinstance(self.prompt, str) else ""
        if not prompt:
            raise ValidationError("The prompt is empty: describe the video you want.")
        if not (stored or has_visible_text(prompt)):
            raise ValidationError("The prompt has no visible text: describe the video you want.")
        if len(self.prompt) > PROMPT_MAX:
            raise ValidationError(
                f"The prompt is {len(self.prompt)} characters; the limit is {PROMPT_MAX}."
            )
        if (
            not isinstance(self.negative_prompt, str)
            or len(self.negative_prompt) > NEGATIVE_PROMPT_MAX
        ):
            raise ValidationError(
                f"The negative prompt must be text of at most {NEGATIVE_PROMPT_MAX} characters."
            )
        # Empty means "avoid nothing" and stays allowed; only invisible characters mean a typo
        # or a trick, and would be sent to Segmind as if they were a description.
        if self.negative_prompt and not (stored or has_visible_text(self.negative_prompt)):
            raise ValidationError(
                "The negative prompt has no visible text: leave it out, or say what to avoid."
            )
        for name in ("input_frames", "steps", "frame_rate", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(f"`{name}` must be a whole number.")
        if isinstance(self.guidance_scale, bool) or not isinstance(
            self.guidance_scale, (int, float)
        ):
            raise ValidationError("`guidance_scale` must be a number.")
        if self.guidance_scale != self.guidance_scale:  # NaN
            raise ValidationError("`guidance_scale` must be a number.")
        _check_range("input_frames", self.input_frames, INPUT_FRAMES)
        _check_range("steps", self.steps, STEPS)
        _check_range("guidance_scale", self.guidance_scale, GUIDANCE_SCALE)
        _check_range("seed", self.seed, SEED)
        _check_range("frame_rate", self.frame_rate, FRAME_RATE)
        object.__setattr__(self, "prompt", prompt)
        object.__setattr__(self, "guidance_scale", float(self.guidance_scale))

    @classmethod
    def create(
        cls,
        prompt: str,
        *,
        seed: int | None = None,
        negative_prompt: str | None = None,
        input_frames: int | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        frame_rate: int | None = None,
        default_negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
    ) -> VideoRequest:
        """Build a request from optional values, filling defaults and a random seed."""
        return cls(
            prompt=prompt,
            seed=random_seed() if seed is None else seed,
            negative_prompt=default_negative_prompt if negative_prompt is None else negative_prompt,
            input_frames=DEFAULT_INPUT_FRAMES if input_frames is None else input_frames,
            steps=DEFAULT_STEPS if steps is None else steps,
            guidance_scale=DEFAULT_GUIDANCE_SCALE if guidance_scale is None else guidance_scale,
            frame_rate=DEFAULT_FRAME_RATE if frame_rate is None else frame_rate,
        )

    def to_payload(self) -> dict[str, Any]:
        """The JSON body for Segmind's submit call."""
        payload = asdict(self)
        if float(self.guidance_scale).is_integer():
            payload["guidance_scale"] = int(self.guidance_scale)
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> VideoRequest:
        """Rebuild a stored request (validated again: stored data is input too).

        Its ranges are checked, but not the visible-text rule: a request stored before that
        rule was admitted and perhaps billed, and history and restarts must still read it.
        """
        try:
            return cls(**{f.name: payload[f.name] for f in fields(cls)}, stored=True)
        except (KeyError, TypeError) as exc:
            raise ValidationError("A stored request is incomplete.", detail=repr(exc)) from exc

    def with_seed(self, seed: int) -> VideoRequest:
        return VideoRequest(**{**asdict(self), "seed": seed})


def request_fingerprint(request: VideoRequest, *, private: bool, seed_given: bool) -> str:
    """What makes two `/video` requests the same one: a repeat moments later is a double click.

    Every parameter and the privacy count; the seed only when the member chose it, since an
    omitted seed is drawn anew for each request and would make every repeat look different.
    """
    values: dict[str, Any] = {**request.to_payload(), "private": private}
    if not seed_given:
        del values["seed"]
    text = json.dumps(values, sort_keys=True)  # ASCII: a lone surrogate cannot break it
    return "video:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def reroll_fingerprint(job_id: int) -> str:
    """Re-rolls of one job are the same request: each click draws its own random seed."""
    return f"reroll:{job_id}"


class JobState(str, enum.Enum):
    """Where a job is. Stored as its value; the order below is the usual life."""

    QUEUED = "queued"  # stored, waiting for a free slot; nothing sent to Segmind
    SUBMITTING = "submitting"  # submit in flight: a crash here leaves the outcome unknown
    SUBMITTED = "submitted"  # Segmind accepted it (request_id known), queued there
    PROCESSING = "processing"  # Segmind is generating
    DOWNLOADED = "downloaded"  # the MP4 is on local disk, waiting to be delivered
    DELIVERED = "delivered"  # posted in Discord: done
    FAILED = "failed"  # ended with an error (Segmind's or ours)
    CANCELLED = "cancelled"  # stopped by the member or a moderator
    UNKNOWN = "unknown"  # submit sent, answer lost: never resubmitted
    EXPIRED = "expired"  # Segmind no longer holds the result

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {JobState.DELIVERED, JobState.FAILED, JobState.CANCELLED, JobState.UNKNOWN, JobState.EXPIRED}
)


@dataclass(frozen=True, slots=True)
class Submission:
    """What Segmind returns when it accepts a job."""

    request_id: str
    status_url: str
    response_url: str


class SegmindState(str, enum.Enum):
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class SegmindStatus:
    state: SegmindState
    error: str | None = None


@dataclass(frozen=True, slots=True)
class VideoResult:
    """A finished job: where the MP4 is, and Segmind's optional metrics."""

    video_url: str
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Job:
    """One stored job, as the storage layer returns it."""

    id: int
    guild_id: int
    channel_id: int
    user_id: int
    request: VideoRequest
    state: JobState
    created_at: float
    private: bool = False
    parent_job_id: int | None = None
    request_id: str | None = None
    status_url: str | None = None
    response_url: str | None = None
    segmind_state: str | None = None
    message_id: int | None = None
    interaction_token: str | None = field(default=None, repr=False)  # a secret for 15 min
    interaction_created_at: float | None = None
    application_id: int | None = None
    upload_limit: int | None = None  # bytes the interaction's reply may attach
    submitted_at: float | None = None
    finished_at: float | None = None
    video_url: str | None = None
    clip_path: str | None = None
    result_message_id: int | None = None
    error: str | None = None
    cost_usd: float = 0.0
    fingerprint: str | None = None  # what makes a repeated request "the same" one
    posting_started_at: float | None = None  # set durably right before the clip is posted
    shared_at: float | None = None  # when a private clip was shared in its channel
    shared_message_id: int | None = None  # the shared post, whose buttons act on this job
    failure_notice_due: float | None = None  # ended without a clip; the member not yet told
    result_deleted_at: float | None = None  # its public result post deleted by Delete
    shared_deleted_at: float | None = None  # its shared post deleted by Delete
    cancelled_by: int | None = None  # who pressed Cancel (a moderator's does not count)
    cost_reported: bool = False  # cost_usd is Segmind's own figure, not admission's estimate
    lease_owner: str | None = None  # the bot process running it (services/storage/leases.py)
    lease_until: float | None = None  # when another process may take it over
    slot_held: bool = False  # started: holds a Segmind slot until its clip is on disk
    cancel_requested: bool = False  # Cancel pressed in another process than its runner's
    cancel_requested_by: int | None = None

    @property
    def counts_toward_limit(self) -> bool:
        """Holding a place, outcome unknown, or accepted by Segmind (and so billed).

        The same rule as ``COUNTED`` in services/storage/jobs.py, which applies it in SQL.
        """
        waiting = self.state in (JobState.QUEUED, JobState.SUBMITTING, JobState.UNKNOWN)
        return waiting or self.request_id is not None


class ProgressPhase(str, enum.Enum):
    QUEUED = "queued"  # waiting for a slot in this bot
    SUBMITTING = "submitting"
    SEGMIND_QUEUED = "segmind_queued"
    PROCESSING = "processing"
    DOWNLOADING = "downloading"


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress event the job runner emits and its listener renders.

    ``position`` is 1-based in this bot's queue (only while QUEUED), counting only jobs
    that start before this one; ``behind_own_job`` says it waits for the member's own
    running video instead. ``elapsed`` is seconds since the job was accepted by Segmind
    (0 before); ``expected`` is the job's likely time from then to its end, by the same
    learned forecast as its polls (``services.finish_estimate``); ``fraction`` is elapsed
    against it, never 1.0 before done.
    """

    job_id: int
    phase: ProgressPhase
    position: int | None = None
    behind_own_job: bool = False
    elapsed: float = 0.0
    fraction: float = 0.0
    expected: float = 0.0  # seconds from Segmind's acceptance to the likely end
    # Seconds left in 4 cases of 5 (None: no forecast); ``late``: later than nearly every
    # recent job of its kind.
    likely_left: float | None = None
    late: bool = False


@dataclass(frozen=True, slots=True)
class JobOrigin:
    """Where a request was made and how to answer it: who, in which channel, through what.

    The interaction fields let the bot edit its reply and post the clip through the
    interaction's webhook for its 15 minutes; None where there is no interaction (the CLI).
    """

    guild_id: int
    channel_id: int
    user_id: int
    role_ids: tuple[int, ...] = ()
    private: bool = False
    parent_job_id: int | None = None  # the job a re-roll came from
    interaction_token: str | None = field(default=None, repr=False)  # a secret for 15 min
    interaction_created_at: float | None = None
    application_id: int | None = None
    upload_limit: int | None = None  # bytes the interaction's reply may attach
    fingerprint: str | None = None  # request_fingerprint/reroll_fingerprint; None: no de-dup


# --- limits and budgets ------------------------------------------------------------

AuditValue = LimitSpec | int | float | None


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """A server's own settings; None means "not set" (operator default, no cap)."""

    guild_id: int
    default_limit: LimitSpec | None = None
    daily_clip_cap: int | None = None
    monthly_budget_usd: float | None = None
    moderator_role_id: int | None = None
    alert_channel_id: int | None = None


@dataclass(frozen=True, slots=True)
class LimitOverride:
    """A limit set for one member or one role (``target_id`` is the user or role id)."""

    guild_id: int
    target_id: int
    spec: LimitSpec
    set_by: int
    set_at: float


@dataclass(frozen=True, slots=True)
class AuditChange:
    """One value an audit entry changed; None means it was (or became) unset."""

    setting: str  # "limit" (a member's or role's), "default", or another settings column
    before: AuditValue
    after: AuditValue


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded change to a server's limits or settings: who, what, when."""

    id: int
    guild_id: int
    actor_id: int
    action: str
    target: str  # "user:<id>", "role:<id>" or "server"
    detail: str  # as stored: `old -> new` for a limit, `name: old -> new, ...` for settings
    at: float
    changes: tuple[AuditChange, ...] | None = None  # None when ``detail`` cannot be read


@dataclass(frozen=True, slots=True)
class MemberTotal:
    """One member's counted clips and spend over a period."""

    user_id: int
    clips: int
    cost_usd: float


# --- the gallery ---------------------------------------------------------------------


class GalleryMode(enum.Enum):
    MANUAL = "manual"  # a Publish button on public result cards
    AUTO = "auto"  # every delivered public clip


@dataclass(frozen=True, slots=True)
class Gallery:
    guild_id: int
    channel_id: int
    mode: GalleryMode


@dataclass(frozen=True, slots=True)
class GalleryPost:
    """A clip's claim on the gallery; ``message_id`` is None while (or if) it is being posted."""

    job_id: int
    channel_id: int
    message_id: int | None

    @property
    def taken_down(self) -> bool:
        return self.message_id == TAKEN_DOWN


# Stored as a taken-down clip's message id: no Discord id is 0, and unlike NULL (a post
# under way) no failed post releases it, so the clip is never posted again.
TAKEN_DOWN = 0


# --- the blocklist ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlocklistEntry:
    """A word, phrase or /regex/ a server keeps out of prompts, as the moderator typed it."""

    guild_id: int
    term: str
    added_by: int
    added_at: float


@dataclass(frozen=True, slots=True)
class BlockedPrompt:
    """A request the blocklist refused: who, where, when, and which term (moderators only).

    ``timed_out``: the term is a pattern that ran out of time on this prompt, which counts
    as a match so that nothing unchecked gets through.
    """

    id: int
    guild_id: int
    channel_id: int
    user_id: int
    term: str
    at: float
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class AllowedChannel:
    """A channel where a server lets `/video` work (its threads count as it)."""

    guild_id: int
    channel_id: int
    added_by: int
    added_at: float
