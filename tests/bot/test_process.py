"""The real bot process: SIGKILL mid-job then restart delivers once; SIGTERM stops cleanly."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from tests.bot.conftest import SAMPLE
from tests.harness.env import bot_env


@pytest.fixture
async def slow_simulator(simulator_factory):
    """Long enough processing that the bot is surely mid-job when it is killed."""
    return await simulator_factory(queue_seconds=0.05, processing_seconds=1.5)


async def start_bot(tmp_path: Path, fake, simulator, key: str) -> asyncio.subprocess.Process:
    env = bot_env(
        tmp_path,
        fake,
        SEGMIND_API_KEY=key,
        SEGMIND_BASE_URL=simulator.base_url,
        DISCORD_GUILD_ID=str(fake.world.guild.id),
        POLL_INTERVAL_SECONDS="0.5",  # the floor: the fastest an operator may poll
        LOG_LEVEL="INFO",
    )
    identified = len(fake.gateway.identify_payloads)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.harness.run_bot",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await fake.wait_until(lambda: len(fake.gateway.identify_payloads) > identified, timeout=20)
    return process


def job_state(tmp_path: Path) -> str | None:
    conn = sqlite3.connect(tmp_path / "bot.db")
    try:
        row = conn.execute("SELECT state FROM jobs ORDER BY id LIMIT 1").fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:  # not created yet
        return None
    finally:
        conn.close()


async def wait_for_state(tmp_path: Path, state: str, timeout: float = 15.0) -> None:
    """Watch the bot's own database; the wait ends on what it writes, not on a guess."""
    deadline = time.monotonic() + timeout
    while job_state(tmp_path) != state:
        if time.monotonic() > deadline:
            raise AssertionError(f"job never reached {state}; it is {job_state(tmp_path)}")
        await asyncio.sleep(0.02)


async def test_sigkill_mid_job_then_restart_delivers_on_the_same_message_with_one_submit(
    tmp_path, fake_discord, slow_simulator, segmind_api_key
):
    alice = fake_discord.world.member_named("alice")
    first = await start_bot(tmp_path, fake_discord, slow_simulator, segmind_api_key)
    record = await fake_discord.dispatch_slash_command(
        "video", {"prompt": "a lighthouse", "seed": 11}, user=alice
    )
    await fake_discord.wait_for_ack(record)
    await wait_for_state(tmp_path, "processing")
    first.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(first.wait(), 10) == -signal.SIGKILL
    assert len(slow_simulator.submits) == 1

    second = await start_bot(tmp_path, fake_discord, slow_simulator, segmind_api_key)
    try:
        clip = await fake_discord.wait_for_message(
            record.channel_id, lambda m: m.attachments, timeout=20
        )
        assert clip.attachments[0].data == SAMPLE
        assert clip.pinged_user_ids == {alice.id}
        assert "$0.36" in clip.embeds[0]["footer"]["text"]  # the price survives the restart
        progress = fake_discord.message(record.original_message_id)
        await fake_discord.wait_until(
            lambda: progress.embeds[0]["title"] == "Video finished", timeout=10
        )
        assert len(slow_simulator.submits) == 1
        assert slow_simulator.submit_attempts == 1
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 10)


async def test_sigterm_stops_within_seconds_and_the_job_resumes_next_start(
    tmp_path, fake_discord, simulator_factory, segmind_api_key
):
    simulator = await simulator_factory(queue_seconds=0.05, processing_seconds=60)
    alice = fake_discord.world.member_named("alice")
    bot = await start_bot(tmp_path, fake_discord, simulator, segmind_api_key)
    record = await fake_discord.dispatch_slash_command(
        "video", {"prompt": "a long river"}, user=alice
    )
    await fake_discord.wait_for_ack(record)
    await wait_for_state(tmp_path, "processing")
    started = time.monotonic()
    bot.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(bot.wait(), 10)
    stderr = (await bot.stderr.read()).decode()
    assert code == 0, stderr
    assert time.monotonic() - started < 5
    assert "stopped cleanly" in stderr
    assert job_state(tmp_path) == "processing"  # left for the next start, not failed
    assert fake_discord.world.token not in stderr and segmind_api_key not in stderr


async def test_simulate_runs_the_whole_bot_with_no_key_and_delivers_the_sample(
    tmp_path, fake_discord
):
    env = bot_env(
        tmp_path,
        fake_discord,
        DISCORD_GUILD_ID=str(fake_discord.world.guild.id),
        SIMULATOR_QUEUE_SECONDS="0.05",
        SIMULATOR_PROCESSING_SECONDS="0.2",
        POLL_INTERVAL_SECONDS="0.5",  # the floor: the fastest an operator may poll
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.harness.run_bot", "--simulate",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await fake_discord.wait_until(lambda: fake_discord.gateway.identify_payloads, timeout=20)
        alice = fake_discord.world.member_named("alice")
        record = await fake_discord.dispatch_slash_command(
            "video", {"prompt": "a cat surfing"}, user=alice
        )
        await fake_discord.wait_for_ack(record)
        clip = await fake_discord.wait_for_message(
            record.channel_id, lambda m: m.attachments, timeout=20
        )
        assert clip.attachments[0].data == SAMPLE
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    assert "simulating Segmind" in (await process.stderr.read()).decode()
