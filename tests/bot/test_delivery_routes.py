# ruff: noqa: F811
"""Delivery routes under refusals and outages: never lost, never doubled, never endless."""

from __future__ import annotations

import logging

import pytest

from services.models import JobState
from tests.bot.conftest import SAMPLE
from tests.bot.faultkit import (  # noqa: F401 - fixtures
    bot_member,
    bot_timings,
    clock,
    env_overrides,
    job_when_idle,
    logged,
    request_video,
    services,
    settings_overrides,
    wait_for_clip,
)
from tests.bot.helpers import crash_after_post, running_bot, video, wait_idle
from tests.bot.test_durable_delivery import running_bot as quick_bot
from tests.fakediscord import Fault, Perm
from tests.fakediscord.messages import MessageBody

CHANNEL_POST = "POST /channels/*/messages"


@pytest.fixture(autouse=True)
def _capture_logs(caplog):
    caplog.set_level(logging.INFO)


def clips(fake, channel_id):
    return [m for m in fake.channel_messages(channel_id) if m.attachments]


async def test_attach_files_refused_after_an_hour_long_outage_still_delivers_by_dm(
    bot, fake_discord, services, simulator, clock
):
    alice = fake_discord.world.member_named("alice")
    channel = fake_discord.world.guild.channels[0]
    outage = fake_discord.inject(Fault.server_error(CHANNEL_POST, status=503, times=None))
    await request_video(fake_discord, alice)
    await fake_discord.wait_until(lambda: outage.hits >= 1)  # clip on disk, waiting
    clock.jump(3601)  # the outage lasted an hour: Segmind's link is gone
    fake_discord.advance(15 * 60 + 1)
    channel.deny(bot_member(fake_discord), Perm.ATTACH_FILES)
    outage.times = outage.hits  # Discord is back

    job = await job_when_idle(services)
    assert job.state is JobState.DELIVERED, job.error  # a DM would have carried the file
    assert fake_discord.dm_messages(alice)[0].attachments[0].data == SAMPLE


async def test_a_post_automod_blocks_ends_the_job_and_tells_the_member(
    bot, fake_discord, services, simulator
):
    alice = fake_discord.world.member_named("alice")
    blocked = fake_discord.inject(
        Fault.custom(
            CHANNEL_POST, 400, 200000, "Message was blocked by automatic moderation", times=None
        )
    )
    await request_video(fake_discord, alice)
    channel = fake_discord.world.guild.channels[0]
    await fake_discord.wait_until(
        lambda: clips(fake_discord, channel.id) or fake_discord.dm_messages(alice)
    )
    job = await job_when_idle(services)
    # AutoMod refuses it for good in the channel: another way in is taken, once.
    assert job.state is JobState.DELIVERED
    assert blocked.hits == 1


async def test_a_history_look_that_discord_fails_is_retried_not_taken_as_not_posted(
    fake_discord, bot_env, simulator
):
    alice = fake_discord.world.member_named("alice")
    async with running_bot(bot_env, simulator, fake_discord) as bot:
        record = await video(fake_discord, alice, {"prompt": "a moth"})
        clip = await wait_for_clip(fake_discord, record.channel_id)
        await wait_idle(bot.services.runner)
        await crash_after_post(bot)
    # Discord still flaky as the bot comes back: not knowing is not "not posted".
    fake_discord.inject(Fault.server_error("GET /channels/*/messages", status=503))
    fake_discord.advance(6 * 60)  # back after a few minutes

    async with running_bot(bot_env, simulator, fake_discord) as bot:
        await wait_idle(bot.services.runner)
    assert [m.id for m in clips(fake_discord, record.channel_id)] == [clip.id]


async def test_a_clip_posted_after_a_long_outage_in_a_busy_channel_is_found(
    fake_discord, bot_env, simulator
):
    alice = fake_discord.world.member_named("alice")
    channel = fake_discord.world.guild.channels[0]
    outage = fake_discord.inject(Fault.server_error(CHANNEL_POST, status=503, times=None))
    async with quick_bot(bot_env, simulator, fake_discord) as bot:
        record = await video(fake_discord, alice, {"prompt": "a busy moth"})
        await fake_discord.wait_until(lambda: outage.hits >= 2)
        dest = fake_discord.store.destination(channel.id)
        for n in range(120):  # members chat on while uploads fail
            await fake_discord.store.create_message(
                dest, alice.id, MessageBody({"content": f"chat {n}"}, [])
            )
        outage.times = outage.hits
        clip = await wait_for_clip(fake_discord, record.channel_id)
        await wait_idle(bot.services.runner)
        await crash_after_post(bot)
    fake_discord.advance(6 * 60)

    async with quick_bot(bot_env, simulator, fake_discord) as bot:
        await wait_idle(bot.services.runner)
    assert [m.id for m in clips(fake_discord, record.channel_id)] == [clip.id]
