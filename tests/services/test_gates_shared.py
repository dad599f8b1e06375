"""Account pauses and rate-limit holds reach every process sharing the database."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.account_pace import AccountPace
from services.admission import Admission
from services.errors import SegmindAuthError, SegmindInsufficientCredits
from services.gates import REFRESH_SECONDS, AccountGates, AccountPaused
from services.models import JobOrigin, VideoRequest
from services.periods import LimitSpec
from services.storage import Storage
from tests.fakeclock import FakeClock

RECHECK = 600.0
REQUEST = VideoRequest.create("a lighthouse in a storm", seed=42)
ORIGIN = JobOrigin(guild_id=1, channel_id=5, user_id=2, role_ids=())


@pytest.fixture
async def two_processes(database_location: Path | str) -> AsyncIterator[tuple[Storage, Storage]]:
    """Two connections to one database, as two bot processes would hold."""
    first, second = await Storage.open(database_location), await Storage.open(database_location)
    yield first, second
    await first.close()
    await second.close()


def admission(storage: Storage, clock: FakeClock, gates: AccountGates) -> Admission:
    return Admission(
        storage, default_limit=LimitSpec(3, 86400), clip_cost_usd=0.36, clock=clock, gates=gates
    )


async def test_out_of_credits_in_one_process_refuses_new_requests_in_another(
    two_processes: tuple[Storage, Storage],
) -> None:
    clock = FakeClock()
    first_storage, second_storage = two_processes
    first = AccountGates.create(clock, RECHECK, first_storage.meta)
    second = AccountGates.create(clock, RECHECK, second_storage.meta)
    second_admission = admission(second_storage, clock, second)
    await second.refresh()  # it has looked before: only a later read can learn the pause

    first.credits.pause(SegmindInsufficientCredits())
    await first.publish()
    clock.advance(REFRESH_SECONDS)

    with pytest.raises(AccountPaused) as refused:
        await second_admission.admit(REQUEST, ORIGIN)
    assert isinstance(refused.value.cause, SegmindInsufficientCredits)
    assert refused.value.user_message == SegmindInsufficientCredits.user_message
    assert refused.value.retry_at == pytest.approx(clock.time() - REFRESH_SECONDS + RECHECK)
    await second_admission.drain()


async def test_a_resume_in_one_process_reopens_the_others(
    two_processes: tuple[Storage, Storage],
) -> None:
    clock = FakeClock()
    first_storage, second_storage = two_processes
    first = AccountGates.create(clock, RECHECK, first_storage.meta)
    second = AccountGates.create(clock, RECHECK, second_storage.meta)
    first.key.pause(SegmindAuthError(status=401))
    await first.publish()
    await second.refresh()
    assert second.key.paused

    first.resume()  # its recheck was accepted
    await first.publish()
    await second.refresh()
    assert second.key.paused  # read at most every REFRESH_SECONDS: still the copy
    clock.advance(REFRESH_SECONDS)
    await second.refresh()

    assert not second.key.paused
    second.check()


async def test_a_process_started_during_a_pause_finds_it(
    two_processes: tuple[Storage, Storage],
) -> None:
    clock = FakeClock()
    first_storage, second_storage = two_processes
    first = AccountGates.create(clock, RECHECK, first_storage.meta)
    first.credits.pause(SegmindInsufficientCredits())
    await first.publish()

    started = AccountGates.create(clock, RECHECK, second_storage.meta)
    await started.refresh()

    with pytest.raises(AccountPaused):
        started.check()
    clock.advance(RECHECK)
    started.check()  # the period is over: this one goes through as the check


async def test_a_rate_limit_hold_in_one_process_holds_the_others_requests(
    two_processes: tuple[Storage, Storage],
) -> None:
    clock = FakeClock()
    first_storage, second_storage = two_processes
    first, second = AccountPace(clock, random.Random(1)), AccountPace(clock, random.Random(2))
    first.share(first_storage.meta)
    second.share(second_storage.meta)

    first.hold(30.0)  # a 429 to one of the first process's jobs
    await first.wait(at_most=0)  # its next request shares the hold before it waits
    await second.wait()

    assert sum(clock.sleeps) >= 30.0
