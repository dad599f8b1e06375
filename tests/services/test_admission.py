"""The admission gate: limits, caps and credits checked and the job stored atomically."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

import services.admission as admission_module
from services.admission import (
    BATCH_LIMIT,
    DUPLICATE_WINDOW_SECONDS,
    Admission,
    Admitted,
    DuplicateRequest,
    LimitReached,
    MemberBlocked,
)
from services.errors import (
    ConfigurationError,
    RefusedError,
    SegmindAuthError,
    SegmindInsufficientCredits,
)
from services.gates import AccountGates, AccountPaused
from services.models import Job, JobOrigin, JobState, VideoRequest, reroll_fingerprint
from services.periods import LimitSpec
from services.spend_caps import BudgetExhausted, SpendCeilingReached, spent_today
from services.storage import Storage
from services.storage.database import DATABASE_ERRORS, Transaction
from tests.fakeclock import FakeClock

H, D = 3600, 86400
GUILD, OTHER_GUILD = 10, 20
ALICE, BOB, MOD = 1, 2, 99
ROLE = 7
PRICE = 0.36
# A number past 64 bits: sqlite3 refuses it before SQLite sees it, asyncpg as a DataError.
TOO_LARGE: tuple[type[Exception], ...] = (OverflowError, *DATABASE_ERRORS)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(ts("2024-05-15T12:00:00"))


@pytest.fixture
async def storage(database_location: Path | str) -> AsyncIterator[Storage]:
    storage = await Storage.open(database_location)
    yield storage
    await storage.close()


@pytest.fixture
def gates(clock: FakeClock) -> AccountGates:
    return AccountGates.create(clock, recheck_seconds=600)


@pytest.fixture
def admission(storage: Storage, clock: FakeClock, gates: AccountGates) -> Admission:
    return Admission(
        storage, default_limit=LimitSpec(3, D), clip_cost_usd=PRICE, clock=clock, gates=gates
    )


REQUEST = VideoRequest.create("a lighthouse in a storm", seed=42)


def origin(
    user: int = ALICE,
    guild: int = GUILD,
    roles: tuple[int, ...] = (),
    fingerprint: str | None = None,
) -> JobOrigin:
    return JobOrigin(
        guild_id=guild, channel_id=5, user_id=user, role_ids=roles, fingerprint=fingerprint
    )


async def count_jobs(storage: Storage, guild: int = GUILD) -> int:
    return len(await storage.jobs.recent(guild, limit=1000))


async def test_admitted_job_is_stored_queued_and_priced(
    admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    admitted = await admission.admit(REQUEST, origin())
    assert (admitted.used, admitted.remaining, admitted.cost_usd) == (1, 2, PRICE)
    assert admitted.limit.source == "operator"
    stored = await storage.jobs.get(admitted.job.id)
    assert stored is not None and stored.state is JobState.QUEUED
    assert stored.cost_usd == PRICE == admitted.job.cost_usd
    assert stored.created_at == clock.time()
    assert admitted.limit.spec == LimitSpec(3, D)


async def test_refusal_names_the_role_limit_and_next_slot(
    admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    await storage.limits.set_role_limit(GUILD, ROLE, LimitSpec(2, D), actor_id=MOD, at=0.0)
    first = clock.time()
    await admission.admit(REQUEST, origin(roles=(ROLE, 8)))
    clock.advance(H)
    await admission.admit(REQUEST, origin(roles=(ROLE, 8)))
    clock.advance(H)
    with pytest.raises(RefusedError) as caught:
        await admission.admit(REQUEST, origin(roles=(ROLE, 8)))
    refusal = caught.value
    assert isinstance(refusal, LimitReached)
    assert refusal.retry_at == refusal.next_free_at == first + D
    assert (refusal.limit.source, refusal.limit.role_id) == ("role", ROLE)
    assert refusal.limit.spec == LimitSpec(2, D)
    assert await count_jobs(storage) == 2


async def test_window_edge_frees_the_slot_exactly_one_period_after_the_oldest_use(
    admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    await storage.limits.set_user_limit(GUILD, ALICE, LimitSpec(1, 30 * 60), actor_id=MOD, at=0.0)
    await admission.admit(REQUEST, origin())
    clock.advance(30 * 60 - 0.5)  # halves are exact in binary floats
    with pytest.raises(RefusedError) as caught:
        await admission.admit(REQUEST, origin())
    assert isinstance(caught.value, LimitReached)
    assert caught.value.limit.source == "user"
    clock.advance(0.5)
    admitted = await admission.admit(REQUEST, origin())
    assert (admitted.used, admitted.remaining) == (1, 0)


async def test_blocked_member_is_refused_without_a_retry_time(
    admission: Admission, storage: Storage
) -> None:
    await storage.limits.set_user_limit(GUILD, ALICE, LimitSpec(0, D), actor_id=MOD, at=0.0)
    with pytest.raises(RefusedError) as caught:
        await admission.admit(REQUEST, origin(roles=(ROLE,)))
    assert isinstance(caught.value, MemberBlocked)
    assert caught.value.limit.source == "user"
    assert caught.value.retry_at is None
    assert await count_jobs(storage) == 0
    await admission.admit(REQUEST, origin(BOB, roles=(ROLE,)))  # others are not affected


async def test_ten_simultaneous_requests_under_a_limit_of_three_give_three_jobs(
    admission: Admission, storage: Storage
) -> None:
    results = await asyncio.gather(
        *(admission.admit(REQUEST, origin()) for _ in range(10)), return_exceptions=True
    )
    admitted = [r for r in results if isinstance(r, Admitted)]
    refused = [r for r in results if isinstance(r, RefusedError)]
    assert (len(admitted), len(refused)) == (3, 7)
    assert sorted(a.used for a in admitted) == [1, 2, 3]
    assert await count_jobs(storage) == 3


async def test_failed_job_without_request_id_frees_its_slot(
    admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    jobs = [await admission.admit(REQUEST, origin()) for _ in range(3)]
    with pytest.raises(RefusedError):
        await admission.admit(REQUEST, origin())
    # Segmind surely refused this one: it never got a request_id.
    await storage.jobs.update(jobs[0].job.id, now=clock.time(), state=JobState.FAILED)
    admitted = await admission.admit(REQUEST, origin())
    assert (admitted.used, admitted.remaining) == (3, 0)


async def test_failed_job_with_request_id_keeps_counting(
    admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    jobs = [await admission.admit(REQUEST, origin()) for _ in range(3)]
    await storage.jobs.update(
        jobs[0].job.id, now=clock.time(), state=JobState.FAILED, request_id="seg-1"
    )
    with pytest.raises(RefusedError):
        await admission.admit(REQUEST, origin())
    assert await count_jobs(storage) == 3


async def test_limits_are_per_server(admission: Admission, storage: Storage) -> None:
    for _ in range(3):
        await admission.admit(REQUEST, origin())
    with pytest.raises(RefusedError):
        await admission.admit(REQUEST, origin())
    admitted = await admission.admit(REQUEST, origin(guild=OTHER_GUILD))
    assert admitted.used == 1


async def test_daily_cap_refuses_and_alerts_once_per_utc_day(
    admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    await storage.limits.update_guild_settings(
        GUILD, actor_id=MOD, at=0.0, action="set_budget", daily_clip_cap=2
    )
    await admission.admit(REQUEST, origin(ALICE))
    await admission.admit(REQUEST, origin(BOB))
    with pytest.raises(BudgetExhausted) as first:
        await admission.admit(REQUEST, origin(3))
    assert first.value.kind == "daily"
    assert first.value.tell_moderators
    assert first.value.retry_at == first.value.resets_at == ts("2024-05-16T00:00:00")
    assert first.value.cap == 2
    with pytest.raises(BudgetExhausted) as second:
        await admission.admit(REQUEST, origin(4))
    assert not second.value.tell_moderators  # moderators were already told today
    assert await count_jobs(storage) == 2

    clock.advance(ts("2024-05-16T00:00:00") - clock.time())  # a new UTC day
    await admission.admit(REQUEST, origin(3))
    await admission.admit(REQUEST, origin(4))
    with pytest.raises(BudgetExhausted) as next_day:
        await admission.admit(REQUEST, origin(5))
    assert next_day.value.tell_moderators


async def test_a_raised_cap_that_is_reached_again_alerts_again(
    admission: Admission, storage: Storage
) -> None:
    await storage.limits.update_guild_settings(
        GUILD, actor_id=MOD, at=0.0, action="set_budget", daily_clip_cap=1
    )
    await admission.admit(REQUEST, origin(ALICE))
    with pytest.raises(BudgetExhausted) as first:
        await admission.admit(REQUEST, origin(BOB))
    assert first.value.tell_moderators
    await storage.limits.update_guild_settings(
        GUILD, actor_id=MOD, at=1.0, action="set_budget", daily_clip_cap=2
    )
    await admission.admit(REQUEST, origin(BOB))
    with pytest.raises(BudgetExhausted) as again:
        await admission.admit(REQUEST, origin(3))
    assert again.value.tell_moderators and again.value.cap == 2


async def test_monthly_budget_allows_the_clip_that_fits_and_refuses_the_next(
    admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    await storage.limits.update_guild_settings(
        GUILD, actor_id=MOD, at=0.0, action="set_budget", monthly_budget_usd=0.72
    )
    await admission.admit(REQUEST, origin(ALICE))
    await admission.admit(REQUEST, origin(BOB))  # 0.36 + 0.36 == 0.72 fits exactly
    with pytest.raises(BudgetExhausted) as caught:
        await admission.admit(REQUEST, origin(3))
    assert caught.value.kind == "monthly"
    assert caught.value.tell_moderators
    assert caught.value.retry_at == ts("2024-06-01T00:00:00")
    assert (caught.value.budget_usd, caught.value.spent_usd) == (0.72, 0.72)
    assert await count_jobs(storage) == 2
    clock.advance(ts("2024-06-01T00:00:00") - clock.time())
    assert (await admission.admit(REQUEST, origin(3))).used == 1


async def test_monthly_budget_refusal_says_what_is_left_when_a_clip_does_not_fit(
    admission: Admission, storage: Storage
) -> None:
    await storage.limits.update_guild_settings(
        GUILD, actor_id=MOD, at=0.0, action="set_budget", monthly_budget_usd=0.50
    )
    await admission.admit(REQUEST, origin(ALICE))  # $0.36 spent, $0.14 left
    with pytest.raises(BudgetExhausted) as caught:
        await admission.admit(REQUEST, origin(BOB))
    assert (caught.value.budget_usd, caught.value.clip_cost_usd) == (0.50, PRICE)
    assert caught.value.spent_usd == pytest.approx(0.36)


async def test_a_daily_cap_of_one_clip_is_said_in_the_singular(
    admission: Admission, storage: Storage
) -> None:
    await storage.limits.update_guild_settings(
        GUILD, actor_id=MOD, at=0.0, action="set_budget", daily_clip_cap=1
    )
    await admission.admit(REQUEST, origin(ALICE))
    with pytest.raises(BudgetExhausted) as caught:
        await admission.admit(REQUEST, origin(BOB))
    assert (caught.value.kind, caught.value.cap) == ("daily", 1)


async def test_a_failed_unsubmitted_job_is_not_spent(
    admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    await storage.limits.update_guild_settings(
        GUILD, actor_id=MOD, at=0.0, action="set_budget", monthly_budget_usd=0.36
    )
    first = await admission.admit(REQUEST, origin(ALICE))
    await storage.jobs.update(first.job.id, now=clock.time(), state=JobState.FAILED)
    await admission.admit(REQUEST, origin(BOB))


async def test_out_of_credits_refuses_before_storing(
    admission: Admission, storage: Storage, gates: AccountGates
) -> None:
    gates.credits.pause(SegmindInsufficientCredits())
    with pytest.raises(AccountPaused) as caught:
        await admission.admit(REQUEST, origin())
    assert caught.value.user_message == SegmindInsufficientCredits.user_message
    assert await count_jobs(storage) == 0


async def test_a_rejected_key_refuses_privately_until_a_recheck_succeeds(
    admission: Admission, storage: Storage, clock: FakeClock, gates: AccountGates
) -> None:
    gates.key.pause(SegmindAuthError(status=401))
    with pytest.raises(AccountPaused) as caught:
        await admission.admit(REQUEST, origin(ALICE))
    assert caught.value.user_message == ConfigurationError.user_message
    assert isinstance(caught.value.cause, SegmindAuthError)  # what moderators are told
    clock.advance(601)
    assert (await admission.admit(REQUEST, origin(ALICE))).used == 1  # the recheck
    with pytest.raises(AccountPaused):  # held back until the recheck answers
        await admission.admit(REQUEST, origin(BOB))
    gates.resume()  # Segmind accepted the recheck
    assert (await admission.admit(REQUEST, origin(BOB))).used == 1


async def test_limit_refusal_does_not_spend_the_credit_recheck(
    admission: Admission, storage: Storage, clock: FakeClock, gates: AccountGates
) -> None:
    await storage.limits.set_user_limit(GUILD, ALICE, LimitSpec(0, D), actor_id=MOD, at=0.0)
    gates.credits.pause(SegmindInsufficientCredits())
    clock.advance(601)  # the gate will let one request through as the check
    with pytest.raises(RefusedError) as caught:
        await admission.admit(REQUEST, origin(ALICE))
    assert isinstance(caught.value, MemberBlocked)
    assert (await admission.admit(REQUEST, origin(BOB))).used == 1


async def test_a_credits_pause_does_not_spend_the_keys_recheck(
    admission: Admission, clock: FakeClock, gates: AccountGates
) -> None:
    gates.key.pause(SegmindAuthError(status=401))
    clock.advance(300)
    gates.credits.pause(SegmindInsufficientCredits())
    clock.advance(301)  # the key's recheck is due, the credits' is not
    admitted = await admission.admit(REQUEST, origin(ALICE))  # the key's recheck
    assert admitted.used == 1
    with pytest.raises(AccountPaused) as held:
        await admission.admit(REQUEST, origin(BOB))
    assert isinstance(held.value.cause, SegmindAuthError)  # still waiting on the key's answer


# --- the operator's daily ceiling, across all servers --------------------------------------


@pytest.fixture
def ceiling_admission(storage: Storage, clock: FakeClock, gates: AccountGates) -> Admission:
    """Admission under MAX_DAILY_SPEND_USD of two clips' worth, across every server."""
    return Admission(
        storage,
        default_limit=LimitSpec(3, D),
        clip_cost_usd=PRICE,
        clock=clock,
        gates=gates,
        daily_spend_ceiling_usd=2 * PRICE,
    )


async def test_the_operators_ceiling_holds_across_servers_and_resets_at_utc_midnight(
    ceiling_admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    await ceiling_admission.admit(REQUEST, origin(ALICE, GUILD))
    await ceiling_admission.admit(REQUEST, origin(BOB, OTHER_GUILD))
    with pytest.raises(SpendCeilingReached) as here:
        await ceiling_admission.admit(REQUEST, origin(3, GUILD))
    with pytest.raises(SpendCeilingReached) as there:
        await ceiling_admission.admit(REQUEST, origin(4, OTHER_GUILD))
    assert here.value.retry_at == here.value.resets_at == ts("2024-05-16T00:00:00")
    assert (here.value.ceiling_usd, here.value.spent_usd) == (2 * PRICE, pytest.approx(2 * PRICE))
    # Each server's moderators are told once that day; no job was stored for a refusal.
    assert here.value.tell_moderators and there.value.tell_moderators
    with pytest.raises(SpendCeilingReached) as again:
        await ceiling_admission.admit(REQUEST, origin(5, GUILD))
    assert not again.value.tell_moderators
    assert await count_jobs(storage, GUILD) == 1 == await count_jobs(storage, OTHER_GUILD)
    for job_id in (1, 2):  # both sent, and billed, that same day
        await storage.jobs.update(
            job_id, now=clock.time(), state=JobState.DELIVERED, request_id=f"r-{job_id}"
        )

    clock.advance(ts("2024-05-16T00:00:00") - clock.time())
    await ceiling_admission.admit(REQUEST, origin(3, GUILD))


async def test_the_operator_reads_one_error_line_per_day_naming_the_ceiling(
    ceiling_admission: Admission, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.admission")
    await ceiling_admission.admit(REQUEST, origin(ALICE, GUILD))
    await ceiling_admission.admit(REQUEST, origin(BOB, GUILD))
    for user, guild in ((3, GUILD), (4, OTHER_GUILD), (5, GUILD)):
        with pytest.raises(SpendCeilingReached):
            await ceiling_admission.admit(REQUEST, origin(user, guild))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "MAX_DAILY_SPEND_USD=0.72 reached" in errors[0]


async def test_a_ceiling_counts_what_the_budgets_count(
    ceiling_admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    first = await ceiling_admission.admit(REQUEST, origin(ALICE, GUILD))
    second = await ceiling_admission.admit(REQUEST, origin(BOB, OTHER_GUILD))
    # Segmind surely refused the first: it costs nothing and no longer counts.
    await storage.jobs.update(first.job.id, now=clock.time(), state=JobState.FAILED)
    # Segmind accepted the second, then it failed: billed, so it keeps counting.
    await storage.jobs.update(
        second.job.id, now=clock.time(), state=JobState.FAILED, request_id="seg-2"
    )
    await ceiling_admission.admit(REQUEST, origin(3, GUILD))
    with pytest.raises(SpendCeilingReached):
        await ceiling_admission.admit(REQUEST, origin(4, GUILD))


async def test_without_a_ceiling_spend_is_bounded_only_by_the_servers_limits(
    admission: Admission, storage: Storage
) -> None:
    for guild in range(100, 110):
        await admission.admit(REQUEST, origin(ALICE, guild))
    assert sum([await count_jobs(storage, g) for g in range(100, 110)]) == 10


async def test_simultaneous_requests_from_many_servers_never_pass_the_ceiling(
    ceiling_admission: Admission, storage: Storage
) -> None:
    results = await asyncio.gather(
        *(ceiling_admission.admit(REQUEST, origin(user, 100 + user)) for user in range(10)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Admitted) for r in results) == 2
    assert sum(isinstance(r, SpendCeilingReached) for r in results) == 8


# --- one click, one clip ---------------------------------------------------------------------

CLICK = reroll_fingerprint(41)


async def test_the_same_request_moments_later_points_at_the_first_and_costs_nothing(
    admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    first = await admission.admit(REQUEST, origin(fingerprint=CLICK))
    await storage.jobs.update(first.job.id, now=clock.time(), message_id=777)
    clock.advance(DUPLICATE_WINDOW_SECONDS - 1)
    with pytest.raises(DuplicateRequest) as caught:
        await admission.admit(REQUEST.with_seed(43), origin(fingerprint=CLICK))
    repeat = caught.value
    assert (repeat.job_id, repeat.message_id, repeat.channel_id) == (first.job.id, 777, 5)
    assert repeat.retry_at is None
    assert await count_jobs(storage) == 1
    # Not counted: the member still has two of three clips.
    assert (await admission.admit(REQUEST, origin())).used == 2


async def test_two_clicks_at_once_make_one_job(admission: Admission, storage: Storage) -> None:
    results = await asyncio.gather(
        admission.admit(REQUEST, origin(fingerprint=CLICK)),
        admission.admit(REQUEST.with_seed(7), origin(fingerprint=CLICK)),
        return_exceptions=True,
    )
    [admitted] = [r for r in results if isinstance(r, Admitted)]
    [repeat] = [r for r in results if isinstance(r, DuplicateRequest)]
    assert repeat.job_id == admitted.job.id
    assert await count_jobs(storage) == 1
    stored = await storage.jobs.get(admitted.job.id)
    assert stored is not None and stored.fingerprint == CLICK


async def test_a_double_click_at_the_limit_hears_of_the_first_not_of_the_limit(
    admission: Admission,
) -> None:
    await admission.admit(REQUEST, origin())
    await admission.admit(REQUEST, origin())
    await admission.admit(REQUEST, origin(fingerprint=CLICK))  # the third of three
    with pytest.raises(DuplicateRequest):
        await admission.admit(REQUEST, origin(fingerprint=CLICK))


async def test_the_same_request_is_new_again_after_the_window(
    admission: Admission, clock: FakeClock
) -> None:
    await admission.admit(REQUEST, origin(fingerprint=CLICK))
    clock.advance(DUPLICATE_WINDOW_SECONDS + 0.01)
    assert (await admission.admit(REQUEST, origin(fingerprint=CLICK))).used == 2


@pytest.mark.parametrize(
    "other",
    [origin(BOB, fingerprint=CLICK), origin(guild=OTHER_GUILD, fingerprint=CLICK)],
    ids=["another member", "another server"],
)
async def test_the_same_fingerprint_from_someone_else_or_elsewhere_is_another_request(
    admission: Admission, other: JobOrigin
) -> None:
    await admission.admit(REQUEST, origin(fingerprint=CLICK))
    assert (await admission.admit(REQUEST, other)).used == 1


async def test_requests_without_a_fingerprint_are_never_merged(
    admission: Admission, storage: Storage
) -> None:
    await admission.admit(REQUEST, origin())
    await admission.admit(REQUEST, origin())
    assert await count_jobs(storage) == 2


@pytest.mark.parametrize(
    "ending",
    [
        {"state": JobState.CANCELLED, "error": "not acknowledged"},  # abandoned: never shown
        {"state": JobState.CANCELLED},
        {"state": JobState.FAILED},
    ],
    ids=["abandoned", "cancelled", "failed"],
)
async def test_asking_again_after_the_first_ended_without_a_clip_is_a_retry(
    admission: Admission, storage: Storage, clock: FakeClock, ending: dict[str, object]
) -> None:
    first = await admission.admit(REQUEST, origin(fingerprint=CLICK))
    await storage.jobs.update(first.job.id, now=clock.time(), **ending)
    again = await admission.admit(REQUEST, origin(fingerprint=CLICK))
    assert again.job.id != first.job.id


async def test_clips_queued_before_utc_midnight_still_bound_the_next_days_bill(
    ceiling_admission: Admission, clock: FakeClock
) -> None:
    # Two clips a day. Two admitted at 23:59:58 wait in line: Segmind bills them when they
    # are sent, after midnight, so the new day's ceiling already holds them.
    clock.advance(ts("2024-05-15T23:59:58") - clock.time())
    await ceiling_admission.admit(REQUEST, origin(1, GUILD))
    await ceiling_admission.admit(REQUEST, origin(2, OTHER_GUILD))
    clock.advance(4)
    with pytest.raises(SpendCeilingReached):
        await ceiling_admission.admit(REQUEST, origin(3, GUILD))


async def test_a_repeat_of_a_request_whose_outcome_is_unknown_is_not_sent_again(
    admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    # The first click's submit may have been billed (its answer was lost): the second
    # click of the double click must not bill again.
    first = await admission.admit(REQUEST, origin(fingerprint=CLICK))
    await storage.jobs.update(first.job.id, now=clock.time(), state=JobState.UNKNOWN)
    clock.advance(2)
    with pytest.raises(DuplicateRequest):
        await admission.admit(REQUEST, origin(fingerprint=CLICK))


# --- a burst: admissions that arrive together share one transaction --------------------------


def watch_transactions(
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
    before_commit: Callable[[], object] | None = None,
) -> list[int]:
    """Count the transactions opened on ``storage`` from now on (one entry each).

    ``before_commit`` runs as each one's statements are done, just before its COMMIT.
    """
    real = storage.db.transaction
    opened: list[int] = []

    @asynccontextmanager
    async def transaction(*, durable: bool = False) -> AsyncIterator[Transaction]:
        opened.append(1)
        async with real(durable=durable) as tx:
            yield tx
            if before_commit is not None:
                before_commit()

    monkeypatch.setattr(storage.db, "transaction", transaction)
    return opened


async def queued_jobs(storage: Storage, user: int, guild: int = GUILD) -> list[Job]:
    jobs = await storage.jobs.recent(guild, limit=1000, user_id=user)
    return [job for job in jobs if job.state is JobState.QUEUED]


async def test_a_burst_from_one_member_under_a_limit_of_three_gives_three_jobs_in_one_commit(
    admission: Admission, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = watch_transactions(storage, monkeypatch)
    results = await asyncio.gather(
        *(admission.admit(REQUEST, origin()) for _ in range(50)), return_exceptions=True
    )
    admitted = [r for r in results if isinstance(r, Admitted)]
    assert sorted(a.used for a in admitted) == [1, 2, 3]
    assert all(isinstance(r, LimitReached) for r in results if not isinstance(r, Admitted))
    assert await count_jobs(storage) == 3
    assert len(opened) == 1  # not fifty commits, each waiting for the one before


BUDGET_GUILD = 30


def mixed_burst() -> list[tuple[VideoRequest, JobOrigin]]:
    """Members with their own limits, double clicks, and a server whose budget runs out."""
    burst = []
    for i in range(36):
        user, guild = i % 7, BUDGET_GUILD if i % 3 == 0 else GUILD
        fingerprint = reroll_fingerprint(i) if i % 5 == 0 else None
        burst.append((REQUEST.with_seed(i), origin(user, guild, fingerprint=fingerprint)))
        if fingerprint is not None:  # the second click of a double click
            burst.append((REQUEST.with_seed(i), origin(user, guild, fingerprint=fingerprint)))
    return burst


class TickingClock(FakeClock):
    """A second passes at every reading: windows roll while a burst is decided."""

    def time(self) -> float:
        self.advance(1.0)
        return super().time()


async def set_limits(storage: Storage) -> None:
    await storage.limits.set_user_limit(GUILD, 1, LimitSpec(5, D), actor_id=MOD, at=0.0)
    await storage.limits.set_user_limit(GUILD, 3, LimitSpec(2, 15), actor_id=MOD, at=0.0)
    await storage.limits.set_user_limit(GUILD, 2, LimitSpec(0, D), actor_id=MOD, at=0.0)
    await storage.limits.update_guild_settings(
        BUDGET_GUILD, actor_id=MOD, at=0.0, action="set_budget", monthly_budget_usd=4 * PRICE
    )


def outcome_of(result: Admitted | BaseException) -> tuple[object, ...]:
    if isinstance(result, Admitted):
        job = result.job
        return ("admitted", job.id, job.guild_id, job.user_id, result.used, result.remaining)
    if isinstance(result, DuplicateRequest):
        return ("repeat", result.job_id)
    if isinstance(result, BudgetExhausted):
        return ("budget", result.kind, result.tell_moderators, result.spent_usd)
    if isinstance(result, LimitReached):
        return ("limit", result.used, result.next_free_at)
    return (type(result).__name__,)


async def test_a_mixed_burst_is_decided_exactly_as_one_request_at_a_time(
    database_locations: Callable[[], Awaitable[Path | str]],
) -> None:
    decisions = []
    for together in (False, True):
        storage = await Storage.open(await database_locations())
        try:
            await set_limits(storage)
            clock = TickingClock(ts("2024-05-15T12:00:00"))
            admission = Admission(
                storage,
                default_limit=LimitSpec(3, D),
                clip_cost_usd=PRICE,
                clock=clock,
                gates=AccountGates.create(clock, recheck_seconds=600),
            )
            burst = [admission.admit(request, where) for request, where in mixed_burst()]
            if together:
                results = await asyncio.gather(*burst, return_exceptions=True)
            else:
                results = []
                for admit in burst:
                    try:
                        results.append(await admit)
                    except RefusedError as refusal:
                        results.append(refusal)
            decisions.append([outcome_of(r) for r in results])
            alerts = await storage.db.fetchall("SELECT guild_id, key FROM alerts_sent")
            decisions.append(sorted(tuple(row) for row in alerts))
        finally:
            await storage.close()
    alone, alone_alerts, burst_decisions, burst_alerts = decisions
    assert burst_decisions == alone
    assert burst_alerts == alone_alerts == [(BUDGET_GUILD, "budget:monthly:2024-05:1.44")]
    kinds = {decision[0] for decision in alone}
    assert kinds == {"admitted", "repeat", "budget", "limit", "MemberBlocked"}
    admitted = [d for d in alone if d[0] == "admitted"]
    assert sum(d[2] == BUDGET_GUILD for d in admitted) == 4  # the budget's four clips
    assert sum(d[2] == GUILD and d[3] == 1 for d in admitted) == 4  # past the default 3


async def test_an_unexpected_error_in_one_request_fails_it_alone(
    admission: Admission, storage: Storage
) -> None:
    # No engine stores a channel id this large: the insert fails, for this request only.
    broken = JobOrigin(guild_id=GUILD, channel_id=2**70, user_id=BOB, role_ids=())
    results = await asyncio.gather(
        admission.admit(REQUEST, origin(ALICE)),
        admission.admit(REQUEST, broken),
        admission.admit(REQUEST, origin(3)),
        admission.admit(REQUEST, origin(4)),
        return_exceptions=True,
    )
    assert isinstance(results[1], TOO_LARGE)
    assert [type(r) for r in results[::2]] == [Admitted, Admitted]
    assert isinstance(results[3], Admitted)
    assert await count_jobs(storage) == 3
    assert await queued_jobs(storage, BOB) == []
    assert (await admission.admit(REQUEST, origin(BOB))).used == 1  # and the line goes on


async def test_a_server_whose_settings_cannot_be_read_fails_only_its_own_request(
    admission: Admission, storage: Storage
) -> None:
    # No server has this id (no engine can even look it up): its reads fail, and only it.
    unreadable = JobOrigin(guild_id=2**70, channel_id=5, user_id=BOB, role_ids=())
    results = await asyncio.gather(
        admission.admit(REQUEST, origin(ALICE)),
        admission.admit(REQUEST, unreadable),
        admission.admit(REQUEST, origin(3, OTHER_GUILD)),
        return_exceptions=True,
    )
    assert isinstance(results[1], TOO_LARGE)
    assert isinstance(results[0], Admitted) and isinstance(results[2], Admitted)


async def test_a_caller_cancelled_in_line_writes_nothing_and_the_others_go_on(
    admission: Admission, storage: Storage
) -> None:
    tasks = [asyncio.ensure_future(admission.admit(REQUEST, origin(user))) for user in range(70)]
    await asyncio.sleep(0)  # all in line; the first batch of 64 is being decided
    tasks[-1].cancel()
    await asyncio.wait(tasks)
    assert tasks[-1].cancelled()
    assert all(isinstance(task.result(), Admitted) for task in tasks[:-1])
    assert await queued_jobs(storage, 69) == []
    assert await count_jobs(storage) == 69


class ClockWithHook(FakeClock):
    """A FakeClock that calls ``hook`` on its ``n``-th reading (admission reads it once each)."""

    def __init__(self, start: float, n: int, hook: Callable[[], None]) -> None:
        super().__init__(start)
        self._left, self._hook = n, hook

    def time(self) -> float:
        self._left -= 1
        if self._left == 0:
            self._hook()
        return super().time()


async def test_callers_cancelled_while_their_batch_is_decided_get_no_job(
    storage: Storage, gates: AccountGates
) -> None:
    tasks: list[asyncio.Task[Admitted]] = []

    def cancel_two() -> None:
        tasks[2].cancel()  # decided already: its job must not be committed
        tasks[7].cancel()  # not decided yet: it must not be

    clock = ClockWithHook(ts("2024-05-15T12:00:00"), 5, cancel_two)
    admission = Admission(
        storage, default_limit=LimitSpec(3, D), clip_cost_usd=PRICE, clock=clock, gates=gates
    )
    tasks += [asyncio.ensure_future(admission.admit(REQUEST, origin(user))) for user in range(10)]
    await asyncio.wait(tasks)
    assert [task.cancelled() for task in tasks] == [i in (2, 7) for i in range(10)]
    for user, task in enumerate(tasks):
        jobs = await queued_jobs(storage, user)
        assert [job.id for job in jobs] == ([] if task.cancelled() else [task.result().job.id])
    # Nothing of the cancelled ones counts: each member still has all three clips.
    assert (await admission.admit(REQUEST, origin(2))).used == 1


async def test_a_caller_cancelled_during_the_commit_has_its_job_ended_unsent(
    admission: Admission, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks: list[asyncio.Task[Admitted]] = []
    watch_transactions(storage, monkeypatch, before_commit=lambda: tasks[1].cancel())
    tasks += [asyncio.ensure_future(admission.admit(REQUEST, origin(user))) for user in range(3)]
    await asyncio.wait(tasks)
    assert tasks[1].cancelled()
    assert isinstance(tasks[0].result(), Admitted) and isinstance(tasks[2].result(), Admitted)
    [stored] = await storage.jobs.recent(GUILD, limit=10, user_id=1)
    assert (stored.state, stored.error) == (JobState.CANCELLED, "not acknowledged")
    assert await count_jobs(storage) == 3


async def test_a_burst_is_decided_in_batches_of_at_most_64(
    admission: Admission, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = watch_transactions(storage, monkeypatch)
    results = await asyncio.gather(*(admission.admit(REQUEST, origin(u)) for u in range(150)))
    assert len(results) == 150 and await count_jobs(storage) == 150
    assert len(opened) == 3  # 64 + 64 + 22


async def test_a_batch_limit_of_one_gives_each_request_its_own_transaction(
    storage: Storage, clock: FakeClock, gates: AccountGates, monkeypatch: pytest.MonkeyPatch
) -> None:
    admission = Admission(
        storage,
        default_limit=LimitSpec(3, D),
        clip_cost_usd=PRICE,
        clock=clock,
        gates=gates,
        batch_limit=1,
    )
    opened = watch_transactions(storage, monkeypatch)
    results = await asyncio.gather(
        *(admission.admit(REQUEST, origin()) for _ in range(10)), return_exceptions=True
    )
    assert sum(isinstance(r, Admitted) for r in results) == 3
    assert len(opened) == 10


async def test_a_double_click_whose_first_caller_left_names_a_job_that_exists(
    admission: Admission, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks: list[asyncio.Task[Admitted]] = []
    insert = storage.jobs.insert

    async def insert_then_leave(*args: object, **kwargs: object) -> Job:
        job = await insert(*args, **kwargs)  # type: ignore[arg-type]
        tasks[0].cancel()  # the first click's caller leaves once its job is decided
        return job

    monkeypatch.setattr(storage.jobs, "insert", insert_then_leave)
    tasks += [
        asyncio.ensure_future(admission.admit(REQUEST, origin(fingerprint=CLICK))) for _ in range(2)
    ]
    await asyncio.wait(tasks)

    assert tasks[0].cancelled()
    repeat = tasks[1].exception()
    assert isinstance(repeat, DuplicateRequest)
    named = await storage.jobs.get(repeat.job_id)
    assert named is not None  # the earlier job it names was kept, and ended unsent
    assert (named.state, named.error) == (JobState.CANCELLED, "not acknowledged")


async def test_a_caller_cancelled_just_after_its_answer_has_its_job_ended(
    admission: Admission, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks: list[asyncio.Task[Admitted]] = []
    answer = admission_module._answer

    def answer_then_leave(waiting: object, outcome: object) -> None:
        answer(waiting, outcome)  # type: ignore[arg-type]
        tasks[0].cancel()  # the interaction handler is cancelled before it reads it

    monkeypatch.setattr(admission_module, "_answer", answer_then_leave)
    tasks.append(asyncio.ensure_future(admission.admit(REQUEST, origin())))
    await asyncio.wait(tasks)
    await admission.drain()

    assert tasks[0].cancelled()
    [stored] = await storage.jobs.recent(GUILD, limit=10, user_id=1)
    # Never acknowledged, so never run: it must not hold the member's place until a restart.
    assert (stored.state, stored.error) == (JobState.CANCELLED, "not acknowledged")


# --- reserved at what Segmind charges ------------------------------------------------------

BIG = VideoRequest.create("a storm over the sea", seed=1, input_frames=60, steps=50)
SEGMIND_PRICE = 0.80  # what Segmind reports for BIG's size, above CLIP_COST_USD


async def segmind_reports(storage: Storage, job: Job, now: float, cost: float) -> None:
    """Segmind accepted the job and its result reports ``cost`` (as the runner stores it)."""
    await storage.jobs.update(job.id, now=now, request_id=f"r-{job.id}")
    await storage.jobs.update(job.id, now=now, cost_usd=cost, cost_reported=True)


async def test_a_job_is_reserved_at_what_segmind_lately_charged_for_its_size(
    admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    first = await admission.admit(BIG, origin(ALICE))
    assert first.job.cost_usd == first.cost_usd == PRICE  # nothing reported yet: the estimate
    await segmind_reports(storage, first.job, clock.time(), SEGMIND_PRICE)

    again = await admission.admit(BIG, origin(BOB))
    other_size = await admission.admit(REQUEST, origin(3))

    assert again.job.cost_usd == again.cost_usd == SEGMIND_PRICE
    assert other_size.job.cost_usd == other_size.cost_usd == PRICE


async def test_a_reported_price_above_the_estimate_cannot_carry_spend_past_the_ceiling(
    storage: Storage, clock: FakeClock, gates: AccountGates
) -> None:
    ceiling = 2.0
    admission = Admission(
        storage,
        default_limit=LimitSpec(50, D),
        clip_cost_usd=PRICE,
        clock=clock,
        gates=gates,
        daily_spend_ceiling_usd=ceiling,
    )
    first = await admission.admit(BIG, origin(ALICE))
    await segmind_reports(storage, first.job, clock.time(), SEGMIND_PRICE)
    admitted = [first]
    refusals: list[SpendCeilingReached] = []
    for user in range(100, 110):  # at the estimate, 4 more would fit before the refusals
        try:
            admitted.append(await admission.admit(BIG, origin(user)))
        except SpendCeilingReached as refusal:
            refusals.append(refusal)
    assert refusals[0].clip_cost_usd == SEGMIND_PRICE
    assert len(admitted) == 2  # 0.80 + 0.80 + 0.80 would pass 2.00
    for each in admitted[1:]:  # every admitted clip is made and billed at Segmind's price
        await segmind_reports(storage, each.job, clock.time(), SEGMIND_PRICE)

    async with storage.db.transaction() as tx:
        spent = await spent_today(storage.jobs, clock.time(), tx=tx)
    assert spent <= ceiling


async def test_a_servers_budget_counts_the_reservation_at_segminds_price(
    admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    await storage.limits.update_guild_settings(
        GUILD, actor_id=MOD, at=0.0, action="set_budget", monthly_budget_usd=1.50
    )
    first = await admission.admit(BIG, origin(ALICE))
    await segmind_reports(storage, first.job, clock.time(), SEGMIND_PRICE)

    with pytest.raises(BudgetExhausted) as caught:  # 0.80 + 0.80 > 1.50
        await admission.admit(BIG, origin(BOB))
    assert caught.value.clip_cost_usd == SEGMIND_PRICE
    # A smaller clip still fits at the estimate.
    assert (await admission.admit(REQUEST, origin(BOB))).cost_usd == PRICE


async def test_one_odd_report_stops_setting_the_price_once_three_newer_ones_exist(
    admission: Admission, storage: Storage, clock: FakeClock
) -> None:
    odd = await admission.admit(BIG, origin(ALICE))
    await segmind_reports(storage, odd.job, clock.time(), 3.0)  # a one-off, within 10x
    assert (await admission.admit(BIG, origin(100))).cost_usd == 3.0
    for user in (101, 102, 103):
        clock.advance(1)
        newer = await admission.admit(BIG, origin(user))
        await segmind_reports(storage, newer.job, clock.time(), SEGMIND_PRICE)

    clock.advance(1)
    # The members who ask now are quoted, and budgets reserve, what Segmind charges now.
    assert (await admission.admit(BIG, origin(104))).cost_usd == SEGMIND_PRICE


# --- several processes on one database ---------------------------------------------------------


async def test_concurrent_admissions_from_several_processes_store_exactly_the_limit(
    database_locations: Callable[[], Awaitable[Path | str]], gates: AccountGates
) -> None:
    """Each Storage is its own connection(s), as another bot process would hold: only the
    database's write lock, never one process's memory, can keep the limit."""
    location = await database_locations()
    processes = [await Storage.open(location) for _ in range(4)]
    try:
        clock = FakeClock(ts("2024-05-15T12:00:00"))
        admissions = [
            Admission(
                storage,
                default_limit=LimitSpec(3, D),
                clip_cost_usd=PRICE,
                clock=clock,
                gates=gates,
                batch_limit=1 if i == 0 else BATCH_LIMIT,  # one request per transaction too
            )
            for i, storage in enumerate(processes)
        ]
        results = await asyncio.gather(
            *(admissions[i % 4].admit(REQUEST.with_seed(i), origin()) for i in range(40)),
            return_exceptions=True,
        )
        admitted = [r for r in results if isinstance(r, Admitted)]
        assert all(isinstance(r, LimitReached) for r in results if not isinstance(r, Admitted))
        assert sorted(a.used for a in admitted) == [1, 2, 3]
        assert await count_jobs(processes[0]) == 3
        for admission in admissions:
            await admission.drain()
    finally:
        for storage in processes:
            await storage.close()


async def test_a_failed_ceiling_note_undoes_both_notes_and_only_its_request(
    ceiling_admission: Admission, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement that fails inside the notes' savepoint is undone with the savepoint, and
    the batch's transaction goes on (PostgreSQL would otherwise give up all of it)."""
    await ceiling_admission.admit(REQUEST, origin(ALICE, GUILD))
    await ceiling_admission.admit(REQUEST, origin(BOB, GUILD))
    mark = storage.limits.mark_alert_sent

    async def server_note_fails(guild_id: int, key: str, *, at: float, tx: object) -> bool:
        if guild_id != OTHER_GUILD:
            return await mark(guild_id, key, at=at, tx=tx)  # type: ignore[arg-type]
        # Refused by the server itself (sent_at is NOT NULL), not before it is sent.
        await tx.execute(  # type: ignore[attr-defined]
            "INSERT INTO alerts_sent (guild_id, key, sent_at) VALUES (?, ?, NULL)",
            (guild_id, key),
        )
        return True

    monkeypatch.setattr(storage.limits, "mark_alert_sent", server_note_fails)
    opened = watch_transactions(storage, monkeypatch)
    results = await asyncio.gather(
        ceiling_admission.admit(REQUEST, origin(3, OTHER_GUILD)),
        ceiling_admission.admit(REQUEST, origin(4, GUILD)),
        return_exceptions=True,
    )
    assert isinstance(results[0], DATABASE_ERRORS)
    assert isinstance(results[1], SpendCeilingReached) and results[1].tell_moderators
    assert len(opened) == 1  # decided together, and the second was not sent round again
    alerts = await storage.db.fetchall("SELECT guild_id FROM alerts_sent ORDER BY guild_id")
    # Only the second request's notes: the first's operator note went with its savepoint.
    assert [row[0] for row in alerts] == [0, GUILD]
