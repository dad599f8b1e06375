"""Without DISCORD_GUILD_ID, commands are synced globally (once)."""

from __future__ import annotations

import pytest

from cogs.videobot import create_bot
from tests.fakediscord import running_client


@pytest.fixture
def bot_env(bot_env):
    return {key: value for key, value in bot_env.items() if key != "DISCORD_GUILD_ID"}


async def test_commands_are_synced_globally_without_a_development_guild(fake_discord, services):
    for _ in range(2):
        async with running_client(create_bot(services, guild_ready_timeout=0.05), fake_discord):
            pass
    assert len(fake_discord.calls_to("PUT /applications/*/commands")) == 1
    assert fake_discord.calls_to("PUT /applications/*/guilds/*/commands") == []
