"""Two real bot processes on one PostgreSQL database: SIGKILL one mid-job, the other
delivers it, with exactly one submit to Segmind."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from tests.bot.conftest import SAMPLE
from tests.fakediscord import FakeWorld
from tests.harness.env import bot_env

SHARDS = 2


@pytest.fixture
def fake_world() -> FakeWorld:
    """One server, on shard 0 of 2, where alice asks for a clip in #general."""
    world = FakeWorld.default()
    world.guilds.clear()
    guild = world.add_guild("Shard 0 Server", shard=(0, SHARDS))
    guild.add_text_channel("general")
    guild.add_member("alice")
    return world


async def start_process(
    folder: Path, fake, simulator, key: str, database_url: str, shard: int
) -> asyncio.subprocess.Process:
    folder.mkdir(parents=True, exist_ok=True)
    env = bot_env(
        folder,
        fake,
        SEGMIND_API_KEY=key,
        SEGMIND_BASE_URL=simulator.base_url,
        DATABASE_URL=database_url,
        SHARD_COUNT=str(SHARDS),
        SHARD_IDS=str(shard),
        JOB_LEASE_SECONDS="2",
        POLL_INTERVAL_SECONDS="0.5",
        LOG_LEVEL="INFO",
    )
    identified = len(fake.gateway.identify_payloads)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.harness.run_bot",
        cwd=folder, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await fake.wait_until(lambda: len(fake.gateway.identify_payloads) > identified, timeout=20)
    return process


async def job_state(database_url: str) -> str | None:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT state FROM jobs ORDER BY id LIMIT 1")
    finally:
        await conn.close()


async def test_sigkill_of_one_process_mid_job_and_the_other_delivers_it_with_one_submit(
    tmp_path, fake_discord, simulator_factory, segmind_api_key, postgres_server
):
    simulator = await simulator_factory(queue_seconds=0.05, processing_seconds=3)
    url = await postgres_server.new_database()
    alice = fake_discord.world.member_named("alice")
    guild = fake_discord.world.guilds[0]
    first = await start_process(
        tmp_path / "first", fake_discord, simulator, segmind_api_key, url, 0
    )
    second = await start_process(
        tmp_path / "second", fake_discord, simulator, segmind_api_key, url, 1
    )
    try:
        record = await fake_discord.dispatch_slash_command(
            "video", {"prompt": "a lighthouse", "seed": 11}, user=alice, channel=guild.channels[0]
        )
        await fake_discord.wait_for_ack(record)
        async with asyncio.timeout(15):
            while await job_state(url) != "processing":
                await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(first.wait(), 10) == -signal.SIGKILL
        assert len(simulator.submits) == 1

        # The second process, on the other shard, takes the job over once its lease runs
        # out (2 s) and posts the clip in the first one's server, over REST.
        clip = await fake_discord.wait_for_message(
            record.channel_id, lambda m: m.attachments, timeout=30
        )
        assert clip.attachments[0].data == SAMPLE
        assert clip.pinged_user_ids == {alice.id}
        progress = fake_discord.message(record.original_message_id)
        await fake_discord.wait_until(
            lambda: progress.embeds[0]["title"] == "Video finished", timeout=10
        )
        async with asyncio.timeout(10):
            while await job_state(url) != "delivered":
                await asyncio.sleep(0.05)
        assert len(simulator.submits) == 1 and simulator.submit_attempts == 1
        clips = [m for m in fake_discord.channel_messages(record.channel_id) if m.attachments]
        assert clips == [clip]
    finally:
        for process in (first, second):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 15)
    await postgres_server.drop_database(url)
