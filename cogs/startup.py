"""A calm start: what an operator needs once the bot is up, and nothing that does not apply."""

from __future__ import annotations

import discord

from services import version
from services.settings import Settings


def quiet_voice_warnings() -> None:
    """The bot never joins a voice channel: discord.py's warnings that the voice libraries
    (PyNaCl, davey) are missing would only alarm the operator at every start."""
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def start_line(client: discord.Client, settings: Settings, segmind: str) -> str:
    """One line: which code, which account, how many servers and shards, where state lives,
    and whether clips cost money (``segmind`` is the base URL the Segmind client uses)."""
    servers = len(client.guilds)
    shards = client.shard_count or 1
    user = f"{client.user} (id {client.user.id})" if client.user else "an unknown user"
    where = (
        f"simulated Segmind at {segmind} (no cost)"
        if settings.simulate
        else f"live Segmind at {segmind} (clips cost money)"
    )
    return (
        f"videobot {version.commit()} (discord.py {discord.__version__}) ready as {user}: "
        f"{_count(servers, 'server')}, {_count(shards, 'shard')}, "
        f"database {settings.database_shown}, {where}"
    )
