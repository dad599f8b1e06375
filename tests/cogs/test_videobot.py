"""ALLOWED_GUILDS: the bot leaves servers the operator did not list, and stays in the rest."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import discord
import pytest

from cogs.videobot import VideoBot, leave_unless_allowed
from services.settings import load_settings

GOOD = {"DISCORD_TOKEN": "discord-token-value-123456", "SEGMIND_API_KEY": "SG_secret_key_value_987"}


class Guild:
    """A server the bot is in; records whether it was asked to leave, or refuses to."""

    def __init__(self, guild_id: int, *, refuses: bool = False) -> None:
        self.id = guild_id
        self.refuses = refuses
        self.left = False
        self.leaves = 0

    async def leave(self) -> None:
        if self.refuses:
            response: Any = SimpleNamespace(status=500, reason="Server Error")
            raise discord.HTTPException(response, "try later")
        self.leaves += 1
        self.left = True


async def test_a_server_not_on_the_list_is_left_and_listed_ones_are_kept() -> None:
    settings = load_settings({**GOOD, "ALLOWED_GUILDS": "10, 20"})
    listed, other = Guild(10), Guild(30)

    assert not await leave_unless_allowed(settings, listed)
    assert await leave_unless_allowed(settings, other)
    assert (listed.left, other.left) == (False, True)


async def test_without_a_list_every_server_is_kept() -> None:
    guild = Guild(30)
    assert not await leave_unless_allowed(load_settings(GOOD), guild)
    assert not guild.left


async def test_a_failed_leave_is_logged_and_does_not_break_the_bot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings({**GOOD, "ALLOWED_GUILDS": "10"})
    assert not await leave_unless_allowed(settings, Guild(30, refuses=True))
    assert "guild=30 could not be left" in caplog.text


async def test_a_server_announced_twice_at_start_is_left_once() -> None:
    # discord.py announces each server at start as available, then the bot is ready.
    guild = Guild(30)
    bot: Any = SimpleNamespace(
        services=SimpleNamespace(settings=load_settings({**GOOD, "ALLOWED_GUILDS": "10"})),
        _left=set(),
        _warned_no_match=False,
        guilds=[Guild(10), guild],
    )
    await VideoBot._leave_unless_allowed(bot, guild)
    await VideoBot._leave_unless_allowed(bot, guild)
    assert guild.leaves == 1


async def test_a_list_naming_none_of_the_bots_servers_leaves_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A channel id pasted for a server id: leaving every server would need every one to
    # invite the bot again.
    servers = [Guild(30), Guild(31)]
    bot: Any = SimpleNamespace(
        services=SimpleNamespace(settings=load_settings({**GOOD, "ALLOWED_GUILDS": "10"})),
        _left=set(),
        _warned_no_match=False,
        guilds=servers,
    )
    for server in servers:
        await VideoBot._leave_unless_allowed(bot, server)
    assert [server.leaves for server in servers] == [0, 0]
    assert "names none of the 2 servers" in caplog.text
