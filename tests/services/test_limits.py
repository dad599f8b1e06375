"""Limit resolution, rolling-window arithmetic at the edges, and the moderators' service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.errors import ValidationError
from services.limits import (
    EffectiveLimit,
    LimitService,
    is_more_generous,
    resolve_limit,
    window_usage,
)
from services.models import JobState, VideoRequest
from services.periods import LimitSpec
from services.storage import NewJob, Storage
from services.utc_calendar import utc_day_start, utc_month_start, utc_next_day, utc_next_month
from tests.fakeclock import FakeClock

H, D, W = 3600, 86400, 604800
OPERATOR = LimitSpec(5, D)
GUILD = 10
ALICE, MOD = 1, 99


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# --- resolution ----------------------------------------------------------------------


def test_user_override_wins_over_roles_and_defaults() -> None:
    limit = resolve_limit(
        user=LimitSpec(1, D),
        roles={7: LimitSpec(100, D)},
        server=LimitSpec(50, D),
        operator=OPERATOR,
    )
    assert limit == EffectiveLimit(LimitSpec(1, D), "user")


def test_most_generous_role_wins_by_clips_per_second() -> None:
    roles = {7: LimitSpec(3, D), 8: LimitSpec(1, H), 9: LimitSpec(10, W)}  # 1/h = 24/d is best
    limit = resolve_limit(user=None, roles=roles, server=LimitSpec(50, D), operator=OPERATOR)
    assert limit == EffectiveLimit(LimitSpec(1, H), "role", 8)


def test_equal_rates_prefer_the_larger_count() -> None:
    roles = {7: LimitSpec(1, H), 8: LimitSpec(24, D)}
    assert resolve_limit(user=None, roles=roles, server=None, operator=OPERATOR).role_id == 8
    assert is_more_generous(LimitSpec(24, D), LimitSpec(1, H))
    assert not is_more_generous(LimitSpec(1, H), LimitSpec(24, D))


def test_a_blocking_role_loses_to_any_other_role() -> None:
    roles = {7: LimitSpec(0, D), 8: LimitSpec(1, W)}
    assert resolve_limit(user=None, roles=roles, server=None, operator=OPERATOR).role_id == 8


def test_only_blocking_role_blocks() -> None:
    limit = resolve_limit(
        user=None, roles={7: LimitSpec(0, D)}, server=LimitSpec(3, D), operator=OPERATOR
    )
    assert limit.blocked and limit.source == "role"


def test_server_default_then_operator_default() -> None:
    assert resolve_limit(user=None, roles={}, server=LimitSpec(2, H), operator=OPERATOR) == (
        EffectiveLimit(LimitSpec(2, H), "server")
    )
    assert resolve_limit(user=None, roles={}, server=None, operator=OPERATOR) == (
        EffectiveLimit(OPERATOR, "operator")
    )


def test_user_override_of_zero_blocks_even_with_generous_roles() -> None:
    limit = resolve_limit(
        user=LimitSpec(0, D), roles={7: LimitSpec(100, D)}, server=None, operator=OPERATOR
    )
    assert limit.blocked and limit.source == "user"


# --- window arithmetic ---------------------------------------------------------------


def test_a_use_counts_until_exactly_one_period_later() -> None:
    spec = LimitSpec(1, H)
    assert window_usage(spec, [1000.0], 1000.0 + H - 0.001).used == 1
    assert window_usage(spec, [1000.0], 1000.0 + H).used == 0


def test_next_slot_frees_at_oldest_use_plus_period() -> None:
    usage = window_usage(LimitSpec(3, D), [300.0, 100.0, 200.0], 1000.0)
    assert (usage.used, usage.remaining) == (3, 0)
    assert usage.next_free_at == 100.0 + D


def test_next_slot_is_now_while_under_the_limit() -> None:
    usage = window_usage(LimitSpec(3, D), [100.0], 1000.0)
    assert (usage.used, usage.remaining, usage.next_free_at) == (1, 2, 1000.0)
    assert usage.oldest_frees_at == 100.0 + D


def test_over_a_lowered_limit_the_slot_frees_when_enough_uses_leave() -> None:
    usage = window_usage(LimitSpec(2, D), [100.0, 200.0, 300.0, 400.0], 1000.0)
    assert usage.remaining == 0
    assert usage.next_free_at == 300.0 + D  # 100, 200 and 300 must leave to get under 2


def test_blocked_has_no_next_slot() -> None:
    assert window_usage(LimitSpec(0, D), [], 1000.0).next_free_at is None


def test_utc_calendar_boundaries() -> None:
    now = ts("2024-12-31T23:59:59")
    assert utc_day_start(now) == ts("2024-12-31T00:00:00")
    assert utc_next_day(now) == ts("2025-01-01T00:00:00")
    assert utc_month_start(now) == ts("2024-12-01T00:00:00")
    assert utc_next_month(now) == ts("2025-01-01T00:00:00")
    assert utc_next_month(ts("2024-02-01T00:00:00")) == ts("2024-03-01T00:00:00")


# --- the service on a real file ---------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(ts("2024-05-15T12:00:00"))


@pytest.fixture
async def storage(database_location: Path | str) -> AsyncIterator[Storage]:
    storage = await Storage.open(database_location)
    yield storage
    await storage.close()


@pytest.fixture
def service(storage: Storage, clock: FakeClock) -> LimitService:
    return LimitService(storage, default_limit=OPERATOR, clock=clock, clip_cost_usd=0.36)


async def _job(
    storage: Storage, user: int, at: float, *, cost: float = 0.36, prompt: str = "a fox"
) -> int:
    job = await storage.jobs.insert(
        NewJob(GUILD, 5, user, VideoRequest.create(prompt, seed=1), created_at=at, cost_usd=cost)
    )
    return job.id


async def test_service_resolves_through_the_database(service: LimitService) -> None:
    assert (await service.member_usage(GUILD, ALICE, [7])).limit.source == "operator"
    await service.set_server_default(GUILD, 4, "1d", actor_id=MOD)
    assert (await service.member_usage(GUILD, ALICE, [7])).limit.spec == LimitSpec(4, D)
    await service.set_role_limit(GUILD, 7, 2, "1h", actor_id=MOD)
    assert (await service.member_usage(GUILD, ALICE, [7])).limit == EffectiveLimit(
        LimitSpec(2, H), "role", 7
    )
    assert (await service.member_usage(GUILD, ALICE, [8])).limit.source == "server"
    await service.set_user_limit(GUILD, ALICE, 0, "1d", actor_id=MOD)
    assert (await service.member_usage(GUILD, ALICE, [7])).limit.blocked
    change = await service.clear_user_limit(GUILD, ALICE, actor_id=MOD)
    assert (change.before, change.after) == (LimitSpec(0, D), None)
    await service.clear_role_limit(GUILD, 7, actor_id=MOD)
    await service.clear_server_default(GUILD, actor_id=MOD)
    assert (await service.member_usage(GUILD, ALICE, [7])).limit.source == "operator"
    entries = await service.audit_log(GUILD)
    details = [(e.action, e.detail) for e in entries]
    assert len(details) == 6
    assert details[5] == ("set_server_default", "default: unset -> 4/1d")
    assert details[0] == ("clear_server_default", "default: 4/1d -> unset")
    assert (await service.member_usage(GUILD + 1, ALICE, [7])).limit.source == "operator"


async def test_a_change_that_changes_nothing_says_so_and_is_not_audited(
    service: LimitService,
) -> None:
    for change in (
        await service.clear_user_limit(GUILD, ALICE, actor_id=MOD),
        await service.clear_role_limit(GUILD, 7, actor_id=MOD),
        await service.clear_server_default(GUILD, actor_id=MOD),
    ):
        assert not change.changed and (change.before, change.after) == (None, None)
    assert await service.audit_log(GUILD) == []
    assert (await service.set_user_limit(GUILD, ALICE, 2, "1d", actor_id=MOD)).changed
    again = await service.set_user_limit(GUILD, ALICE, 2, "1d", actor_id=MOD)
    assert not again.changed and again.after == LimitSpec(2, D)
    assert len(await service.audit_log(GUILD)) == 1


@pytest.mark.parametrize("period", ["1 day", "5s", "0d", "53w", "", "d1", "1y"])
async def test_bad_period_names_the_accepted_forms_and_changes_nothing(
    service: LimitService, period: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await service.set_user_limit(GUILD, ALICE, 3, period, actor_id=MOD)
    assert "`30m`, `6h`, `1d` or `1w`" in caught.value.user_message
    assert await service.audit_log(GUILD) == []
    assert (await service.member_usage(GUILD, ALICE, [])).limit.source == "operator"


@pytest.mark.parametrize("period", ["9" * 2500, "x" * 2500, "`" * 2500 + "1d"])
async def test_a_long_bad_period_is_echoed_cut_short(service: LimitService, period: str) -> None:
    # The whole value echoed made the answer too long for Discord to take.
    with pytest.raises(ValidationError) as caught:
        await service.set_user_limit(GUILD, ALICE, 3, period, actor_id=MOD)
    assert len(caught.value.user_message) < 200
    assert "`30m`, `6h`, `1d` or `1w`" in caught.value.user_message


async def test_negative_count_is_refused(service: LimitService) -> None:
    with pytest.raises(ValidationError):
        await service.set_role_limit(GUILD, 7, -1, "1d", actor_id=MOD)
    assert await service.audit_log(GUILD) == []


async def test_member_usage_counts_only_the_window(
    service: LimitService, storage: Storage, clock: FakeClock
) -> None:
    await service.set_user_limit(GUILD, ALICE, 2, "1d", actor_id=MOD)
    now = clock.time()
    await _job(storage, ALICE, now - D)  # exactly one period ago: no longer counts
    first = await _job(storage, ALICE, now - 3 * H)
    await _job(storage, ALICE, now - H)
    await _job(storage, ALICE + 1, now - H)  # someone else
    usage = await service.member_usage(GUILD, ALICE, [])
    assert (usage.window.used, usage.window.remaining) == (2, 0)
    assert usage.window.next_free_at == now - 3 * H + D
    assert usage.override is not None and usage.override.set_by == MOD
    # A failed job that never reached Segmind frees its slot.
    await storage.jobs.update(first, now=now, state=JobState.FAILED)
    usage = await service.member_usage(GUILD, ALICE, [])
    assert (usage.window.used, usage.window.remaining) == (1, 1)


async def test_budget_and_usage_report(
    service: LimitService, storage: Storage, clock: FakeClock
) -> None:
    now = clock.time()
    await _job(storage, ALICE, ts("2024-04-30T23:00:00"))  # last month
    await _job(storage, ALICE, ts("2024-05-14T10:00:00"))  # this month, yesterday
    await _job(storage, ALICE, now - 60, prompt="a heron")
    await _job(storage, 2, now - 30, prompt="a storm")
    await service.set_budget(GUILD, actor_id=MOD, daily_clips=10, monthly_usd=20)
    status = await service.budget_status(GUILD)
    assert status.clips_today == 2 and status.daily_clip_cap == 10
    assert status.clips_this_month == 3
    assert status.spent_this_month_usd == pytest.approx(1.08)
    assert status.monthly_budget_usd == 20.0
    assert status.month_resets_at == ts("2024-06-01T00:00:00")

    report = await service.usage_report(GUILD, period="1d")
    assert [(t.user_id, t.clips) for t in report.totals] == [(ALICE, 1), (2, 1)]
    assert report.total_cost_usd == pytest.approx(0.72)
    assert [j.prompt for j in report.recent][:2] == ["a storm", "a heron"]
    only_alice = await service.usage_report(GUILD, period="4w", user_id=ALICE)
    assert [(t.user_id, t.clips) for t in only_alice.totals] == [(ALICE, 3)]
    assert {j.user_id for j in only_alice.recent} == {ALICE}

    await service.set_budget(GUILD, actor_id=MOD, daily_clips=0)
    status = await service.budget_status(GUILD)
    assert status.daily_clip_cap is None and status.monthly_budget_usd == 20.0


async def test_set_budget_needs_a_value(service: LimitService) -> None:
    with pytest.raises(ValidationError):
        await service.set_budget(GUILD, actor_id=MOD)
    with pytest.raises(ValidationError):
        await service.set_budget(GUILD, actor_id=MOD, monthly_usd=float("nan"))
    with pytest.raises(ValidationError, match=r"0\.01"):
        # Would round to $0.00, which means "no cap": the opposite of what was asked.
        await service.set_budget(GUILD, actor_id=MOD, monthly_usd=0.004)


async def test_overview_lists_default_overrides_and_roles(service: LimitService) -> None:
    overview = await service.overview(GUILD)
    assert overview.server_default == EffectiveLimit(OPERATOR, "operator")
    await service.set_server_default(GUILD, 2, "6h", actor_id=MOD)
    await service.set_user_limit(GUILD, ALICE, 1, "1w", actor_id=MOD)
    await service.set_role_limit(GUILD, 7, 9, "1d", actor_id=MOD)
    await service.set_moderator_role(GUILD, 70, actor_id=MOD)
    await service.set_alert_channel(GUILD, 80, actor_id=MOD)
    overview = await service.overview(GUILD)
    assert overview.server_default == EffectiveLimit(LimitSpec(2, 6 * H), "server")
    assert [(u.target_id, u.spec) for u in overview.user_limits] == [(ALICE, LimitSpec(1, W))]
    assert [(r.target_id, r.spec) for r in overview.role_limits] == [(7, LimitSpec(9, D))]
    assert await service.moderator_role_id(GUILD) == 70
    assert await service.alert_channel_id(GUILD) == 80
