"""Approvals on each engine: the rule, holding, and each wait ended exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.admission import Admission, DuplicateRequest, LimitReached, MemberBlocked
from services.approval_models import ApprovalState, HeldRequest
from services.approvals import (
    RESTART_REASON,
    STRANDED_AFTER_SECONDS,
    AlreadyDecided,
    AlreadyWaiting,
    Approvals,
    AuditedRule,
    UnknownRequest,
    admission_origin,
    read_audit_detail,
)
from services.errors import ValidationError
from services.gates import AccountGates
from services.limits import LimitService
from services.models import Job, JobOrigin, JobState, VideoRequest
from services.periods import LimitSpec
from services.storage import NewJob, Storage
from tests.fakeclock import FakeClock

GUILD, MOD, MEMBER, TRUSTED = 111, 2, 7, 55


@pytest.fixture
async def storage(database_location: Path | str) -> AsyncIterator[Storage]:
    opened = await Storage.open(database_location)
    yield opened
    await opened.close()


@pytest.fixture
def approvals(storage: Storage, fake_clock: FakeClock) -> Approvals:
    return Approvals(storage, fake_clock)


@pytest.fixture
def limits(storage: Storage, fake_clock: FakeClock) -> LimitService:
    return LimitService(
        storage, default_limit=LimitSpec(5, 86400), clock=fake_clock, clip_cost_usd=0.36
    )


def origin(*roles: int, fingerprint: str | None = None, private: bool = False) -> JobOrigin:
    return JobOrigin(
        guild_id=GUILD,
        channel_id=5,
        user_id=MEMBER,
        role_ids=roles,
        private=private,
        interaction_token="secret-token",
        interaction_created_at=1.0,
        application_id=9,
        fingerprint=fingerprint,
    )


async def held_request(approvals: Approvals, limits: LimitService, **options: object):
    usage = await limits.member_usage(GUILD, MEMBER, [])
    request = VideoRequest.create("a red fox", seed=4)
    return await approvals.hold(request, origin(**options), usage)  # type: ignore[arg-type]


async def require(approvals: Approvals, *, role: int | None = None, expires: str | None = None):
    return await approvals.configure(
        GUILD, mode="required", role_id=role, expires=expires, actor_id=MOD
    )


async def test_approval_is_off_until_required_and_the_role_is_exempt(approvals: Approvals):
    assert not await approvals.required(origin())

    await require(approvals, role=TRUSTED)

    assert await approvals.required(origin())
    assert not await approvals.required(origin(TRUSTED))


async def test_required_without_a_role_holds_everyone(approvals: Approvals):
    await require(approvals)
    assert await approvals.required(origin(TRUSTED))


async def test_the_rule_change_is_audited_as_data(approvals: Approvals, storage: Storage):
    await require(approvals, role=TRUSTED, expires="2h")
    await approvals.configure(GUILD, mode="off", role_id=None, expires=None, actor_id=MOD)

    entries = await storage.limits.audit_log(GUILD)

    assert [e.action for e in entries] == ["set_approval", "set_approval"]
    # Data, not prose with markup: the cogs word it (`/videolimit history`).
    assert read_audit_detail(entries[1].detail) == (None, AuditedRule(TRUSTED, 7200))
    assert read_audit_detail(entries[0].detail) == (AuditedRule(TRUSTED, 7200), None)
    assert all(e.changes is None for e in entries)  # never read as a settings column


async def test_an_unchanged_rule_is_not_audited_again(approvals: Approvals, storage: Storage):
    await require(approvals, expires="2h")
    change = await require(approvals, expires="2h")
    assert not change.changed
    assert len(await storage.limits.audit_log(GUILD)) == 1


@pytest.mark.parametrize("expires", ["1m", "8d", "soon"])
async def test_an_expiry_out_of_bounds_changes_nothing(approvals: Approvals, expires: str):
    with pytest.raises(ValidationError):
        await require(approvals, expires=expires)
    assert await approvals.rule(GUILD) is None


async def test_expires_alone_changes_a_rule_that_is_on_and_keeps_its_role(approvals: Approvals):
    await require(approvals, role=TRUSTED)
    await approvals.configure(GUILD, mode=None, role_id=None, expires="30m", actor_id=MOD)
    rule = await approvals.rule(GUILD)
    assert rule is not None and rule.role_id == TRUSTED and rule.expiry_seconds == 1800


async def test_a_held_request_waits_until_its_expiry(
    approvals: Approvals, limits: LimitService, fake_clock: FakeClock
):
    await require(approvals, expires="30m")
    held = await held_request(approvals, limits)

    assert held.state is ApprovalState.PENDING
    assert held.expires_at == fake_clock.time() + 1800
    assert held.origin().interaction_token == "secret-token"
    assert await approvals.expire_due() == []
    fake_clock.advance(1800)
    [expired] = await approvals.expire_due()
    assert expired.id == held.id and expired.state is ApprovalState.EXPIRED
    assert await approvals.expire_due() == []  # once


async def test_a_member_out_of_clips_is_refused_before_anything_is_held(
    approvals: Approvals, limits: LimitService
):
    await require(approvals)
    await limits.set_user_limit(GUILD, MEMBER, 0, "1d", actor_id=MOD)
    with pytest.raises(MemberBlocked):
        await held_request(approvals, limits)
    await limits.set_user_limit(GUILD, MEMBER, 1, "1d", actor_id=MOD)
    assert (await held_request(approvals, limits)).state is ApprovalState.PENDING


async def test_limit_reached_is_refused_with_when_the_next_slot_frees(
    approvals: Approvals, limits: LimitService, storage: Storage, fake_clock: FakeClock
):
    await require(approvals)
    await limits.set_user_limit(GUILD, MEMBER, 1, "1d", actor_id=MOD)
    request = VideoRequest.create("earlier", seed=1)
    await storage.jobs.insert(NewJob(GUILD, 5, MEMBER, request, created_at=fake_clock.time()))

    with pytest.raises(LimitReached) as refused:
        await held_request(approvals, limits)
    assert refused.value.retry_at == fake_clock.time() + 86400


async def test_the_same_request_twice_waits_once(approvals: Approvals, limits: LimitService):
    await require(approvals)
    await held_request(approvals, limits, fingerprint="video:abc")
    with pytest.raises(AlreadyWaiting):
        await held_request(approvals, limits, fingerprint="video:abc")


async def test_two_answers_at_once_decide_it_once_and_the_loser_hears_who_won(
    approvals: Approvals, limits: LimitService
):
    await require(approvals)
    held = await held_request(approvals, limits)

    results = await asyncio.gather(
        approvals.decide(held, ApprovalState.APPROVED, by=MOD),
        approvals.decide(held, ApprovalState.DENIED, by=MOD + 1, reason="no"),
        return_exceptions=True,
    )

    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, AlreadyDecided)]
    assert len(won) == 1 and len(lost) == 1
    assert lost[0].held.state is won[0].state and lost[0].held.decided_by == won[0].decided_by


async def test_an_answered_request_no_longer_expires(
    approvals: Approvals, limits: LimitService, fake_clock: FakeClock
):
    await require(approvals, expires="30m")
    held = await held_request(approvals, limits)
    await approvals.decide(held, ApprovalState.DENIED, by=MOD, reason="  " + "x" * 400)
    fake_clock.advance(3600)
    assert await approvals.expire_due() == []
    denied = await approvals.get(held.id, GUILD)
    assert denied.state is ApprovalState.DENIED and denied.reason == "x" * 300


async def test_another_servers_request_is_unknown(approvals: Approvals, limits: LimitService):
    await require(approvals)
    held = await held_request(approvals, limits)
    with pytest.raises(UnknownRequest):
        await approvals.get(held.id, GUILD + 1)
    with pytest.raises(UnknownRequest):
        await approvals.get(held.id + 100, GUILD)


# --- findings from the review: double holds, late answers, what a restart recovers -------


async def test_the_same_request_twice_at_once_waits_once(
    approvals: Approvals, limits: LimitService
):
    """A double click (two interactions at once): the check and the insert are one, so only
    one waits, and only one can ever be approved and billed."""
    await require(approvals)

    results = await asyncio.gather(
        held_request(approvals, limits, fingerprint="video:abc"),
        held_request(approvals, limits, fingerprint="video:abc"),
        return_exceptions=True,
    )

    assert sorted(type(r).__name__ for r in results) == ["AlreadyWaiting", "HeldRequest"]


async def test_requests_without_a_fingerprint_are_never_taken_for_each_other(
    approvals: Approvals, limits: LimitService
):
    await require(approvals)
    first = await held_request(approvals, limits)
    second = await held_request(approvals, limits)
    assert first.id != second.id


async def test_the_same_request_may_wait_again_once_the_first_ended(
    approvals: Approvals, limits: LimitService
):
    await require(approvals)
    held = await held_request(approvals, limits, fingerprint="video:abc")
    await approvals.decide(held, ApprovalState.DENIED, by=MOD)
    again = await held_request(approvals, limits, fingerprint="video:abc")
    assert again.state is ApprovalState.PENDING


@pytest.mark.parametrize("state", [ApprovalState.APPROVED, ApprovalState.DENIED])
async def test_an_answer_after_the_expiry_time_expires_it_instead(
    approvals: Approvals, limits: LimitService, fake_clock: FakeClock, state: ApprovalState
):
    """The sweep has not run yet: the click must not go through; it expires it, once."""
    await require(approvals, expires="30m")
    held = await held_request(approvals, limits)
    fake_clock.advance(1800)

    with pytest.raises(AlreadyDecided) as lost:
        await approvals.decide(held, state, by=MOD)
    assert lost.value.expired_now and lost.value.held.state is ApprovalState.EXPIRED

    with pytest.raises(AlreadyDecided) as again:
        await approvals.decide(held, state, by=MOD)
    assert not again.value.expired_now  # told once: the member hears it from the first
    assert await approvals.expire_due() == []


def approval_admission(storage: Storage, fake_clock: FakeClock) -> Admission:
    return Admission(
        storage,
        default_limit=LimitSpec(5, 86400),
        clip_cost_usd=0.36,
        clock=fake_clock,
        gates=AccountGates.create(fake_clock, 600),
    )


async def approved_and_admitted(
    approvals: Approvals, limits: LimitService, storage: Storage, fake_clock: FakeClock
) -> tuple[HeldRequest, Job]:
    """As Approve does, up to the point where the process stops: the job is not linked."""
    await require(approvals)
    held = await held_request(approvals, limits, fingerprint="video:abc")
    held = await approvals.place(held.id, message_id=4242) or held
    held = await approvals.decide(held, ApprovalState.APPROVED, by=MOD)
    admitted = await approval_admission(storage, fake_clock).admit(
        held.request, admission_origin(held, held.role_ids)
    )
    return held, admitted.job


async def test_a_restart_links_an_approved_requests_job_and_gives_it_the_message(
    approvals: Approvals, limits: LimitService, storage: Storage, fake_clock: FakeClock
):
    _, job = await approved_and_admitted(approvals, limits, storage, fake_clock)
    assert job.message_id is None  # as recover_unacknowledged would end it

    restarted = Approvals(storage, fake_clock)
    [(linked, found)] = await restarted.recover()

    assert found is not None and found.id == job.id and found.message_id == 4242
    assert linked.state is ApprovalState.APPROVED and linked.job_id == job.id
    stored = await storage.jobs.get(job.id)
    assert stored is not None and stored.message_id == 4242
    assert await restarted.recover() == []  # once


async def test_admission_never_makes_a_second_job_for_one_approval(
    approvals: Approvals, limits: LimitService, storage: Storage, fake_clock: FakeClock
):
    held, _ = await approved_and_admitted(approvals, limits, storage, fake_clock)
    with pytest.raises(DuplicateRequest):
        await approval_admission(storage, fake_clock).admit(
            held.request, admission_origin(held, held.role_ids)
        )


async def test_a_restart_ends_an_approved_request_whose_job_was_withdrawn_unsent(
    approvals: Approvals, limits: LimitService, storage: Storage, fake_clock: FakeClock
):
    # Approve's handler was cancelled just after admission answered: admission withdrew
    # the job (ended, never sent), and the process stopped before the request was ended.
    _, job = await approved_and_admitted(approvals, limits, storage, fake_clock)
    await storage.jobs.update(
        job.id, now=fake_clock.time(), state=JobState.CANCELLED, error="not acknowledged"
    )

    restarted = Approvals(storage, fake_clock)
    [(ended, found)] = await restarted.recover()

    # Not linked to a job that will never run (the member would read "waiting" for good):
    # ended, so the caller tells the member to ask again.
    assert found is None
    assert (ended.state, ended.reason, ended.job_id) == (
        ApprovalState.FAILED,
        RESTART_REASON,
        None,
    )
    stored = await storage.jobs.get(job.id)
    assert stored is not None and stored.message_id is None  # the waiting message not taken
    assert await restarted.recover() == []


async def test_a_restart_links_an_approved_requests_job_that_ran_and_ended(
    approvals: Approvals, limits: LimitService, storage: Storage, fake_clock: FakeClock
):
    # Sent to Segmind and failed there: it ran, so the request is its job's (not ended).
    _, job = await approved_and_admitted(approvals, limits, storage, fake_clock)
    await storage.jobs.update(
        job.id, now=fake_clock.time(), request_id="r-1", state=JobState.FAILED
    )

    [(linked, found)] = await Approvals(storage, fake_clock).recover()

    assert found is not None and found.id == job.id
    assert (linked.state, linked.job_id) == (ApprovalState.APPROVED, job.id)


async def test_a_restart_ends_an_approved_request_that_never_got_its_job(
    approvals: Approvals, limits: LimitService, storage: Storage, fake_clock: FakeClock
):
    await require(approvals)
    held = await held_request(approvals, limits)
    await approvals.decide(held, ApprovalState.APPROVED, by=MOD)

    fake_clock.advance(STRANDED_AFTER_SECONDS)  # no process can still be admitting it
    restarted = Approvals(storage, fake_clock)
    [(ended, job)] = await restarted.recover()

    assert job is None and ended.state is ApprovalState.FAILED and ended.reason
    assert await storage.jobs.unfinished() == []  # ended, not admitted again
    assert await restarted.recover() == []


async def test_a_request_whose_card_was_never_posted_is_found_after_a_restart(
    approvals: Approvals, limits: LimitService, storage: Storage, fake_clock: FakeClock
):
    await require(approvals)
    carded = await held_request(approvals, limits, fingerprint="a")
    await approvals.place(carded.id, alert_channel_id=1, alert_message_id=2)
    uncarded = await held_request(approvals, limits, fingerprint="b")
    fake_clock.advance(1)
    started = fake_clock.time()
    await held_request(approvals, limits, fingerprint="c")  # held by this run: on its way

    assert [h.id for h in await approvals.uncarded(started)] == [uncarded.id]


async def test_the_approved_job_counts_the_members_roles_given(
    approvals: Approvals, limits: LimitService
):
    await require(approvals)
    held = await held_request(approvals, limits)
    origin_now = admission_origin(held, (TRUSTED,))
    assert origin_now.role_ids == (TRUSTED,) and origin_now.fingerprint == f"approval:{held.id}"


async def test_an_ended_request_is_listed_for_its_notices_until_both_are_noted(
    approvals: Approvals, limits: LimitService, fake_clock: FakeClock
):
    await require(approvals, expires="30m")
    held = await held_request(approvals, limits)
    fake_clock.advance(1800)
    [expired] = await approvals.expire_due()
    assert not expired.member_told and not expired.card_updated

    assert await approvals.unsettled(grace=60) == []  # its own flow is telling it
    fake_clock.advance(61)
    assert [h.id for h in await approvals.unsettled(grace=60)] == [held.id]
    await approvals.noted(expired, member_told=True)
    [listed] = await approvals.unsettled(grace=60)
    assert listed.member_told and not listed.card_updated
    await approvals.noted(expired, card_updated=True)
    assert await approvals.unsettled(grace=60) == []
    assert (await approvals.get(held.id, None)).member_told  # never unset by the card's note


async def test_an_untold_request_is_given_up_after_a_day_and_a_pending_one_never_listed(
    approvals: Approvals, limits: LimitService, fake_clock: FakeClock
):
    await require(approvals, expires="30m")
    held = await held_request(approvals, limits)
    fake_clock.advance(3600)
    assert await approvals.unsettled(grace=60) == []  # still pending: not ended
    await approvals.expire_due()
    fake_clock.advance(24 * 3600 + 1)
    assert await approvals.unsettled(grace=60) == []
    assert not (await approvals.get(held.id, None)).member_told
