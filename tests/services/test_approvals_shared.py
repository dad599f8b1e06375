"""Approval requests on a database that several bot processes share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.approval_models import ApprovalState, HeldRequest
from services.approvals import (
    NOTICE_CLAIM_SECONDS,
    RESTART_REASON,
    STRANDED_AFTER_SECONDS,
    Approvals,
)
from services.limits import LimitService
from services.models import JobOrigin, VideoRequest
from services.periods import LimitSpec
from services.storage import Storage
from tests.fakeclock import FakeClock

GUILD, MOD, MEMBER = 111, 2, 7


@pytest.fixture
async def two_processes(database_location: Path | str) -> AsyncIterator[tuple[Storage, Storage]]:
    """Two connections to one database, as two bot processes would hold."""
    first, second = await Storage.open(database_location), await Storage.open(database_location)
    yield first, second
    await first.close()
    await second.close()


async def decided(
    approvals: Approvals, storage: Storage, clock: FakeClock, state: ApprovalState
) -> HeldRequest:
    await approvals.configure(GUILD, mode="required", role_id=None, expires=None, actor_id=MOD)
    limits = LimitService(
        storage, default_limit=LimitSpec(5, 86400), clock=clock, clip_cost_usd=0.36
    )
    usage = await limits.member_usage(GUILD, MEMBER, [])
    origin = JobOrigin(guild_id=GUILD, channel_id=5, user_id=MEMBER, role_ids=())
    held = await approvals.hold(VideoRequest.create("a red fox", seed=4), origin, usage)
    return await approvals.decide(held, state, by=MOD)


async def test_a_starting_process_leaves_alone_a_request_another_is_admitting(
    two_processes: tuple[Storage, Storage],
) -> None:
    clock = FakeClock()
    first_storage, second_storage = two_processes
    first = Approvals(first_storage, clock, owner="first")
    held = await decided(first, first_storage, clock, ApprovalState.APPROVED)

    # The first process is admitting it (no job yet) when the second one starts.
    assert await Approvals(second_storage, clock, owner="second").recover() == []
    current = await first.get(held.id, None)
    assert current.state is ApprovalState.APPROVED and current.reason is None


async def test_a_request_left_without_its_job_is_ended_by_a_later_sweep(
    two_processes: tuple[Storage, Storage],
) -> None:
    clock = FakeClock()
    first_storage, second_storage = two_processes
    first = Approvals(first_storage, clock, owner="first")
    held = await decided(first, first_storage, clock, ApprovalState.APPROVED)
    second = Approvals(second_storage, clock, owner="second")
    assert await second.recover() == []

    clock.advance(STRANDED_AFTER_SECONDS)  # the first process died before admitting it
    [(ended, job)] = await second.recover()

    assert job is None and ended.id == held.id
    assert (ended.state, ended.reason) == (ApprovalState.FAILED, RESTART_REASON)
    assert await first.recover() == []  # ended once: only one process tells the member


async def test_only_the_process_that_claims_a_request_tells_how_it_ended(
    two_processes: tuple[Storage, Storage],
) -> None:
    clock = FakeClock()
    first_storage, second_storage = two_processes
    first = Approvals(first_storage, clock, owner="first")
    second = Approvals(second_storage, clock, owner="second")
    held = await decided(first, first_storage, clock, ApprovalState.DENIED)
    clock.advance(1)
    assert [h.id for h in await second.unsettled(grace=0)] == [held.id]

    assert await first.claim_notices(held)
    assert not await second.claim_notices(held)
    assert await second.unsettled(grace=0) == []  # left to the first process's telling
    assert [h.id for h in await first.unsettled(grace=0)] == [held.id]

    clock.advance(NOTICE_CLAIM_SECONDS)  # the first process died while telling it
    assert [h.id for h in await second.unsettled(grace=0)] == [held.id]
    assert await second.claim_notices(held)


async def test_a_rule_set_in_another_process_holds_here_after_the_next_sweep(
    two_processes: tuple[Storage, Storage],
) -> None:
    clock = FakeClock()
    first_storage, second_storage = two_processes
    first = Approvals(first_storage, clock, owner="first")
    second = Approvals(second_storage, clock, owner="second")
    await second.load()  # at its start, approval was off
    origin = JobOrigin(guild_id=GUILD, channel_id=5, user_id=MEMBER, role_ids=())

    await first.configure(GUILD, mode="required", role_id=None, expires=None, actor_id=MOD)
    await second.load()  # the approval sweep reads the rules again

    assert await second.required(origin)
