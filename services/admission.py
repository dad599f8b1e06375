"""The gate every new job passes before anything is acknowledged, submitted or billed.

A repeat of a request made moments ago (a double click), the member's limit, the
server's daily clip cap and monthly budget, the operator's daily spending ceiling across
all servers, and the credit gate are checked and the job is stored in ONE transaction:
the database lock is held from the first read to the insert, so ten quick requests under
a limit of 3 give exactly 3 jobs, and two clicks at once give one. A refusal writes
nothing, except the note that moderators (or the operator) were told about a reached
budget or ceiling, so they are told once per day or month.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Literal

from services.clock import Clock
from services.errors import RefusedError
from services.gates import AccountGates
from services.limits import EffectiveLimit, load_effective_limit, window_start, window_usage
from services.models import GuildSettings, Job, JobOrigin, VideoRequest
from services.periods import LimitSpec
from services.storage import JobStore, NewJob, Storage
from services.storage.database import Executor
from services.utc_calendar import (
    day_key,
    month_key,
    utc_day_start,
    utc_month_start,
    utc_next_day,
    utc_next_month,
)

log = logging.getLogger(__name__)

# Sums of float prices: a cent's fraction must not refuse the clip that exactly fits.
_EPSILON_USD = 1e-6
# The same request from the same member this soon after the first is a double click (or a
# command sent twice), answered with the first job instead of billed again.
DUPLICATE_WINDOW_SECONDS = 10.0
# The operator's alerts (the spending ceiling) are remembered in alerts_sent under this
# id, which no Discord server has.
OPERATOR = 0


@dataclass(frozen=True)
class Admitted:
    """A job that passed: stored as QUEUED and counted from now on."""

    job: Job  # stored, state QUEUED, cost_usd = clip price
    limit: EffectiveLimit
    used: int  # counted uses in the window, including this one
    remaining: int  # what is left in the window after this one
    cost_usd: float  # what this request spends


class MemberBlocked(RefusedError):
    """The member's effective limit is 0 clips: ``limit`` says whose limit that is."""

    def __init__(self, limit: EffectiveLimit) -> None:
        super().__init__(
            "You are blocked from making videos here.",
            detail=f"blocked by {limit.source} limit",
        )
        self.limit = limit


class LimitReached(RefusedError):
    """The member used every clip of ``limit`` in its window; one frees at ``next_free_at``."""

    def __init__(self, limit: EffectiveLimit, *, used: int, next_free_at: float) -> None:
        super().__init__(
            "You have reached your video limit for now.",
            retry_at=next_free_at,
            detail=f"limit {limit.spec} from {limit.source} used={used}",
        )
        self.limit = limit
        self.used = used
        self.next_free_at = next_free_at


class BudgetExhausted(RefusedError):
    """The server's daily clip cap (``kind`` "daily") or monthly budget ("monthly") is reached.

    ``tell_moderators`` is True only the first time for this server, cap and day or
    month: then the Discord layer tells the moderators.
    """

    def __init__(
        self,
        *,
        kind: Literal["daily", "monthly"],
        resets_at: float,
        cap: int | None = None,
        budget_usd: float | None = None,
        spent_usd: float = 0.0,
        clip_cost_usd: float = 0.0,
    ) -> None:
        super().__init__(
            f"This server's {kind} video budget is used up.",
            retry_at=resets_at,
            detail=f"budget {kind} reached",
        )
        self.kind = kind
        self.resets_at = resets_at
        self.cap = cap
        self.budget_usd = budget_usd
        self.spent_usd = spent_usd
        self.clip_cost_usd = clip_cost_usd
        self.tell_moderators = False


class DuplicateRequest(RefusedError):
    """The member made this same request moments ago; the job it made is named here.

    Nothing is stored, billed or counted for the repeat: ``job_id`` is the earlier job, its
    progress message is ``message_id`` in ``channel_id`` (None until it is posted).
    """

    def __init__(self, earlier: Job) -> None:
        super().__init__(
            "You just asked for this same video; it is made once, and nothing more is spent.",
            detail=f"repeat of job={earlier.id}",
        )
        self.job_id = earlier.id
        self.guild_id = earlier.guild_id
        self.channel_id = earlier.channel_id
        self.message_id = earlier.message_id
        self.private = earlier.private


class SpendCeilingReached(RefusedError):
    """The operator's daily spending ceiling (MAX_DAILY_SPEND_USD, all servers) is reached.

    It resets at the next UTC midnight. ``tell_moderators`` is True only the first time
    this server meets it that day: then the Discord layer tells its moderators.
    """

    def __init__(
        self, *, ceiling_usd: float, spent_usd: float, clip_cost_usd: float, resets_at: float
    ) -> None:
        super().__init__(
            "The bot's daily spending limit is reached.",
            retry_at=resets_at,
            detail=f"operator ceiling {ceiling_usd:.2f} USD reached (spent {spent_usd:.2f})",
        )
        self.ceiling_usd = ceiling_usd
        self.spent_usd = spent_usd
        self.clip_cost_usd = clip_cost_usd
        self.resets_at = resets_at
        self.tell_moderators = False


class Admission:
    def __init__(
        self,
        storage: Storage,
        *,
        default_limit: LimitSpec,
        clip_cost_usd: float,
        clock: Clock,
        gates: AccountGates,
        daily_spend_ceiling_usd: float | None = None,
    ) -> None:
        self._storage = storage
        self._default = default_limit
        self._cost = clip_cost_usd
        self._clock = clock
        self._gates = gates
        self._ceiling = daily_spend_ceiling_usd

    @property
    def clip_cost_usd(self) -> float:
        return self._cost

    async def admit(self, request: VideoRequest, origin: JobOrigin) -> Admitted:
        """Check repeats, limits, caps and credits, and store the job atomically, or refuse."""
        new = _new_job(request, origin)
        role_ids = origin.role_ids
        store = self._storage.limits
        refusal: BudgetExhausted | SpendCeilingReached | None = None
        async with self._storage.db.transaction() as tx:
            now = self._clock.time()
            if new.fingerprint is not None:
                # First: a double click must hear "already on its way", not "limit reached".
                earlier = await self._storage.jobs.same_request_since(
                    new.guild_id,
                    new.user_id,
                    new.fingerprint,
                    now - DUPLICATE_WINDOW_SECONDS,
                    tx=tx,
                )
                if earlier is not None:
                    raise DuplicateRequest(earlier)
            settings = await store.guild_settings(new.guild_id, tx=tx)
            limit = await load_effective_limit(
                store,
                new.guild_id,
                new.user_id,
                role_ids,
                operator_default=self._default,
                settings=settings,
                tx=tx,
            )
            if limit.blocked:
                raise MemberBlocked(limit)
            times = await self._storage.jobs.counted_times(
                new.guild_id, new.user_id, window_start(now, limit.spec.period_seconds), tx=tx
            )
            window = window_usage(limit.spec, times, now)
            if window.remaining == 0:
                retry_at = window.next_free_at
                assert retry_at is not None
                raise LimitReached(limit, used=window.used, next_free_at=retry_at)
            refusal = await self._budget_refusal(tx, settings, now)
            if refusal is None:
                refusal = await self._ceiling_refusal(tx, new.guild_id, now)
            if refusal is None:
                # Last, so a recheck a paused account lets through is not spent on a
                # request the limits would refuse anyway.
                self._gates.check()
                job = await self._storage.jobs.insert(
                    replace(new, created_at=now, cost_usd=self._cost), tx=tx
                )
        if refusal is not None:
            # Raised after the commit, so the "moderators were told" note is kept.
            raise refusal
        used = window.used + 1
        log.info(
            "job=%s admitted guild=%s user=%s limit=%s source=%s used=%s",
            job.id,
            new.guild_id,
            new.user_id,
            limit.spec,
            limit.source,
            used,
        )
        return Admitted(
            job=job,
            limit=limit,
            used=used,
            remaining=max(0, limit.spec.count - used),
            cost_usd=self._cost,
        )

    async def _budget_refusal(
        self, tx: Executor, settings: GuildSettings, now: float
    ) -> BudgetExhausted | None:
        """The server's caps, in UTC calendar days and months; records the first alert."""
        guild_id = settings.guild_id
        refusal: BudgetExhausted | None = None
        cap = settings.daily_clip_cap
        if cap is not None:
            clips_today, _ = await self._storage.jobs.guild_counted(
                guild_id, utc_day_start(now), tx=tx
            )
            if clips_today >= cap:
                refusal = BudgetExhausted(kind="daily", resets_at=utc_next_day(now), cap=cap)
                # The cap is in the key: a moderator who raises it hears again when it is hit.
                key = f"budget:daily:{day_key(now)}:{cap}"
        budget = settings.monthly_budget_usd
        if refusal is None and budget is not None:
            _, spent = await self._storage.jobs.guild_counted(guild_id, utc_month_start(now), tx=tx)
            if spent + self._cost > budget + _EPSILON_USD:
                refusal = BudgetExhausted(
                    kind="monthly",
                    resets_at=utc_next_month(now),
                    budget_usd=budget,
                    spent_usd=spent,
                    clip_cost_usd=self._cost,
                )
                key = f"budget:monthly:{month_key(now)}:{budget:.2f}"
        if refusal is None:
            return None
        if await self._storage.limits.mark_alert_sent(guild_id, key, at=now, tx=tx):
            refusal.tell_moderators = True
            log.warning("guild=%s %s reached; moderators to be told", guild_id, key)
        return refusal

    async def _ceiling_refusal(
        self, tx: Executor, guild_id: int, now: float
    ) -> SpendCeilingReached | None:
        """The operator's ceiling across all servers, per UTC day; records the first alerts.

        Counted as the server budgets count: clips that hold a place or that Segmind
        accepted, at the price stored with each.
        """
        ceiling = self._ceiling
        if ceiling is None:
            return None
        spent = await spent_today(self._storage.jobs, now, tx=tx)
        refusal = ceiling_refusal(
            ceiling_usd=ceiling, spent_usd=spent, clip_cost_usd=self._cost, now=now
        )
        if refusal is None:
            return None
        # The ceiling is in the key: an operator who raises it hears again when it is hit.
        key = f"ceiling:daily:{day_key(now)}:{ceiling:.2f}"
        limits = self._storage.limits
        if await limits.mark_alert_sent(OPERATOR, key, at=now, tx=tx):
            log.error(
                "MAX_DAILY_SPEND_USD=%.2f reached: %.2f USD counted across all servers today"
                " (UTC); every new request is refused until UTC midnight. Raise the setting"
                " and restart to allow more.",
                ceiling,
                spent,
            )
        if await limits.mark_alert_sent(guild_id, key, at=now, tx=tx):
            refusal.tell_moderators = True
            log.warning("guild=%s %s reached; moderators to be told", guild_id, key)
        return refusal


async def spent_today(jobs: JobStore, now: float, *, tx: Executor) -> float:
    """What the operator's ceiling counts against: this UTC day's spend on every server.

    Clips that hold a place or that Segmind accepted, at the price stored with each, and
    those made with `bot.py generate` (stored under server 0). One function for the bot's
    admission and the CLI, so both see the same total.
    """
    _, spent = await jobs.counted_since(utc_day_start(now), tx=tx)
    return spent


def ceiling_refusal(
    *, ceiling_usd: float, spent_usd: float, clip_cost_usd: float, now: float
) -> SpendCeilingReached | None:
    """The refusal when one more clip would pass the operator's daily ceiling, else None."""
    if spent_usd + clip_cost_usd <= ceiling_usd + _EPSILON_USD:
        return None
    return SpendCeilingReached(
        ceiling_usd=ceiling_usd,
        spent_usd=spent_usd,
        clip_cost_usd=clip_cost_usd,
        resets_at=utc_next_day(now),
    )


def _new_job(request: VideoRequest, origin: JobOrigin) -> NewJob:
    """The row to store for a request; ``created_at`` and the price are set on admission."""
    return NewJob(
        guild_id=origin.guild_id,
        channel_id=origin.channel_id,
        user_id=origin.user_id,
        request=request,
        created_at=0.0,
        private=origin.private,
        parent_job_id=origin.parent_job_id,
        interaction_token=origin.interaction_token,
        interaction_created_at=origin.interaction_created_at,
        application_id=origin.application_id,
        upload_limit=origin.upload_limit,
        fingerprint=origin.fingerprint,
    )
