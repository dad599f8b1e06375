"""The approval notices' retry sweep on a real SQLite file: what it reads and tries.

Telling itself (Discord's routes) is covered over the wire in test_approval_discord.py;
here ``tell_member`` and ``edit_alert`` are recorded, to see which requests a pass
reaches when many are backing off, or when one request's telling breaks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cogs.approval.notices import RETRY_GRACE_SECONDS, ApprovalNotices, notice_for
from cogs.approval.wording import DENIED_PUBLIC
from services.approval_models import ApprovalState, HeldRequest
from services.approvals import Approvals
from services.limits import LimitService
from services.models import JobOrigin, VideoRequest
from services.periods import LimitSpec
from services.storage import Storage
from tests.fakeclock import FakeClock

GUILD, MEMBER = 111, 7


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    opened = await Storage.open(tmp_path / "bot.db")
    yield opened
    await opened.close()


@pytest.fixture
def approvals(storage: Storage, fake_clock: FakeClock) -> Approvals:
    return Approvals(storage, fake_clock)


class Recorded(ApprovalNotices):
    """The sweep as it is, with Discord's side recorded (or broken for ``broken`` ids)."""

    def __init__(self, approvals: Approvals, clock: FakeClock) -> None:
        bot: Any = SimpleNamespace(services=SimpleNamespace(approvals=approvals, clock=clock))
        super().__init__(bot)
        self.told: list[int] = []
        self.broken: set[int] = set()

    async def tell_member(self, held: HeldRequest, *args: Any, **kwargs: Any) -> bool:
        if held.id in self.broken:
            raise RuntimeError("not Discord's trouble: a bug")
        self.told.append(held.id)
        await self._note(held, "member", "told")
        return True

    async def edit_alert(self, held: HeldRequest) -> None:
        await self._note(held, "card", "told")


async def withdrawn(
    storage: Storage, approvals: Approvals, clock: FakeClock, n: int
) -> HeldRequest:
    """An ended request (withdrawn), its notices not yet told."""
    limits = LimitService(
        storage, default_limit=LimitSpec(5, 86400), clock=clock, clip_cost_usd=0.36
    )
    usage = await limits.member_usage(GUILD, MEMBER, [])
    origin = JobOrigin(
        guild_id=GUILD, channel_id=5, user_id=MEMBER, role_ids=(), fingerprint=f"f{n}"
    )
    held = await approvals.hold(VideoRequest.create(f"a fox {n}"), origin, usage)
    held = await approvals.place(held.id, message_id=1000 + n) or held
    return await approvals.decide(held, ApprovalState.CANCELLED, by=MEMBER)


async def test_a_newer_notice_is_tried_while_a_hundred_older_ones_back_off(
    storage: Storage, approvals: Approvals, fake_clock: FakeClock
) -> None:
    older = [await withdrawn(storage, approvals, fake_clock, n) for n in range(100)]
    fake_clock.advance(1)
    newer = await withdrawn(storage, approvals, fake_clock, 100)
    fake_clock.advance(RETRY_GRACE_SECONDS + 1)
    sweep = Recorded(approvals, fake_clock)
    for held in older:  # each failed lately and waits its backoff
        sweep._note_failure(held)

    await sweep.retry_unsettled()

    assert sweep.told == [newer.id]
    assert (await approvals.get(newer.id, None)).member_told


async def test_one_requests_error_does_not_stop_the_others_and_it_is_tried_later(
    storage: Storage, approvals: Approvals, fake_clock: FakeClock
) -> None:
    first = await withdrawn(storage, approvals, fake_clock, 1)
    second = await withdrawn(storage, approvals, fake_clock, 2)
    fake_clock.advance(RETRY_GRACE_SECONDS + 1)
    sweep = Recorded(approvals, fake_clock)
    sweep.broken = {first.id}

    assert await sweep.retry_unsettled() == 2

    assert sweep.told == [second.id]
    # Backed off from, not hammered on every pass; tried again once due.
    sweep.broken = set()
    await sweep.retry_unsettled()
    assert sweep.told == [second.id]
    fake_clock.advance(3600)
    await sweep.retry_unsettled()
    assert sweep.told == [second.id, first.id]


async def test_the_sweep_retells_a_denial_without_a_reason_on_the_public_message_alone(
    storage: Storage, approvals: Approvals, fake_clock: FakeClock
) -> None:
    limits = LimitService(
        storage, default_limit=LimitSpec(5, 86400), clock=fake_clock, clip_cost_usd=0.36
    )
    usage = await limits.member_usage(GUILD, MEMBER, [])
    origin = JobOrigin(guild_id=GUILD, channel_id=5, user_id=MEMBER, role_ids=())
    held = await approvals.hold(VideoRequest.create("a fox"), origin, usage)
    bare = await approvals.decide(held, ApprovalState.DENIED, by=2, reason="  ")
    assert notice_for(bare) == ("Request denied", DENIED_PUBLIC, None)  # no DM, prompt shown

    second = await approvals.hold(VideoRequest.create("an owl"), origin, usage)
    reasoned = await approvals.decide(second, ApprovalState.DENIED, by=2, reason="not here")
    notice = notice_for(reasoned)
    assert notice is not None and "not here" in str(notice[2])
