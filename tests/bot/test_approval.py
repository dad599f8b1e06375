"""Approval before spending, over the wire: a member's request waits for a moderator.

The bot's clock here is the fake Discord's own (real time plus a skew), so a test that
jumps past a request's expiry moves Discord's token clock with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cogs.approval.wording import already_decided
from cogs.videobot import Timings, VideoBot, create_bot
from services.app import Services, open_services
from services.approval_models import ApprovalState
from services.approvals import STRANDED_AFTER_SECONDS, admission_origin
from services.simulator import SegmindSimulator
from tests.bot.conftest import fast_settings
from tests.bot.helpers import TIMEOUT, embed_text, field, title, wait_for_clip
from tests.bot.test_moderation import only_for, settled_answer, videolimit
from tests.fakediscord import (
    FakeDiscord,
    FakeMember,
    FakeWorld,
    InteractionRecord,
    StoredMessage,
    running_client,
)

WAITING = "Waiting for a moderator's approval"
HOUR = 3600.0


class DiscordTime:
    """The fake Discord's clock as the bot's: ``fake.advance`` moves both."""

    def __init__(self, fake: FakeDiscord) -> None:
        self._clock = fake.clock

    def time(self) -> float:
        return self._clock.wall()

    def monotonic(self) -> float:
        return self._clock.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@pytest.fixture
def fake_world() -> FakeWorld:
    world = FakeWorld.default()
    world.guild.add_text_channel("mods")
    trusted = world.guild.add_role("Trusted")
    world.guild.add_member("bob", roles=[trusted])
    world.guild.add_role("Muted")  # known to the bot from the start; given later in a test
    return world


@pytest.fixture
def bot_timings() -> Timings:
    return Timings(approval_sweep_interval=0.05)


@pytest.fixture
async def services(bot_env, simulator, fake_discord) -> AsyncIterator[Services]:
    async with open_services(
        fast_settings(bot_env), clock=DiscordTime(fake_discord), segmind_base_url=simulator.base_url
    ) as opened:
        yield opened


@pytest.fixture
def members(fake_discord: FakeDiscord) -> dict[str, FakeMember]:
    world = fake_discord.world
    return {name: world.member_named(name) for name in ("mod", "alice", "bob")}


def channel(fake: FakeDiscord, name: str) -> Any:
    return next(c for c in fake.world.guild.channels if c.name == name)


async def require_approval(fake: FakeDiscord, mod: FakeMember, **options: Any) -> StoredMessage:
    await videolimit(fake, "alerts", {"channel": channel(fake, "mods")}, mod)
    trusted = next(r for r in fake.world.guild.roles if r.name == "Trusted")
    return await videolimit(fake, "approval", {"mode": "required", "role": trusted, **options}, mod)


async def ask(fake: FakeDiscord, user: FakeMember, prompt: str, **options: Any) -> StoredMessage:
    """``/video`` as ``user``; returns the member's own (waiting or progress) message."""
    record = await fake.dispatch_slash_command("video", {"prompt": prompt, **options}, user=user)
    await fake.wait_for_ack(record)
    return await settled_answer(fake, record)


def approval_button(message: StoredMessage, action: str) -> str | None:
    return next((c for c in message.custom_ids() if c.startswith(f"vappr:{action}:")), None)


async def card(fake: FakeDiscord, *, after: int = 0) -> StoredMessage:
    """The moderators' request card in #mods."""
    return await fake.wait_for_message(
        channel(fake, "mods").id,
        lambda m: m.id > after and approval_button(m, "approve") is not None,
        timeout=TIMEOUT,
    )


def cards_in_mods(fake: FakeDiscord) -> list[StoredMessage]:
    messages = fake.channel_messages(channel(fake, "mods"))
    return [m for m in messages if approval_button(m, "approve") is not None]


async def press(
    fake: FakeDiscord, message: StoredMessage, action: str, user: FakeMember
) -> InteractionRecord:
    custom_id = approval_button(message, action)
    assert custom_id is not None, f"no {action} on {message.custom_ids()}"
    record = await fake.dispatch_component(message, custom_id, user=user)
    return await fake.wait_for_ack(record)


async def private_reply(fake: FakeDiscord, record: InteractionRecord) -> StoredMessage:
    return await settled_answer(fake, record)


async def counted(bot: VideoBot, member: FakeMember) -> int:
    usage = await bot.services.limits.member_usage(fake_guild_id(bot), member.id, [])
    return usage.window.used


def fake_guild_id(bot: VideoBot) -> int:
    return bot.guilds[0].id


async def test_a_request_waits_for_approval_and_is_made_once_a_moderator_approves(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod)

    waiting = await ask(fake_discord, alice, "a <@&123456789012345678> red fox @everyone")
    alert = await card(fake_discord)

    assert title(waiting) == WAITING
    assert WAITING in (field(waiting, "Progress") or "")
    assert simulator.submit_attempts == 0 and await counted(bot, alice) == 0
    # The moderators see the member and the prompt literally, and nobody is pinged.
    assert f"<@{alice.id}>" in alert.content
    assert "<@\u200b&123456789012345678> red fox @\u200beveryone" in embed_text(alert)
    assert not alert.pinged_user_ids

    approval = await press(fake_discord, alert, "approve", mod)
    told = await private_reply(fake_discord, approval)
    assert only_for(told, mod) and "Approved" in told.content

    clip = await wait_for_clip(fake_discord, channel(fake_discord, "general").id)
    assert clip.pinged_user_ids == {alice.id}
    assert len(simulator.submits) == 1 and await counted(bot, alice) == 1
    await fake_discord.wait_until(lambda: "Approved by" in embed_text(alert))
    assert approval_button(alert, "approve") is None  # the card lost its buttons
    assert title(waiting) != WAITING  # the member's message became the job's


async def test_a_member_cannot_approve_and_nothing_is_submitted(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod)
    await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)

    refused = await private_reply(fake_discord, await press(fake_discord, alert, "approve", alice))

    assert only_for(refused, alice)
    assert "Only moderators" in refused.content
    assert simulator.submit_attempts == 0
    assert approval_button(alert, "approve") is not None  # still waiting for a moderator


async def test_deny_with_a_reason_tells_the_member_literally_and_submits_nothing(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)

    opener = await press(fake_discord, alert, "deny", mod)
    submit = await fake_discord.dispatch_modal_submit(
        opener, {"reason": "not *here* <@&123456789012345678>"}
    )
    await fake_discord.wait_for_ack(submit)
    told = await settled_answer(fake_discord, submit)

    assert only_for(told, mod) and "Denied" in told.content
    await fake_discord.wait_until(lambda: title(waiting) == "Request denied")
    # The request was public: the reason goes to the member alone, by direct message.
    dm = await fake_discord.wait_until(
        lambda: next((m for m in fake_discord.dm_messages(alice) if m.embeds), None), TIMEOUT
    )
    why = field(dm, "Why") or ""
    assert "not \\*here\\* <@\u200b&123456789012345678>" in why
    assert not waiting.pinged_user_ids and not dm.pinged_user_ids
    assert simulator.submit_attempts == 0 and await counted(bot, alice) == 0
    await fake_discord.wait_until(lambda: "Denied by" in embed_text(alert))


async def test_two_approvals_make_one_job_and_the_second_is_told_who_won(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod)
    await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)
    custom_id = approval_button(alert, "approve")
    assert custom_id is not None

    owner = fake_discord.world.member_named("operator")  # Manage Server, as the owner
    clicks = await asyncio.gather(
        *(fake_discord.dispatch_component(alert, custom_id, user=who) for who in (mod, owner))
    )
    answers = [
        await settled_answer(fake_discord, await fake_discord.wait_for_ack(r)) for r in clicks
    ]

    await wait_for_clip(fake_discord, channel(fake_discord, "general").id)
    assert len(simulator.submits) == 1
    assert sorted("already answered" in a.content for a in answers) == [False, True]
    loser = next(a for a in answers if "already answered" in a.content)
    assert "approved by <@" in loser.content


async def test_an_unanswered_request_expires_and_the_member_is_told(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod, expires="30m")
    waiting = await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)

    fake_discord.advance(31 * 60)  # past the request's 30 minutes (and its token's 15)

    await fake_discord.wait_until(lambda: title(waiting) == "Request expired", TIMEOUT)
    assert "expired" in (field(waiting, "Why") or "")
    await fake_discord.wait_until(lambda: "Expired unanswered" in embed_text(alert))
    assert approval_button(alert, "approve") is None
    assert simulator.submit_attempts == 0 and await counted(bot, alice) == 0


async def test_a_member_with_the_role_and_a_moderator_skip_approval(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    await require_approval(fake_discord, members["mod"])

    for who in ("bob", "mod"):
        made = await ask(fake_discord, members[who], f"a fox for {who}")
        assert title(made) != WAITING
    general = channel(fake_discord, "general").id
    await fake_discord.wait_until(lambda: len(simulator.submits) == 2, TIMEOUT)
    await wait_for_clip(fake_discord, general)
    assert not cards_in_mods(fake_discord)


async def test_a_member_out_of_clips_is_refused_at_once_not_after_approval(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod)
    await videolimit(fake_discord, "set", {"user": alice, "count": 0, "period": "1d"}, mod)

    refused = await ask(fake_discord, alice, "a fox")

    assert only_for(refused, alice) and "blocked" in refused.content
    assert not cards_in_mods(fake_discord)


async def test_the_member_can_withdraw_a_waiting_request(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)

    done = await private_reply(fake_discord, await press(fake_discord, waiting, "cancel", alice))

    assert only_for(done, alice) and "withdrawn" in done.content
    await fake_discord.wait_until(lambda: title(waiting) == "Request withdrawn")
    await fake_discord.wait_until(lambda: "Withdrawn by" in embed_text(alert))
    assert approval_button(alert, "approve") is None  # nothing left to approve
    assert simulator.submit_attempts == 0


async def test_approval_survives_a_restart_while_pending(
    bot_env, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    mod, alice = members["mod"], members["alice"]
    clock = DiscordTime(fake_discord)

    async def started() -> AsyncIterator[VideoBot]:
        settings = fast_settings(bot_env)
        async with open_services(
            settings, clock=clock, segmind_base_url=simulator.base_url
        ) as opened:
            client = create_bot(opened, guild_ready_timeout=0.05, timings=Timings())
            async with running_client(client, fake_discord):
                yield client

    first = started()
    await first.__anext__()
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)
    await first.aclose()

    second = started()
    restarted = await second.__anext__()
    try:
        approval = await press(fake_discord, alert, "approve", mod)
        assert "Approved" in (await private_reply(fake_discord, approval)).content
        await wait_for_clip(fake_discord, channel(fake_discord, "general").id)
        assert len(simulator.submits) == 1 and await counted(restarted, alice) == 1
        assert title(waiting) != WAITING
    finally:
        await second.aclose()


async def test_approval_setting_is_shown_and_in_history(bot, fake_discord: FakeDiscord, members):
    mod = members["mod"]
    shown = await videolimit(fake_discord, "approval", {}, mod)
    assert "off" in shown.content

    await require_approval(fake_discord, mod, expires="2h")
    shown = await videolimit(fake_discord, "approval", {}, mod)
    history = await videolimit(fake_discord, "history", {}, mod)
    bad = await videolimit(fake_discord, "approval", {"expires": "1m"}, mod)

    assert "required" in shown.content and "2h" in shown.content
    assert "approval" in embed_text(history) and "required" in embed_text(history)
    assert "from 5m to 1w" in bad.content


async def test_a_private_request_denied_after_its_token_expired_is_told_by_direct_message(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod, expires="1h")
    waiting = await ask(fake_discord, alice, "a secret fox", private=True)
    alert = await card(fake_discord)
    assert only_for(waiting, alice) and title(waiting) == WAITING

    fake_discord.advance(16 * 60)  # the member's interaction token is dead
    opener = await press(fake_discord, alert, "deny", mod)
    submit = await fake_discord.dispatch_modal_submit(opener, {"reason": "too secret"})
    await fake_discord.wait_for_ack(submit)

    told = await fake_discord.wait_until(
        lambda: next((m for m in fake_discord.dm_messages(alice) if m.embeds), None), TIMEOUT
    )
    assert title(told) == "Request denied" and "too secret" in (field(told, "Why") or "")
    assert simulator.submit_attempts == 0


async def test_a_public_request_approved_after_its_token_expired_is_still_delivered(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod, expires="1h")
    waiting = await ask(fake_discord, alice, "a patient fox")
    alert = await card(fake_discord)

    fake_discord.advance(20 * 60)
    await press(fake_discord, alert, "approve", mod)

    clip = await wait_for_clip(fake_discord, channel(fake_discord, "general").id)
    assert clip.pinged_user_ids == {alice.id}
    # The waiting message became the job's, edited through the channel once the token died.
    await fake_discord.wait_until(lambda: title(waiting) != WAITING, TIMEOUT)


# --- findings from the reviews ----------------------------------------------------------


def role_named(fake: FakeDiscord, name: str) -> Any:
    return next(r for r in fake.world.guild.roles if r.name == name)


async def test_approve_cancelled_while_admitting_ends_the_request_and_tells_the_member(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members, monkeypatch
):
    """The handler cancelled in admission (the bot stopping): no job will run, so the
    request must not stay approved with the member's message saying "waiting"."""
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)
    request_id = int(str(approval_button(alert, "approve")).split(":")[2])

    async def cancelled(*args: Any, **kwargs: Any) -> Any:
        raise asyncio.CancelledError

    monkeypatch.setattr(bot.services.admission, "admit", cancelled)
    await press(fake_discord, alert, "approve", mod)

    await fake_discord.wait_until(
        lambda: title(waiting) == "Approved, but it could not be started", TIMEOUT
    )
    monkeypatch.undo()
    assert "restarted" in (field(waiting, "Why") or "")
    held = await bot.services.approvals.get(request_id, None)
    assert held.state is ApprovalState.FAILED and held.job_id is None
    await fake_discord.wait_until(lambda: approval_button(alert, "approve") is None, TIMEOUT)
    assert simulator.submit_attempts == 0 and await counted(bot, alice) == 0


async def test_an_unexpected_error_on_approve_ends_the_request_and_tells_everyone(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members, monkeypatch
):
    """Admission failing for the bot's own reasons (a locked database): not "the limits"."""
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)
    request_id = int(str(approval_button(alert, "approve")).split(":")[2])

    async def locked(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(bot.services.admission, "admit", locked)
    told = await private_reply(fake_discord, await press(fake_discord, alert, "approve", mod))
    monkeypatch.undo()

    assert only_for(told, mod)
    assert "has ended" in told.content and "try again" not in told.content.lower()
    await fake_discord.wait_until(
        lambda: title(waiting) == "Approved, but it could not be started", TIMEOUT
    )
    assert "ask again" in (field(waiting, "Why") or "")
    await fake_discord.wait_until(lambda: approval_button(alert, "approve") is None, TIMEOUT)
    assert "could not start it" in embed_text(alert) and "limits" not in embed_text(alert)
    # A late second click (a stale client) hears how it ended, not "refused by the limits".
    held = await bot.services.approvals.get(request_id, None)
    assert held.state is ApprovalState.FAILED
    assert "limits" not in already_decided(held)
    assert simulator.submit_attempts == 0 and await counted(bot, alice) == 0


async def test_approve_counts_the_members_roles_as_they_are_now(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    """The member was given a blocking role while the request waited: Approve sees it."""
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)
    muted = role_named(fake_discord, "Muted")
    await videolimit(fake_discord, "role", {"role": muted, "count": 0, "period": "1d"}, mod)
    fake_discord.world.guild.member(alice.id).roles.append(muted.id)  # type: ignore[union-attr]

    told = await private_reply(fake_discord, await press(fake_discord, alert, "approve", mod))

    assert only_for(told, mod) and "cannot be made now" in told.content
    await fake_discord.wait_until(
        lambda: title(waiting) == "Approved, but it cannot be made now", TIMEOUT
    )
    assert simulator.submit_attempts == 0 and await counted(bot, alice) == 0
    # The channel reads only that it cannot be made; the member's limit is told to them alone.
    assert not waiting.ephemeral and "blocked" not in embed_text(waiting)
    dm = await fake_discord.wait_until(lambda: fake_discord.dm_messages(alice), TIMEOUT)
    assert "blocked" in (dm[-1].content + embed_text(dm[-1]))


async def test_a_member_who_left_ends_the_request_and_the_moderator_is_told(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod)
    await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)
    guild = fake_discord.world.guild
    guild.members.remove(guild.member(alice.id))  # type: ignore[arg-type]

    told = await private_reply(fake_discord, await press(fake_discord, alert, "approve", mod))

    assert only_for(told, mod) and "left the server" in told.content
    await fake_discord.wait_until(lambda: approval_button(alert, "approve") is None, TIMEOUT)
    assert simulator.submit_attempts == 0


@pytest.mark.parametrize("action", ["approve", "deny"])
async def test_an_answer_after_the_expiry_time_does_not_go_through(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members, monkeypatch, action
):
    """Before the sweep has run: the click expires it, the member and the moderator hear it."""
    mod, alice = members["mod"], members["alice"]

    async def no_sweep() -> int:
        return 0

    monkeypatch.setattr(bot.approvals, "expire_due", no_sweep)
    await require_approval(fake_discord, mod, expires="30m")
    waiting = await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)
    fake_discord.advance(31 * 60)

    if action == "approve":
        told = await private_reply(fake_discord, await press(fake_discord, alert, action, mod))
    else:
        opener = await press(fake_discord, alert, action, mod)
        submit = await fake_discord.dispatch_modal_submit(opener, {"reason": "late"})
        told = await settled_answer(fake_discord, await fake_discord.wait_for_ack(submit))

    assert only_for(told, mod) and "had expired" in told.content
    await fake_discord.wait_until(lambda: title(waiting) == "Request expired", TIMEOUT)
    await fake_discord.wait_until(lambda: "Expired unanswered" in embed_text(alert), TIMEOUT)
    assert approval_button(alert, "approve") is None
    assert simulator.submit_attempts == 0 and await counted(bot, alice) == 0


def restartable(bot_env: Any, fake: FakeDiscord, simulator: SegmindSimulator) -> Any:
    """Starts a bot over the same database, as a restart would."""
    clock = DiscordTime(fake)

    async def started() -> AsyncIterator[VideoBot]:
        async with open_services(
            fast_settings(bot_env), clock=clock, segmind_base_url=simulator.base_url
        ) as opened:
            client = create_bot(opened, guild_ready_timeout=0.05, timings=Timings())
            async with running_client(client, fake):
                yield client

    return started


async def stopped_after_approval(
    bot_env: Any, fake: FakeDiscord, simulator: SegmindSimulator, *, admit: bool
) -> tuple[StoredMessage, StoredMessage]:
    """A request approved by the last run, which stopped before linking (or making) its job."""
    started = restartable(bot_env, fake, simulator)
    mod, alice = fake.world.member_named("mod"), fake.world.member_named("alice")
    first = started()
    bot = await first.__anext__()
    await require_approval(fake, mod)
    waiting = await ask(fake, alice, "a fox")
    alert = await card(fake)
    request_id = int(str(approval_button(alert, "approve")).split(":")[2])
    services = bot.services
    held = await services.approvals.get(request_id, None)
    held = await services.approvals.decide(held, ApprovalState.APPROVED, by=mod.id)
    if admit:
        await services.admission.admit(held.request, admission_origin(held, held.role_ids))
    await first.aclose()
    # Down a while: a request without a job is ended only once no process can be admitting it.
    fake.advance(STRANDED_AFTER_SECONDS)
    return waiting, alert


async def test_a_job_admitted_for_an_approval_before_a_restart_resumes_on_the_members_message(
    bot_env, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    waiting, alert = await stopped_after_approval(bot_env, fake_discord, simulator, admit=True)

    second = restartable(bot_env, fake_discord, simulator)()
    restarted = await second.__anext__()
    try:
        await wait_for_clip(fake_discord, channel(fake_discord, "general").id)
        assert len(simulator.submits) == 1 and await counted(restarted, members["alice"]) == 1
        await fake_discord.wait_until(lambda: title(waiting) != WAITING, TIMEOUT)
        await fake_discord.wait_until(lambda: approval_button(alert, "approve") is None, TIMEOUT)
        assert "Job #" in embed_text(alert)
    finally:
        await second.aclose()


async def test_an_approval_cut_short_before_admission_ends_and_the_member_is_told(
    bot_env, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    waiting, alert = await stopped_after_approval(bot_env, fake_discord, simulator, admit=False)

    second = restartable(bot_env, fake_discord, simulator)()
    restarted = await second.__anext__()
    try:
        await fake_discord.wait_until(
            lambda: title(waiting) == "Approved, but it could not be started", TIMEOUT
        )
        assert "ask again" in (field(waiting, "Why") or "")
        await fake_discord.wait_until(lambda: approval_button(alert, "approve") is None, TIMEOUT)
        assert simulator.submit_attempts == 0 and await counted(restarted, members["alice"]) == 0
    finally:
        await second.aclose()


async def test_a_card_never_posted_before_a_restart_is_posted_after_it(
    bot_env, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    mod, alice = members["mod"], members["alice"]
    started = restartable(bot_env, fake_discord, simulator)
    first = started()
    bot = await first.__anext__()

    async def stopped_first(*args: Any) -> None:
        return None  # the process stopped before it asked the moderators

    bot.approvals.ask_moderators = stopped_first  # type: ignore[method-assign]
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "a fox")
    assert title(waiting) == WAITING and not cards_in_mods(fake_discord)
    await first.aclose()

    second = started()
    await second.__anext__()
    try:
        alert = await card(fake_discord)
        await press(fake_discord, alert, "approve", mod)
        await wait_for_clip(fake_discord, channel(fake_discord, "general").id)
        posted = fake_discord.channel_messages(channel(fake_discord, "mods"))
        assert len(simulator.submits) == 1
        assert [m.id for m in posted if "Approval needed" in m.content] == [alert.id]  # once
    finally:
        await second.aclose()


async def test_videoqueue_lists_requests_waiting_for_approval_and_withdraw_ends_one(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, members
):
    """A waiting request is no job yet, but the member sees it (and can withdraw it) in
    /videoqueue; a moderator sees the server's, a private prompt hidden."""
    mod, alice = members["mod"], members["alice"]
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "a shy otter", private=True)
    await card(fake_discord)

    async def videoqueue(user: FakeMember, **options: Any) -> StoredMessage:
        record = await fake_discord.dispatch_slash_command("videoqueue", options, user=user)
        await fake_discord.wait_for_ack(record)
        return await settled_answer(fake_discord, record)

    mine = await videoqueue(alice)
    assert only_for(mine, alice)
    text = embed_text(mine)
    assert "Waiting for a moderator's approval** (1)" in text and "a shy otter" in text
    assert "<t:" in text  # when it expires
    server = await videoqueue(mod, scope="server")
    assert "*private prompt*" in embed_text(server) and "a shy otter" not in embed_text(server)
    assert f"<@{alice.id}>" in embed_text(server)

    withdraw = approval_button(mine, "cancel")
    assert withdraw is not None
    await fake_discord.wait_for_ack(
        await fake_discord.dispatch_component(mine, withdraw, user=alice)
    )
    await fake_discord.wait_until(lambda: title(waiting) != WAITING, TIMEOUT)
    assert "(1)" not in embed_text(await videoqueue(alice))
    assert simulator.submit_attempts == 0 and await counted(bot, alice) == 0
