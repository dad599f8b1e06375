"""The operator's ceiling: MAX_DAILY_SPEND_USD across every server, and ALLOWED_GUILDS.

Anyone with Manage Server can raise their own server's limits as high as they like; the
operator's daily ceiling bounds the whole bill, and ALLOWED_GUILDS keeps the bot to the
servers the operator chose. Both refuse privately, before anything is billed.
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from cogs.videobot import create_bot
from cogs.words import NOT_SERVED
from services.app import open_services
from services.simulator import SegmindSimulator
from tests.bot.conftest import fast_settings
from tests.bot.helpers import MAKING, answer, has_button, title, video, wait_for_clip, wait_idle
from tests.fakediscord import (
    FakeDiscord,
    FakeMember,
    FakeWorld,
    InteractionRecord,
    StoredMessage,
    running_client,
)

CEILING_REFUSAL = "The bot has spent all it may today, across every server it is in"
CEILING_ALERT = "its operator's daily spending limit of $0.72 (UTC day) is reached"


@pytest.fixture
def fake_world() -> FakeWorld:
    """The default server and a second one the same bot is in, with a member each."""
    world = FakeWorld.default()
    second = world.add_guild("Second Guild")
    second.add_text_channel("lobby")
    second.add_member("bob")
    return world


@pytest.fixture
def bot_env(bot_env, fake_world: FakeWorld):
    """Two clips' worth a day across all servers; commands synced globally, for both."""
    env = {key: value for key, value in bot_env.items() if key != "DISCORD_GUILD_ID"}
    return {**env, "MAX_DAILY_SPEND_USD": "0.72", "CLIP_COST_USD": "0.36"}


async def settled(fake: FakeDiscord, record: InteractionRecord) -> StoredMessage:
    await fake.wait_for_ack(record)
    message = answer(fake, record)
    await fake.wait_until(lambda: not message.loading)
    return message


def only_for(message: StoredMessage, member: FakeMember) -> bool:
    return message.ephemeral and message.visible_to == {member.id}


async def test_the_daily_ceiling_refuses_privately_in_every_server_and_alerts_once_a_day(
    bot, fake_discord: FakeDiscord, services, simulator: SegmindSimulator, caplog
):
    caplog.set_level(logging.INFO)
    first, second = fake_discord.world.guilds
    alice = fake_discord.world.member_named("alice")
    bob = next(m for m in second.members if m.user.username == "bob")
    lobby = second.channels[0]

    here = await video(fake_discord, alice, {"prompt": "a lighthouse"})
    there = await video(fake_discord, bob, {"prompt": "a harbour"}, channel=lobby)
    assert title(answer(fake_discord, here)) == MAKING == title(answer(fake_discord, there))
    await wait_for_clip(fake_discord, here.channel_id)
    await wait_for_clip(fake_discord, lobby.id)
    await wait_idle(services.runner)

    refusals = [
        (alice, await video(fake_discord, alice, {"prompt": "one more"})),
        (bob, await video(fake_discord, bob, {"prompt": "one more"}, channel=lobby)),
        (alice, await video(fake_discord, alice, {"prompt": "and another"})),
    ]
    for member, record in refusals:
        refusal = await settled(fake_discord, record)
        assert only_for(refusal, member)
        assert CEILING_REFUSAL in refusal.content
        assert re.search(r"<t:\d+:R>", refusal.content)  # when it resets
    assert len(simulator.submits) == 2
    assert len(await services.storage.jobs.recent(first.id)) == 1
    assert len(await services.storage.jobs.recent(second.id)) == 1

    # Each server's moderators (here: its owner, by DM) hear it once; the operator's log too.
    owner = fake_discord.world.owner

    def alerts() -> list[StoredMessage]:
        return [m for m in fake_discord.dm_messages(owner) if CEILING_ALERT in m.content]

    told = await fake_discord.wait_until(lambda: len(alerts()) == 2 and alerts(), 10)
    assert {"Test Guild" in m.content for m in told} == {True, False}  # one per server
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert [e for e in errors if "MAX_DAILY_SPEND_USD=0.72 reached" in e] == errors[:1]
    assert len(errors) == 1


async def test_a_server_not_on_allowed_guilds_is_refused_privately_and_nothing_is_made(
    fake_discord: FakeDiscord, bot_env: dict[str, str], simulator: SegmindSimulator
):
    # The second server appears only once the bot is up (leaving a server the bot finds at
    # start is a route the fake does not serve). A command from it is refused at once.
    first, second = fake_discord.world.guilds
    fake_discord.world.guilds.remove(second)
    bob = next(m for m in second.members if m.user.username == "bob")
    env = {**bot_env, "ALLOWED_GUILDS": str(first.id)}
    async with (
        open_services(fast_settings(env), segmind_base_url=simulator.base_url) as services,
        running_client(create_bot(services, guild_ready_timeout=0.05), fake_discord),
    ):
        fake_discord.world.guilds.append(second)
        record = await fake_discord.dispatch_slash_command(
            "video", {"prompt": "a harbour"}, user=bob, channel=second.channels[0]
        )
        refusal = await settled(fake_discord, record)

        assert only_for(refusal, bob) and refusal.content == NOT_SERVED
        assert await services.storage.jobs.recent(second.id) == []
    assert simulator.submit_attempts == 0


async def test_queued_jobs_of_a_server_taken_off_the_list_are_not_sent_at_the_restart(
    fake_discord: FakeDiscord, bot_env: dict[str, str], simulator: SegmindSimulator
):
    first, second = fake_discord.world.guilds
    bob = next(m for m in second.members if m.user.username == "bob")
    simulator.hang("submit", times=1)  # bob's job stays queued behind a stuck first one
    one_slot = {**bot_env, "MAX_CONCURRENT_JOBS": "1"}
    async with (
        open_services(fast_settings(one_slot), segmind_base_url=simulator.base_url) as services,
        running_client(create_bot(services, guild_ready_timeout=0.05), fake_discord),
    ):
        alice = fake_discord.world.member_named("alice")
        await video(fake_discord, alice, {"prompt": "holds the only slot"})
        await video(
            fake_discord, bob, {"prompt": "from the second server"}, channel=second.channels[0]
        )
        queued = await services.storage.jobs.recent(second.id)
        assert [job.state.value for job in queued] == ["queued"]
    # While the bot was down, it was removed from the second server, and the operator
    # took that server off the list: no GUILD_DELETE will ever say so.
    fake_discord.world.guilds.remove(second)
    env = {**one_slot, "ALLOWED_GUILDS": str(first.id)}
    async with (
        open_services(fast_settings(env), segmind_base_url=simulator.base_url) as services,
        running_client(create_bot(services, guild_ready_timeout=0.05), fake_discord),
    ):
        async with asyncio.timeout(10):  # until bob's job leaves the queue, one way or another
            while (ended := (await services.storage.jobs.recent(second.id))[0]).state.value == (
                "queued"
            ):
                await asyncio.sleep(0.02)
    assert ended.state.value == "cancelled" and not ended.counts_toward_limit
    assert [s["prompt"] for s in simulator.submits].count("from the second server") == 0


async def test_buttons_in_a_server_off_the_list_do_nothing(
    fake_discord: FakeDiscord, bot_env: dict[str, str], simulator: SegmindSimulator
):
    first, second = fake_discord.world.guilds
    bob = next(m for m in second.members if m.user.username == "bob")
    async with (
        open_services(fast_settings(bot_env), segmind_base_url=simulator.base_url) as services,
        running_client(create_bot(services, guild_ready_timeout=0.05), fake_discord),
    ):
        record = await video(fake_discord, bob, {"prompt": "a pier"}, channel=second.channels[0])
        clip = await wait_for_clip(fake_discord, record.channel_id)
        await wait_idle(services.runner)
    fake_discord.world.guilds.remove(second)  # so that the restart does not leave it at once
    env = {**bot_env, "ALLOWED_GUILDS": str(first.id)}
    async with (
        open_services(fast_settings(env), segmind_base_url=simulator.base_url) as services,
        running_client(create_bot(services, guild_ready_timeout=0.05), fake_discord),
    ):
        fake_discord.world.guilds.append(second)
        delete = has_button(clip, "delete")
        assert delete is not None
        click = await fake_discord.dispatch_component(clip, delete, user=bob)
        await fake_discord.wait_for_ack(click)
        refusal = await fake_discord.wait_for_message(
            record.channel_id, lambda m: NOT_SERVED in m.content, viewer=bob, timeout=10
        )
    assert only_for(refusal, bob) and not clip.deleted
