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
    servers = _count(len(client.guilds), "server")
    # With SHARD_IDS the servers are only this process's: say whose share they are.
    share = (
        f"{servers} on {settings.shards.describe()}"
        if settings.shards is not None
        else f"{servers}, {_count(client.shard_count or 1, 'shard')}"
    )
    user = f"{client.user} (id {client.user.id})" if client.user else "an unknown user"
    where = (
        f"simulated Segmind at {segmind} (no cost)"
        if settings.simulate
        else f"live Segmind at {segmind} (clips cost money)"
    )
    return (
        f"videobot {version.commit()} (discord.py {discord.__version__}) ready as {user}: "
        f"{share}, "
        f"database {settings.database_shown}, {where}"
    )
