"""Sync application commands only when their schema changed, or when asked to.

Discord rate-limits command creation (a few hundred a day), so syncing blindly on
every start can lock a bot out of updating its commands. The hash of what was last
synced is kept in the database, per target (one development server, or global).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)


def schema_hash(payload: list[dict[str, Any]]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def command_payload(
    tree: app_commands.CommandTree[Any], guild: discord.Object | None = None
) -> list[dict[str, Any]]:
    """The commands as a sync sends them, in a stable order (the doctor compares the same)."""
    commands = tree.get_commands(guild=guild)
    return sorted((command.to_dict(tree) for command in commands), key=lambda c: c["name"])


def schema_key(application_id: int | None, guild_id: int | None) -> str:
    """Where the last sync's schema hash is kept; per application too: a new bot token on the
    same database must still get its commands."""
    return f"command_schema:{application_id}:{guild_id or 'global'}"


async def sync_commands(bot: VideoBot, *, force: bool = False) -> bool:
    """Sync if the schema changed since the last sync (or ``force``); returns whether it synced.

    With SHARD_IDS only the process holding shard 0 syncs by itself: commands belong to the
    application, not to a shard, and every process syncing would spend Discord's daily
    command-creation budget once per process. Shard 0 is in exactly one process whatever the
    split, so no process needs to ask another. An explicit ``sync`` (``force``) syncs anywhere.
    """
    plan = bot.services.settings.shards
    if plan is not None and not plan.holds_first_shard and not force:
        log.info(
            "commands are synced by the process running shard 0; this one runs %s", plan.describe()
        )
        return False
    guild_id = bot.services.settings.discord_guild_id
    guild = discord.Object(guild_id) if guild_id else None
    if guild is not None:
        bot.tree.copy_global_to(guild=guild)
    digest = schema_hash(command_payload(bot.tree, guild))
    key = schema_key(bot.application_id, guild_id)
    if not force and await bot.services.storage.meta.get(key) == digest:
        log.info("commands unchanged since the last sync; not syncing")
        return False
    synced = await bot.tree.sync(guild=guild)
    await bot.services.storage.meta.set(key, digest)
    where = (
        f"server {guild_id}"
        if guild_id
        else "all servers (global; may take up to an hour to appear)"
    )
    log.info("synced %d commands to %s", len(synced), where)
    return True
