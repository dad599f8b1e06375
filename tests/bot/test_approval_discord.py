"""Approval under Discord's own rules: Embed Links, the modal's 3 s, deferred answers, DMs."""

from __future__ import annotations

from typing import Any

import pytest

from cogs.approval.wording import WAITING_BELOW
from cogs.videobot import Timings, VideoBot
from tests.bot.helpers import TIMEOUT, embed_text, title
from tests.bot.test_approval import (  # noqa: F401 - fixtures
    WAITING,
    approval_button,
    ask,
    card,
    cards_in_mods,
    channel,
    fake_world,
    press,
    private_reply,
    require_approval,
    services,
)
from tests.bot.test_moderation import only_for, settled_answer
from tests.fakediscord import FakeDiscord, FakeMember, Fault, Perm, payloads

MODAL = 9
DEFERRED = 5


@pytest.fixture
def bot_timings() -> Timings:
    # A stalled database makes the bot defer after 0.2 s, as in test_acknowledgement.
    return Timings(approval_sweep_interval=0.05, admission_budget=0.2)


async def take_from_bot(fake: FakeDiscord, bot: VideoBot, name: str, permission: int) -> None:
    """Deny the bot ``permission`` in channel ``name``, and wait until the bot knows it."""
    target = channel(fake, name)
    target.deny(fake.world.guild.member(fake.world.bot.id), permission)
    await fake.dispatch_event("CHANNEL_UPDATE", payloads.channel(target))
    guild = bot.get_guild(fake.world.guild.id)
    assert guild is not None
    await fake.wait_until(
        lambda: not bot.get_channel(target.id).permissions_for(guild.me).value & permission
    )


def people(fake: FakeDiscord) -> tuple[FakeMember, FakeMember]:
    """The moderator and a member without the exempt role."""
    return fake.world.member_named("mod"), fake.world.member_named("alice")


def owner_card(fake: FakeDiscord) -> Any:
    owner = fake.world.member_named("operator")
    return next((m for m in fake.dm_messages(owner) if approval_button(m, "approve")), None)


async def test_without_embed_links_in_the_alerts_channel_the_card_goes_to_the_owner_whole(
    bot,
    fake_discord: FakeDiscord,
):
    """Discord drops embeds without Embed Links: a card there would offer Approve blind."""
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod)
    await take_from_bot(fake_discord, bot, "mods", Perm.EMBED_LINKS)

    await ask(fake_discord, alice, "a very questionable prompt")

    dm = await fake_discord.wait_until(lambda: owner_card(fake_discord), TIMEOUT)
    assert "questionable" in embed_text(dm)  # what Approve approves is on the card
    assert not cards_in_mods(fake_discord)  # no blank card with Approve on it


async def test_an_answered_card_in_a_channel_that_lost_embed_links_still_says_the_answer(
    bot,
    fake_discord: FakeDiscord,
):
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod, expires="30m")
    await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)
    await take_from_bot(fake_discord, bot, "mods", Perm.EMBED_LINKS)

    fake_discord.advance(31 * 60)

    await fake_discord.wait_until(lambda: "Expired unanswered" in alert.content, TIMEOUT)
    assert "a fox" in embed_text(alert)  # the card's old embed is left as it was
    assert approval_button(alert, "approve") is None


async def test_an_owner_dm_card_keeps_the_server_name_when_answered(
    bot,
    fake_discord: FakeDiscord,
):
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod, expires="30m")
    await take_from_bot(fake_discord, bot, "mods", Perm.SEND_MESSAGES)
    await ask(fake_discord, alice, "a fox")
    dm = await fake_discord.wait_until(lambda: owner_card(fake_discord), TIMEOUT)
    server = f"**{fake_discord.world.guild.name}**: "
    assert dm.content.startswith(server)

    fake_discord.advance(31 * 60)

    await fake_discord.wait_until(lambda: "Expired unanswered" in embed_text(dm), TIMEOUT)
    assert dm.content.startswith(server)  # an owner of several servers still knows which


async def test_deny_opens_its_form_at_once_under_a_busy_database(
    bot,
    fake_discord: FakeDiscord,
):
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)

    async with bot.services.storage.db.transaction():  # every read now waits for the lock
        opener = await press(fake_discord, alert, "deny", mod)
        assert opener.response_type == MODAL

    submit = await fake_discord.dispatch_modal_submit(opener, {"reason": "not here"})
    await fake_discord.wait_for_ack(submit)
    told = await settled_answer(fake_discord, submit)
    assert only_for(told, mod) and "Denied" in told.content
    await fake_discord.wait_until(lambda: title(waiting) == "Request denied", TIMEOUT)


async def test_a_member_who_opens_the_deny_form_changes_nothing(
    bot,
    fake_discord: FakeDiscord,
):
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod)
    waiting = await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)

    opener = await press(fake_discord, alert, "deny", alice)
    submit = await fake_discord.dispatch_modal_submit(opener, {"reason": "mine"})
    await fake_discord.wait_for_ack(submit)
    refused = await settled_answer(fake_discord, submit)

    assert only_for(refused, alice) and "Only moderators" in refused.content
    assert title(waiting) == WAITING
    assert approval_button(alert, "approve") is not None


async def test_a_deferred_held_request_says_it_waits_for_approval_not_that_it_is_on_its_way(
    bot,
    fake_discord: FakeDiscord,
):
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod)
    async with bot.services.storage.db.transaction():  # the hold waits: the bot defers first
        record = await fake_discord.dispatch_slash_command("video", {"prompt": "a fox"}, user=alice)
        await fake_discord.wait_for_ack(record)
        assert record.response_type == DEFERRED

    def notes(member: FakeMember) -> list[str]:
        return [
            m.content or ""
            for m in fake_discord.all_channel_messages(record.channel_id)
            if m.ephemeral and m.visible_to == {member.id}
        ]

    await card(fake_discord)
    await fake_discord.wait_until(lambda: WAITING_BELOW in notes(alice), TIMEOUT)
    assert not any("on its way" in note for note in notes(alice))


async def test_an_expiry_notice_discord_failed_to_take_is_told_on_a_later_sweep(
    bot, fake_discord: FakeDiscord
):
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod, expires="30m")
    waiting = await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)
    general = channel(fake_discord, "general")
    # 429 five times in a row on the edit: discord.py gives up after five tries.
    fault = fake_discord.inject(
        Fault.rate_limited(f"PATCH /channels/{general.id}/messages/*", retry_after=0.05, times=5)
    )
    fake_discord.advance(31 * 60)
    await fake_discord.wait_until(lambda: "Expired unanswered" in embed_text(alert), TIMEOUT)
    await fake_discord.wait_until(lambda: fault.hits == 5, TIMEOUT)
    assert title(waiting) == WAITING  # not told yet: Discord did not take it

    fake_discord.advance(5 * 60)  # past the retry's grace and backoff

    await fake_discord.wait_until(lambda: title(waiting) == "Request expired", TIMEOUT)
    assert not fake_discord.dm_messages(alice)  # told once, where they asked


async def test_a_public_request_whose_channel_refuses_for_good_is_told_by_dm(
    bot, fake_discord: FakeDiscord
):
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod, expires="30m")
    waiting = await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)
    general = channel(fake_discord, "general")
    fake_discord.inject(
        Fault.missing_permissions(f"PATCH /channels/{general.id}/messages/*", times=None)
    )
    fake_discord.advance(31 * 60)

    dm = await fake_discord.wait_until(
        lambda: next((m for m in fake_discord.dm_messages(alice) if m.embeds), None), TIMEOUT
    )
    assert title(dm) == "Request expired"
    assert title(waiting) == WAITING  # the channel refused: the DM told it instead
    await fake_discord.wait_until(lambda: "Expired unanswered" in embed_text(alert), TIMEOUT)


async def test_a_card_discord_failed_to_update_is_updated_on_a_later_sweep(
    bot, fake_discord: FakeDiscord
):
    mod, alice = people(fake_discord)
    await require_approval(fake_discord, mod, expires="30m")
    waiting = await ask(fake_discord, alice, "a fox")
    alert = await card(fake_discord)
    mods = channel(fake_discord, "mods")
    fault = fake_discord.inject(
        # 503: discord.py does not retry it itself (it does 500, 502 and 504, slowly).
        Fault.server_error(f"PATCH /channels/{mods.id}/messages/*", status=503)
    )
    fake_discord.advance(31 * 60)
    await fake_discord.wait_until(lambda: title(waiting) == "Request expired", TIMEOUT)
    await fake_discord.wait_until(lambda: fault.exhausted, TIMEOUT)
    assert approval_button(alert, "approve") is not None  # the card still offers Approve

    fake_discord.advance(5 * 60)

    await fake_discord.wait_until(lambda: "Expired unanswered" in embed_text(alert), TIMEOUT)
    assert approval_button(alert, "approve") is None
