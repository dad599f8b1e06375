"""SHARD_COUNT and SHARD_IDS: two bot processes split one fake Discord's servers by shard.

Both bots run in this test process, each as bot.py builds it from its own settings. Each has
its own SQLite database, which settings refuse beside a share of the shards (the limits
would be counted apart): the shard plan is set after reading them, for a test of the
gateway's split alone. Sharing one PostgreSQL database is tests/bot/test_shared_database.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from discord.ext import commands

from cogs.videobot import VideoBot, create_bot
from services.app import open_services
from services.shards import ShardPlan
from services.simulator import SegmindSimulator
from tests.bot.conftest import SAMPLE, fast_settings
from tests.bot.helpers import video, wait_for_clip
from tests.fakediscord import FakeDiscord, FakeWorld, running_client

SHARDS = 2


@pytest.fixture
def fake_world() -> FakeWorld:
    """One server on each of two shards, each with #general and a member who asks for clips."""
    world = FakeWorld.default()
    world.guilds.clear()
    for shard in range(SHARDS):
        guild = world.add_guild(f"Shard {shard} Server", shard=(shard, SHARDS))
        guild.add_text_channel("general")
        guild.add_member(f"member{shard}")
    return world


def process_env(bot_env: dict[str, str], tmp_path: Path, shard: int) -> dict[str, str]:
    """One process's settings: its shard of two, its own database, commands synced globally."""
    env = {key: value for key, value in bot_env.items() if key != "DISCORD_GUILD_ID"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / f'process{shard}' / 'bot.db'}"
    env["SHARD_COUNT"] = str(SHARDS)
    return env


@asynccontextmanager
async def two_processes(
    bot_env: dict[str, str], tmp_path: Path, simulator: SegmindSimulator, fake: FakeDiscord
) -> AsyncIterator[list[VideoBot]]:
    """Both bots ready, shard 0's first (as an operator would start them), stopped on exit."""
    async with AsyncExitStack() as stack:
        bots: list[VideoBot] = []
        for shard in range(SHARDS):
            settings = replace(
                fast_settings(process_env(bot_env, tmp_path, shard)),
                shards=ShardPlan(SHARDS, (shard,)),
            )
            services = await stack.enter_async_context(
                open_services(settings, segmind_base_url=simulator.base_url)
            )
            bot = create_bot(services, guild_ready_timeout=0.05)
            bots.append(await stack.enter_async_context(running_client(bot, fake)))
        yield bots


async def test_each_process_runs_its_shard_and_sees_only_its_servers(
    fake_discord, bot_env, tmp_path, simulator, caplog
):
    caplog.set_level(logging.INFO, logger="cogs.videobot")
    guilds = fake_discord.world.guilds
    async with two_processes(bot_env, tmp_path, simulator, fake_discord) as bots:
        for shard, bot in enumerate(bots):
            assert isinstance(bot, commands.AutoShardedBot)
            assert (bot.shard_count, bot.shard_ids) == (SHARDS, [shard])
            assert [g.id for g in bot.guilds] == [guilds[shard].id]
    identified = [p["shard"] for p in fake_discord.gateway.identify_payloads]
    assert identified == [[0, SHARDS], [1, SHARDS]]
    started = [r.getMessage() for r in caplog.records if "ready as" in r.getMessage()]
    assert ["1 server on shard 0 of 2" in line for line in started] == [True, False]
    assert ["1 server on shard 1 of 2" in line for line in started] == [False, True]


async def test_a_video_in_each_server_is_made_by_the_process_that_owns_its_shard(
    fake_discord, bot_env, tmp_path, simulator
):
    guilds = fake_discord.world.guilds
    async with two_processes(bot_env, tmp_path, simulator, fake_discord) as bots:
        for shard in range(SHARDS):
            member = guilds[shard].members[-1]
            channel = guilds[shard].channels[0]
            await video(
                fake_discord, member, {"prompt": f"a fox on shard {shard}"}, channel=channel
            )
            clip = await wait_for_clip(fake_discord, channel.id)
            assert clip.attachments[0].data == SAMPLE
            assert clip.pinged_user_ids == {member.user.id}
        for shard, bot in enumerate(bots):
            job = await bot.services.storage.jobs.get(1)
            assert job is not None and job.guild_id == guilds[shard].id
            assert job.request.prompt == f"a fox on shard {shard}"
            assert await bot.services.storage.jobs.get(2) is None  # nothing of the other's
    assert fake_discord.unanswered_interactions() == []


async def test_only_the_process_running_shard_zero_syncs_global_commands(
    fake_discord, bot_env, tmp_path, simulator
):
    async with two_processes(bot_env, tmp_path, simulator, fake_discord):
        pass
    assert len(fake_discord.calls_to("PUT /applications/*/commands")) == 1
    assert fake_discord.calls_to("PUT /applications/*/guilds/*/commands") == []


async def test_without_a_shard_plan_the_bot_is_discord_py_plain_bot(services):
    # AutoShardedBot would ask GET /gateway/bot and launch shards through its own queue; one
    # process without SHARD_COUNT keeps the plain Bot, as before sharding existed.
    bot = create_bot(services, guild_ready_timeout=0.05)
    assert not isinstance(bot, commands.AutoShardedBot)
    await bot.close()


async def test_allowed_servers_on_another_shard_are_not_taken_for_a_typo(
    fake_discord, bot_env, tmp_path, simulator, caplog
):
    # Only shard 0's server is allowed: shard 1's process sees none of the list, which from
    # there is indistinguishable from a typo, so it leaves nothing and says why, calmly.
    guilds = fake_discord.world.guilds
    bot_env = {**bot_env, "ALLOWED_GUILDS": str(guilds[0].id)}
    caplog.set_level(logging.INFO, logger="cogs.videobot")
    async with two_processes(bot_env, tmp_path, simulator, fake_discord):
        pass
    assert fake_discord.calls_to("DELETE /users/@me/guilds/*") == []
    notes = [(r.levelno, r.getMessage()) for r in caplog.records if "ALLOWED_GUILDS" in r.msg]
    assert notes == [
        (
            logging.INFO,
            "ALLOWED_GUILDS lists no server on shard 1 of 2: this process leaves none of the "
            "servers it sees (1); their commands are refused",
        )
    ]


async def test_a_listed_id_on_this_processs_shard_that_is_no_server_is_still_a_typo(
    fake_discord, bot_env, tmp_path, simulator, caplog
):
    not_a_server = fake_discord.world.guilds[1].channels[0].id
    while (not_a_server >> 22) % SHARDS != 1:
        not_a_server += 1 << 22  # an id this process could check: on its shard, not a server
    bot_env = {**bot_env, "ALLOWED_GUILDS": str(not_a_server)}
    caplog.set_level(logging.INFO, logger="cogs.videobot")
    async with two_processes(bot_env, tmp_path, simulator, fake_discord):
        pass
    assert fake_discord.calls_to("DELETE /users/@me/guilds/*") == []
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "ALLOWED_GUILDS names none of the 1 servers on shard 1 of 2" in errors[0]


async def test_a_stop_while_this_process_s_shards_are_still_connecting_ends_it(
    fake_discord, bot_env, simulator
):
    # discord.py waits 5 s between shards and retries a failed one forever, closed or not:
    # SIGTERM in that window must still end the process.
    env = {key: value for key, value in bot_env.items() if key != "DISCORD_GUILD_ID"}
    env |= {"SHARD_COUNT": str(SHARDS), "SHARD_IDS": f"0-{SHARDS - 1}"}
    async with open_services(fast_settings(env), segmind_base_url=simulator.base_url) as services:
        bot = create_bot(services, guild_ready_timeout=0.05)
        await bot.login(fake_discord.world.token)
        connecting = asyncio.create_task(bot.connect())
        # Shard 0 is in; shard 1 waits out discord.py's pause between identifies.
        await fake_discord.wait_until(
            lambda: len(fake_discord.gateway.identify_payloads) == 1, timeout=10
        )
        await bot.close()  # what bot.py's SIGTERM handler does
        done, _ = await asyncio.wait({connecting}, timeout=15)
        if not done:
            connecting.cancel()
        assert done, "the bot kept connecting its shards after it was closed"
        assert len(fake_discord.gateway.identify_payloads) == 1
