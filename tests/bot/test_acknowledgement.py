"""The 3-second promise holds even when admission is slow (a burst queues on the database)."""

from __future__ import annotations

import asyncio

import pytest

from cogs.videobot import Timings, create_bot
from services.models import VideoRequest
from services.periods import LimitSpec
from tests.bot.conftest import SAMPLE
from tests.bot.helpers import TIMEOUT, answer, click, video, wait_for_clip, wait_for_reply
from tests.fakediscord import Fault, running_client

DEFERRED = 5


@pytest.fixture
async def patient_bot(fake_discord, services):
    client = create_bot(services, guild_ready_timeout=0.05, timings=Timings(admission_budget=0.2))
    async with running_client(client, fake_discord):
        yield client


async def test_a_stalled_admission_is_acknowledged_privately_then_delivered(
    patient_bot, fake_discord, services, simulator
):
    alice = fake_discord.world.member_named("alice")
    async with services.storage.db.transaction():  # every admission now waits for the lock
        record = await fake_discord.dispatch_slash_command(
            "video", {"prompt": "a slow snail"}, user=alice
        )
        await fake_discord.wait_for_ack(record)
        assert record.response_type == DEFERRED
        assert fake_discord.message(record.original_message_id).ephemeral
        assert simulator.submits == []
    clip = await fake_discord.wait_for_message(
        record.channel_id, lambda m: m.attachments, timeout=10
    )
    assert clip.attachments[0].data == SAMPLE
    assert clip.pinged_user_ids == {alice.id}
    # Everyone sees one public progress message for the job; the note stayed private.
    public = fake_discord.channel_messages(record.channel_id)
    assert any(
        m.embeds and m.embeds[0]["title"] in ("Making your video", "Video finished") for m in public
    )
    assert not any("on its way" in (m.content or "") for m in public)
    assert len(simulator.submits) == 1


async def test_a_stalled_refusal_stays_private(patient_bot, fake_discord, services, simulator):
    alice = fake_discord.world.member_named("alice")
    await services.storage.limits.set_user_limit(
        fake_discord.world.guild.id, alice.id, LimitSpec(0, 3600), actor_id=1, at=0.0
    )
    async with services.storage.db.transaction():
        record = await fake_discord.dispatch_slash_command(
            "video", {"prompt": "a blocked idea"}, user=alice
        )
        await fake_discord.wait_for_ack(record)
    refusal = await fake_discord.wait_until(
        lambda: next(
            (
                m
                for m in fake_discord.all_channel_messages(record.channel_id)
                if "blocked" in (m.content or "")
            ),
            None,
        )
    )
    assert refusal.ephemeral and refusal.visible_to == {alice.id}
    assert simulator.submit_attempts == 0


async def stored_jobs(services, guild_id: int, state: str, timeout: float = 5.0):
    """Wait until the bot's database shows a job of the server in ``state``."""
    async with asyncio.timeout(timeout):
        while True:
            jobs = await services.storage.jobs.recent(guild_id)
            if jobs and all(job.state.value == state for job in jobs):
                return jobs
            await asyncio.sleep(0.01)


async def test_when_even_the_late_acknowledgement_fails_the_admitted_job_never_runs(
    patient_bot, fake_discord, services, simulator
):
    alice = fake_discord.world.member_named("alice")
    guild = fake_discord.world.guild
    # The server's rules are read once and cached: only admission waits for the lock below.
    await warm_server_rules(services, guild.id, guild.channels[0].id, alice.id)
    fake_discord.inject(Fault.unknown_interaction())  # the defer arrives too late
    async with services.storage.db.transaction():
        await fake_discord.dispatch_slash_command("video", {"prompt": "too late"}, user=alice)
        await fake_discord.wait_for_call("POST /interactions/**")
    [job] = await stored_jobs(services, guild.id, "cancelled")
    assert job.error == "not acknowledged"
    assert simulator.submit_attempts == 0
    # Nor after a restart: the runner leaves it alone.
    assert await services.storage.jobs.unfinished() == []


async def test_when_the_late_acknowledgement_fails_during_screening_nothing_is_stored(
    patient_bot, fake_discord, services, simulator
):
    # The first request after a start reads the server's rules (channels, blocklist) from
    # SQLite: a stalled read is acknowledged like a stalled admission, and if even that
    # fails, the request ends before anything is stored.
    alice = fake_discord.world.member_named("alice")
    fake_discord.inject(Fault.unknown_interaction())
    async with services.storage.db.transaction():
        await fake_discord.dispatch_slash_command("video", {"prompt": "too late"}, user=alice)
        await fake_discord.wait_for_call("POST /interactions/**")
        assert fake_discord.unanswered_interactions() == []
    # The database's lock is fair: the stalled read goes first, so once a later request has
    # its clip, the first one has long ended, and it stored nothing.
    await wait_for_clip(
        fake_discord, (await video(fake_discord, alice, {"prompt": "in time"})).channel_id
    )
    [job] = await services.storage.jobs.recent(fake_discord.world.guild.id)
    assert job.request.prompt == "in time"
    assert simulator.submit_attempts == 1


async def warm_server_rules(services, guild_id: int, channel_id: int, user_id: int) -> None:
    await services.channels.check(guild_id, channel_id, None)
    await services.blocklist.screen(guild_id, channel_id, user_id, VideoRequest.create("warm"))


async def test_buttons_and_moderator_commands_answer_in_time_while_the_database_is_busy(
    patient_bot, fake_discord, services
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    clip = await wait_for_clip(
        fake_discord, (await video(fake_discord, alice, {"prompt": "x"})).channel_id
    )
    async with services.storage.db.transaction():  # every lookup now waits for the lock
        show = await fake_discord.dispatch_slash_command(
            "videolimit show", {"user": alice}, user=mod
        )
        await fake_discord.wait_for_ack(show)
        delete = await click(fake_discord, clip, "delete", alice)
        reroll = await click(fake_discord, clip, "reroll", alice)
        assert fake_discord.unanswered_interactions() == []
        assert answer(fake_discord, show).ephemeral  # nothing of it shows to the channel
        assert not clip.deleted
    # Once the database answers, each one finishes.
    usage = await wait_for_reply(fake_discord, show, lambda m: bool(m.embeds))
    assert usage.ephemeral and usage.visible_to == {mod.id}
    await fake_discord.wait_until(lambda: clip.deleted, TIMEOUT)
    await wait_for_clip(fake_discord, clip.channel_id, after=clip.id)
    assert delete.response_type is not None and reroll.response_type is not None
