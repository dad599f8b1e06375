"""The gate every new job passes before anything is acknowledged, submitted or billed.

The member's limit, the server's daily clip cap and monthly budget, and the credit
gate are checked and the job is stored in ONE transaction: the database lock is held
from the first read to the insert, so ten quick requests under a limit of 3 give
exactly 3 jobs. A refusal writes nothing, except the note that moderators were told
about a reached budget (so they are told once per day or month).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from services.clock import Clock
from services.errors import RefusedError
from services.gates import AccountGates
from services.limits import (
    EffectiveLimit,
    clips_left_text,
    day_key,
    discord_timestamp,
    format_usd,
    load_effective_limit,
    month_key,
    plural,
    utc_day_start,
    utc_month_start,
    utc_next_day,
    utc_next_month,
    window_start,
    window_usage,
)
from services.models import Job
from services.periods import LimitSpec
from services.storage import GuildSettings, NewJob, Storage
from services.storage.database import Executor

log = logging.getLogger(__name__)

# Sums of float prices: a cent's fraction must not refuse the clip that exactly fits.
_EPSILON_USD = 1e-6


@dataclass(frozen=True)
class Admitted:
    """A job that passed: stored as QUEUED and counted from now on."""

    job: Job  # stored, state QUEUED, cost_usd = clip price
    limit: EffectiveLimit
    used: int  # counted uses in the window, including this one
    remaining: int  # what is left in the window after this one
    cost_usd: float  # what this request spends

    def summary(self) -> str:
        """For the member's progress or result message: `$0.36 · 2 of 3 clips left today`."""
        left = clips_left_text(self.remaining, self.limit.spec)
        return f"{format_usd(self.cost_usd)} · {left}" if self.cost_usd > 0 else left


class BudgetExhausted(RefusedError):
    """The server's daily clip cap or monthly budget is reached.

    ``alert_key`` is set only the first time for this server and day/month: then the
    cog posts ``moderator_message`` to the moderators (``notify_moderators``).
    """

    def __init__(
        self,
        user_message: str,
        *,
        kind: str,
        retry_at: float,
        moderator_message: str,
        alert_key: str | None = None,
    ) -> None:
        super().__init__(user_message, retry_at=retry_at, detail=f"budget {kind} reached")
        self.kind = kind  # "daily" or "monthly"
        self.moderator_message = moderator_message
        self.alert_key = alert_key


class Admission:
    def __init__(
        self,
        storage: Storage,
        *,
        default_limit: LimitSpec,
        clip_cost_usd: float,
        clock: Clock,
        gates: AccountGates,
    ) -> None:
        self._storage = storage
        self._default = default_limit
        self._cost = clip_cost_usd
        self._clock = clock
        self._gates = gates

    @property
    def clip_cost_usd(self) -> float:
        return self._cost

    async def admit(self, new: NewJob, *, role_ids: Sequence[int]) -> Admitted:
        """Check limit, caps and credits and store the job, atomically; raise RefusedError."""
        store = self._storage.limits
        refusal: BudgetExhausted | None = None
        async with self._storage.db.transaction() as tx:
            now = self._clock.time()
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
                raise RefusedError(
                    f"You are blocked from making videos here ({limit.origin()}).",
                    detail=f"blocked by {limit.source} limit",
                )
            times = await self._storage.jobs.counted_times(
                new.guild_id, new.user_id, window_start(now, limit.spec.period_seconds), tx=tx
            )
            window = window_usage(limit.spec, times, now)
            if window.remaining == 0:
                retry_at = window.next_free_at
                assert retry_at is not None
                raise RefusedError(
                    f"You have reached {limit.describe()}. "
                    f"Your next slot frees {discord_timestamp(retry_at)}.",
                    retry_at=retry_at,
                    detail=f"limit {limit.spec} from {limit.source} used={window.used}",
                )
            refusal = await self._budget_refusal(tx, settings, now)
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
                resets = utc_next_day(now)
                refusal = BudgetExhausted(
                    f"This server's daily limit of {plural(cap, 'clip')} is reached. "
                    f"It resets {discord_timestamp(resets)}.",
                    kind="daily",
                    retry_at=resets,
                    moderator_message=(
                        "Video generation is paused on this server: the daily cap of "
                        f"{plural(cap, 'clip')} (UTC day) is reached. "
                        f"It resets {discord_timestamp(resets)}. "
                        "Change it with `/videolimit budget`."
                    ),
                )
                # The cap is in the key: a moderator who raises it hears again when it is hit.
                key = f"budget:daily:{day_key(now)}:{cap}"
        budget = settings.monthly_budget_usd
        if refusal is None and budget is not None:
            _, spent = await self._storage.jobs.guild_counted(guild_id, utc_month_start(now), tx=tx)
            if spent + self._cost > budget + _EPSILON_USD:
                resets = utc_next_month(now)
                refusal = BudgetExhausted(
                    f"{_monthly_budget_left(budget, spent, self._cost)} "
                    f"It resets {discord_timestamp(resets)}.",
                    kind="monthly",
                    retry_at=resets,
                    moderator_message=(
                        f"Video generation is paused on this server: {format_usd(spent)} of the "
                        f"monthly budget of {format_usd(budget)} is spent and the next clip costs "
                        f"{format_usd(self._cost)}. It resets {discord_timestamp(resets)}. "
                        "Change it with `/videolimit budget`."
                    ),
                )
                key = f"budget:monthly:{month_key(now)}:{budget:.2f}"
        if refusal is None:
            return None
        if await self._storage.limits.mark_alert_sent(guild_id, key, at=now, tx=tx):
            refusal.alert_key = key
            log.warning("guild=%s %s reached; moderators to be told", guild_id, key)
        return refusal


def _monthly_budget_left(budget: float, spent: float, cost: float) -> str:
    """Why the month's budget refuses a clip: used up, or too little left for one more."""
    left = budget - spent
    if left < 0.005:  # would show as $0.00
        return f"This server's monthly video budget of {format_usd(budget)} is used up."
    return (
        f"This server's monthly video budget ({format_usd(budget)}) has {format_usd(left)} "
        f"left, not enough for another clip ({format_usd(cost)})."
    )
