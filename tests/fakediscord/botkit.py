"""Tiny discord.py bots for the fake's own self-tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from .fake import FakeDiscord

# discord.py fires on_ready only `guild_ready_timeout` after the last GUILD_CREATE (default 2 s).
FAST_READY = 0.05


def make_bot(intents: discord.Intents | None = None, **options: Any) -> commands.Bot:
    """A bot with the real bot's intents (GUILDS only) that is ready 50 ms after login."""
    options.setdefault("allowed_mentions", discord.AllowedMentions.none())
    options.setdefault("guild_ready_timeout", FAST_READY)
    chosen = intents or discord.Intents(guilds=True)
    return commands.Bot(command_prefix="!", intents=chosen, **options)


def guild_object(fake: FakeDiscord) -> discord.Object:
    """The first guild of the fake's world, as discord.py's `guild=` arguments want it."""
    return discord.Object(id=fake.world.guild.id)


async def sync_to_guild(bot: commands.Bot, fake: FakeDiscord) -> None:
    """Register the tree in the test guild, as a development sync would."""
    await bot.tree.sync(guild=guild_object(fake))


def on_command(
    bot: commands.Bot,
    fake: FakeDiscord,
    name: str,
    body: Callable[[discord.Interaction], Awaitable[None]],
) -> None:
    """Add a guild slash command without options whose callback is `body`."""
    bot.tree.add_command(
        app_commands.Command(name=name, description=f"{name} for tests", callback=body),
        guild=guild_object(fake),
    )


async def resolved(future: asyncio.Future[Any], timeout: float = 3.0) -> Any:
    """The future's result, failing the test if the bot never got there."""
    return await asyncio.wait_for(future, timeout)
