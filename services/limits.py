"""Who may make how many clips: limit resolution, rolling windows, budgets, moderators' changes.

A member's effective limit is their own override, else the most generous limit of
their roles, else the server default, else the operator's DEFAULT_LIMIT; count 0
blocks. Usage is counted in a rolling window: a use at ``t`` stops counting at
``t + period``. Budgets follow calendar days and months in UTC (``utc_calendar``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from services.clock import Clock
from services.errors import ValidationError
from services.models import AuditEntry, GuildSettings, JobState, LimitOverride, MemberTotal
from services.periods import LimitSpec, parse_period
from services.storage import LimitStore, Storage
from services.storage.database import Executor
from services.storage.usage import counted_per_day_and_member
from services.usage_chart import UsageSeries, member_totals, usage_series
from services.utc_calendar import utc_day_start, utc_month_start, utc_next_day, utc_next_month

LimitSource = Literal["user", "role", "server", "operator"]

MAX_COUNT = 10_000
MAX_MONTHLY_USD = 1_000_000.0
DEFAULT_USAGE_PERIOD = "1w"
RECENT_JOBS = 50  # pages of 20 in /videolimit usage: enough to spot a burst of abuse


# --- effective limit ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EffectiveLimit:
    """The limit that applies to one member, and where it comes from."""

    spec: LimitSpec
    source: LimitSource
    role_id: int | None = None

    @property
    def blocked(self) -> bool:
        return self.spec.count == 0


def is_more_generous(a: LimitSpec, b: LimitSpec) -> bool:
    """More clips per second wins (compared exactly); on a tie, the larger count."""
    left, right = a.count * b.period_seconds, b.count * a.period_seconds
    if left != right:
        return left > right
    return a.count > b.count


def resolve_limit(
    *,
    user: LimitSpec | None,
    roles: Mapping[int, LimitSpec],
    server: LimitSpec | None,
    operator: LimitSpec,
) -> EffectiveLimit:
    """Override, else the most generous role limit, else server default, else operator's."""
    if user is not None:
        return EffectiveLimit(user, "user")
    best: tuple[int, LimitSpec] | None = None
    for role_id in sorted(roles):  # sorted: equal limits resolve to the same role every time
        spec = roles[role_id]
        if best is None or is_more_generous(spec, best[1]):
            best = (role_id, spec)
    if best is not None:
        return EffectiveLimit(best[1], "role", best[0])
    if server is not None:
        return EffectiveLimit(server, "server")
    return EffectiveLimit(operator, "operator")


async def load_effective_limit(
    store: LimitStore,
    guild_id: int,
    user_id: int,
    role_ids: Iterable[int],
    *,
    operator_default: LimitSpec,
    settings: GuildSettings | None = None,
    tx: Executor | None = None,
) -> EffectiveLimit:
    """Read what applies to a member (inside ``tx`` when given) and resolve it."""
    override = await store.user_limit(guild_id, user_id, tx=tx)
    role_limits = await store.role_limits(guild_id, list(role_ids), tx=tx)
    if settings is None:
        settings = await store.guild_settings(guild_id, tx=tx)
    return resolve_limit(
        user=override.spec if override else None,
        roles={limit.target_id: limit.spec for limit in role_limits},
        server=settings.default_limit,
        operator=operator_default,
    )


# --- rolling window ---------------------------------------------------------------


def window_start(now: float, period_seconds: int) -> float:
    """Uses strictly after this moment are in the window (a use frees at exactly t + period)."""
    return now - period_seconds


@dataclass(frozen=True, slots=True)
class WindowUsage:
    """A member's counted uses inside the rolling window of their limit."""

    spec: LimitSpec
    now: float
    uses: tuple[float, ...]  # creation times inside the window, oldest first

    @property
    def used(self) -> int:
        return len(self.uses)

    @property
    def remaining(self) -> int:
        return max(0, self.spec.count - self.used)

    @property
    def next_free_at(self) -> float | None:
        """When one more clip is allowed: now if one is left, None if blocked.

        At the limit that is the oldest use + period; over it (the limit was lowered)
        enough older uses must leave the window first.
        """
        if self.spec.count == 0:
            return None
        if self.used < self.spec.count:
            return self.now
        return self.uses[self.used - self.spec.count] + self.spec.period_seconds

    @property
    def oldest_frees_at(self) -> float | None:
        """When the oldest use in the window stops counting."""
        return self.uses[0] + self.spec.period_seconds if self.uses else None


def window_usage(spec: LimitSpec, times: Iterable[float], now: float) -> WindowUsage:
    start = window_start(now, spec.period_seconds)
    return WindowUsage(spec, now, tuple(sorted(t for t in times if t > start)))


# --- what the service returns ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberUsage:
    """One member's limit and usage (for `/videolimit show user`)."""

    guild_id: int
    user_id: int
    limit: EffectiveLimit
    window: WindowUsage
    override: LimitOverride | None


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """The server's clips today and spend this month, against its caps (UTC calendar)."""

    clip_cost_usd: float | None
    clips_today: int
    daily_clip_cap: int | None
    day_resets_at: float
    clips_this_month: int
    spent_this_month_usd: float
    monthly_budget_usd: float | None
    month_resets_at: float


@dataclass(frozen=True, slots=True)
class LimitsOverview:
    """Everything `/videolimit show` without a user lists."""

    guild_id: int
    server_default: EffectiveLimit  # source "server" or "operator"
    settings: GuildSettings
    user_limits: tuple[LimitOverride, ...]
    role_limits: tuple[LimitOverride, ...]
    budget: BudgetStatus


@dataclass(frozen=True, slots=True)
class RecentJob:
    id: int
    user_id: int
    prompt: str
    state: JobState
    created_at: float
    cost_usd: float
    error: str | None


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Totals per member for a period and the latest jobs: enough to spot abuse."""

    guild_id: int
    period_seconds: int
    since: float
    user_id: int | None
    totals: tuple[MemberTotal, ...]
    recent: tuple[RecentJob, ...]
    budget: BudgetStatus
    series: UsageSeries  # per UTC day, from the same rows as ``totals``: the chart agrees

    @property
    def total_clips(self) -> int:
        return sum(t.clips for t in self.totals)

    @property
    def total_cost_usd(self) -> float:
        return sum(t.cost_usd for t in self.totals)


@dataclass(frozen=True, slots=True)
class LimitChange:
    """What a moderator's change did: ``before``/``after`` are None when unset."""

    guild_id: int
    target: str  # "user", "role" or "server"
    target_id: int | None
    before: LimitSpec | None
    after: LimitSpec | None

    @property
    def changed(self) -> bool:
        """False when the limit already was ``after`` (then nothing was written or audited)."""
        return self.before != self.after


def validate_limit(count: int, period: str) -> LimitSpec:
    """A moderator's `count` and `period`, checked; a clear error naming the accepted forms."""
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
        raise ValidationError(f"`count` must be a whole number from 0 to {MAX_COUNT} (0 blocks).")
    return LimitSpec(count, parse_period(period))


# --- the service ------------------------------------------------------------------


class LimitService:
    """Moderators' reads and changes, per server; every change is audited."""

    def __init__(
        self,
        storage: Storage,
        *,
        default_limit: LimitSpec,
        clock: Clock,
        clip_cost_usd: float | None = None,
    ) -> None:
        self._storage = storage
        self._store: LimitStore = storage.limits
        self._default = default_limit
        self._clock = clock
        self._clip_cost = clip_cost_usd

    # --- reads ----------------------------------------------------------------------

    async def member_usage(
        self, guild_id: int, user_id: int, role_ids: Sequence[int]
    ) -> MemberUsage:
        now = self._clock.time()
        async with self._storage.db.transaction() as tx:  # one consistent snapshot
            override = await self._store.user_limit(guild_id, user_id, tx=tx)
            limit = await load_effective_limit(
                self._store, guild_id, user_id, role_ids, operator_default=self._default, tx=tx
            )
            times = await self._storage.jobs.counted_times(
                guild_id, user_id, window_start(now, limit.spec.period_seconds), tx=tx
            )
        return MemberUsage(guild_id, user_id, limit, window_usage(limit.spec, times, now), override)

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        return await self._store.guild_settings(guild_id)

    async def moderator_role_id(self, guild_id: int) -> int | None:
        return (await self._store.guild_settings(guild_id)).moderator_role_id

    async def alert_channel_id(self, guild_id: int) -> int | None:
        return (await self._store.guild_settings(guild_id)).alert_channel_id

    async def budget_status(self, guild_id: int, *, tx: Executor | None = None) -> BudgetStatus:
        now = self._clock.time()
        settings = await self._store.guild_settings(guild_id, tx=tx)
        clips_today, _ = await self._storage.jobs.guild_counted(guild_id, utc_day_start(now), tx=tx)
        clips_month, spent = await self._storage.jobs.guild_counted(
            guild_id, utc_month_start(now), tx=tx
        )
        return BudgetStatus(
            clip_cost_usd=self._clip_cost,
            clips_today=clips_today,
            daily_clip_cap=settings.daily_clip_cap,
            day_resets_at=utc_next_day(now),
            clips_this_month=clips_month,
            spent_this_month_usd=spent,
            monthly_budget_usd=settings.monthly_budget_usd,
            month_resets_at=utc_next_month(now),
        )

    async def overview(self, guild_id: int) -> LimitsOverview:
        async with self._storage.db.transaction() as tx:
            settings = await self._store.guild_settings(guild_id, tx=tx)
            users = await self._store.user_limits(guild_id, tx=tx)
            roles = await self._store.role_limits(guild_id, tx=tx)
            budget = await self.budget_status(guild_id, tx=tx)
        default = (
            EffectiveLimit(settings.default_limit, "server")
            if settings.default_limit is not None
            else EffectiveLimit(self._default, "operator")
        )
        return LimitsOverview(guild_id, default, settings, tuple(users), tuple(roles), budget)

    async def usage_report(
        self,
        guild_id: int,
        *,
        period: str | None = None,
        user_id: int | None = None,
        recent: int = RECENT_JOBS,
    ) -> UsageReport:
        """Totals per member over ``period`` (default a week) and the latest jobs."""
        seconds = parse_period(period or DEFAULT_USAGE_PERIOD)
        now = self._clock.time()
        since = now - seconds
        counts = await counted_per_day_and_member(
            self._storage.db, guild_id, since, user_id=user_id
        )
        totals = member_totals(counts)
        jobs = await self._storage.jobs.recent(guild_id, limit=recent, user_id=user_id)
        budget = await self.budget_status(guild_id)
        return UsageReport(
            guild_id=guild_id,
            period_seconds=seconds,
            since=since,
            user_id=user_id,
            totals=tuple(totals),
            recent=tuple(
                RecentJob(
                    j.id, j.user_id, j.request.prompt, j.state, j.created_at, j.cost_usd, j.error
                )
                for j in jobs
            ),
            budget=budget,
            series=usage_series(counts, since=since, until=now, user_id=user_id),
        )

    async def audit_log(self, guild_id: int, *, limit: int = 20) -> list[AuditEntry]:
        return await self._store.audit_log(guild_id, limit=limit)

    # --- changes ----------------------------------------------------------------------

    async def set_user_limit(
        self, guild_id: int, user_id: int, count: int, period: str, *, actor_id: int
    ) -> LimitChange:
        spec = validate_limit(count, period)
        before = await self._store.set_user_limit(
            guild_id, user_id, spec, actor_id=actor_id, at=self._clock.time()
        )
        return LimitChange(guild_id, "user", user_id, before.spec if before else None, spec)

    async def clear_user_limit(self, guild_id: int, user_id: int, *, actor_id: int) -> LimitChange:
        before = await self._store.clear_user_limit(
            guild_id, user_id, actor_id=actor_id, at=self._clock.time()
        )
        return LimitChange(guild_id, "user", user_id, before.spec if before else None, None)

    async def set_role_limit(
        self, guild_id: int, role_id: int, count: int, period: str, *, actor_id: int
    ) -> LimitChange:
        spec = validate_limit(count, period)
        before = await self._store.set_role_limit(
            guild_id, role_id, spec, actor_id=actor_id, at=self._clock.time()
        )
        return LimitChange(guild_id, "role", role_id, before.spec if before else None, spec)

    async def clear_role_limit(self, guild_id: int, role_id: int, *, actor_id: int) -> LimitChange:
        before = await self._store.clear_role_limit(
            guild_id, role_id, actor_id=actor_id, at=self._clock.time()
        )
        return LimitChange(guild_id, "role", role_id, before.spec if before else None, None)

    async def set_server_default(
        self, guild_id: int, count: int, period: str, *, actor_id: int
    ) -> LimitChange:
        spec = validate_limit(count, period)
        before = await self._store.update_guild_settings(
            guild_id,
            actor_id=actor_id,
            at=self._clock.time(),
            action="set_server_default",
            default_count=spec.count,
            default_period_seconds=spec.period_seconds,
        )
        return LimitChange(guild_id, "server", None, before.default_limit, spec)

    async def clear_server_default(self, guild_id: int, *, actor_id: int) -> LimitChange:
        """Back to the operator's DEFAULT_LIMIT."""
        before = await self._store.update_guild_settings(
            guild_id,
            actor_id=actor_id,
            at=self._clock.time(),
            action="clear_server_default",
            default_count=None,
            default_period_seconds=None,
        )
        return LimitChange(guild_id, "server", None, before.default_limit, None)

    async def set_budget(
        self,
        guild_id: int,
        *,
        actor_id: int,
        daily_clips: int | None = None,
        monthly_usd: float | None = None,
    ) -> BudgetStatus:
        """Set the daily clip cap and/or the monthly budget; None leaves one as is, 0 removes it."""
        values: dict[str, Any] = {}
        if daily_clips is not None:
            if (
                isinstance(daily_clips, bool)
                or not isinstance(daily_clips, int)
                or not (0 <= daily_clips <= MAX_COUNT)
            ):
                raise ValidationError(
                    f"`daily_clips` must be a whole number from 0 to {MAX_COUNT}"
                    " (0 removes the cap)."
                )
            values["daily_clip_cap"] = daily_clips or None
        if monthly_usd is not None:
            if not (
                isinstance(monthly_usd, (int, float))
                and (monthly_usd == 0 or 0.01 <= monthly_usd <= MAX_MONTHLY_USD)
            ):
                # Below a cent would round to 0, which silently means "no cap".
                raise ValidationError(
                    f"`monthly_usd` must be an amount from 0.01 to {MAX_MONTHLY_USD:,.0f}"
                    " (0 removes the cap)."
                )
            values["monthly_budget_usd"] = round(float(monthly_usd), 2) or None
        if not values:
            raise ValidationError("Give `daily_clips`, `monthly_usd` or both (0 removes a cap).")
        await self._store.update_guild_settings(
            guild_id, actor_id=actor_id, at=self._clock.time(), action="set_budget", **values
        )
        return await self.budget_status(guild_id)

    async def set_moderator_role(
        self, guild_id: int, role_id: int | None, *, actor_id: int
    ) -> int | None:
        """Members with this role may use /videolimit too (None: only Manage Server)."""
        before = await self._store.update_guild_settings(
            guild_id,
            actor_id=actor_id,
            at=self._clock.time(),
            action="set_moderator_role",
            moderator_role_id=role_id,
        )
        return before.moderator_role_id

    async def set_alert_channel(
        self, guild_id: int, channel_id: int | None, *, actor_id: int
    ) -> int | None:
        """Where moderators are told about reached caps (None: system channel, else the owner)."""
        before = await self._store.update_guild_settings(
            guild_id,
            actor_id=actor_id,
            at=self._clock.time(),
            action="set_alert_channel",
            alert_channel_id=channel_id,
        )
        return before.alert_channel_id
