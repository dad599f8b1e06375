"""Two bot processes on one PostgreSQL database: they split the gateway by shard and share
the jobs, the limits and the Segmind slots.

Both bots run in this test process, each built by bot.py's own factory from its own
settings (its shard, the same DATABASE_URL). tests/bot/test_process.py kills a real one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from cogs.videobot import VideoBot, create_bot
from services.app import open_services
from services.models import Job, JobState
from services.simulator import SegmindSimulator
from tests.bot.conftest import SAMPLE, fast_settings
from tests.bot.helpers import wait_for_clip
from tests.fakediscord import FakeDiscord, FakeWorld, running_client

SHARDS = 2


@pytest.fixture
def fake_world() -> FakeWorld:
    """One server on each of two shards, each with #general and two members."""
    world = FakeWorld.default()
    world.guilds.clear()
    for shard in range(SHARDS):
        guild = world.add_guild(f"Shard {shard} Server", shard=(shard, SHARDS))
        guild.add_text_channel("general")
        guild.add_member(f"first{shard}")
        guild.add_member(f"second{shard}")
    return world


@pytest.fixture
async def database_url(postgres_server) -> AsyncIterator[str]:
    url = await postgres_server.new_database()
    yield url
    await postgres_server.drop_database(url)


@asynccontextmanager
async def process(
    env: dict[str, str], folder: Path, shard: int, simulator: SegmindSimulator, fake: FakeDiscord
) -> AsyncIterator[VideoBot]:
    """One bot process's worth: its shard of two, the shared database, its own clips folder."""
    env = {key: value for key, value in env.items() if key != "DISCORD_GUILD_ID"}
    env |= {"SHARD_COUNT": str(SHARDS), "SHARD_IDS": str(shard), "JOB_LEASE_SECONDS": "2"}
    settings = replace(fast_settings(env), database_path=folder / f"process{shard}" / "bot.db")
    async with open_services(settings, segmind_base_url=simulator.base_url) as services:
        bot = create_bot(services, guild_ready_timeout=0.05)
        async with running_client(bot, fake) as running:
            yield running


async def delivered(bot: VideoBot, job_id: int) -> Job:
    """The job once the bot recorded its delivery (the post shows a moment before)."""
    async with asyncio.timeout(10):
        while True:
            job = await bot.services.storage.jobs.get(job_id)
            if job is not None and job.state is JobState.DELIVERED:
                return job
            await asyncio.sleep(0.05)


async def test_twenty_requests_split_across_two_processes_get_exactly_the_three_allowed(
    fake_discord, bot_env, tmp_path, simulator_factory, database_url
):
    # The operator's ceiling is the one limit both servers share: three clips' worth. Twenty
    # requests at once, ten through each process, must make exactly three submits.
    simulator = await simulator_factory(queue_seconds=0.05, processing_seconds=0.3)
    env = bot_env | {"DATABASE_URL": database_url, "MAX_DAILY_SPEND_USD": "1.08"}
    guilds = fake_discord.world.guilds
    async with AsyncExitStack() as stack:
        for shard in range(SHARDS):
            await stack.enter_async_context(process(env, tmp_path, shard, simulator, fake_discord))
        records = []
        for round_ in range(5):
            for guild in guilds:
                for member in guild.members[-2:]:
                    records.append(
                        await fake_discord.dispatch_slash_command(
                            "video",
                            {"prompt": f"a kite {round_}", "seed": round_},
                            user=member,
                            channel=guild.channels[0],
                        )
                    )
        for record in records:
            await fake_discord.wait_for_ack(record)

        def clips() -> int:
            return sum(
                1
                for guild in guilds
                for message in fake_discord.channel_messages(guild.channels[0])
                if message.attachments
            )

        await fake_discord.wait_until(lambda: clips() == 3, timeout=20)
    assert len(records) == 20
    assert len(simulator.submits) == 3
    assert fake_discord.unanswered_interactions() == []


async def test_a_process_that_stops_hands_its_job_to_the_other_which_delivers_it_once(
    fake_discord, bot_env, tmp_path, simulator_factory, database_url
):
    # Long enough that the first is surely mid-job when it stops (closing takes a moment).
    simulator = await simulator_factory(queue_seconds=0.05, processing_seconds=5)
    env = bot_env | {"DATABASE_URL": database_url}
    guild = fake_discord.world.guilds[0]  # shard 0's server: the first process answers it
    member, channel = guild.members[-1], guild.channels[0]
    async with process(env, tmp_path, 1, simulator, fake_discord) as second:
        async with process(env, tmp_path, 0, simulator, fake_discord) as first:
            record = await fake_discord.dispatch_slash_command(
                "video", {"prompt": "a lighthouse", "seed": 5}, user=member, channel=channel
            )
            await fake_discord.wait_for_ack(record)
            storage = first.services.storage
            await fake_discord.wait_until(lambda: len(simulator.submits) == 1, timeout=10)
            job = await storage.jobs.get(1)
            assert job is not None and job.lease_owner == first.services.runner.owner
        # Stopped gracefully mid-job: handed back at once, so the other carries on long
        # before the lease (2 s) would have run out, and never submits it again.
        clip = await wait_for_clip(fake_discord, channel.id)
        assert clip.attachments[0].data == SAMPLE
        assert clip.pinged_user_ids == {member.user.id}
        job = await delivered(second, 1)
        assert job.lease_owner == second.services.runner.owner
        progress = fake_discord.message(record.original_message_id)
        await fake_discord.wait_until(
            lambda: progress.embeds[0]["title"] == "Video finished", timeout=10
        )
    assert len(simulator.submits) == 1 and simulator.submit_attempts == 1
    assert [m for m in fake_discord.channel_messages(channel) if m.attachments] == [clip]
