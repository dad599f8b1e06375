"""Telling a server's moderators about something they must act on (budget reached, bad key)."""

from __future__ import annotations

import logging
from typing import Any

import discord

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()


async def notify_moderators(bot: Any, guild: discord.Guild, text: str) -> bool:
    """Post once: the alert channel, else the system channel, else DM the owner; never raises."""
    try:
        channel_id = await bot.services.limits.alert_channel_id(guild.id)
    except Exception:
        log.exception("guild=%s could not read the alert channel", guild.id)
        channel_id = None
    candidates: list[Any] = []
    if channel_id is not None:
        configured = guild.get_channel(channel_id)
        if configured is None:
            log.warning("guild=%s alert channel=%s is gone", guild.id, channel_id)
        else:
            candidates.append(configured)
    if guild.system_channel is not None:
        candidates.append(guild.system_channel)
    me = guild.me
    for channel in candidates:
        if me is None or not channel.permissions_for(me).send_messages:
            continue
        try:
            await channel.send(text[:2000], allowed_mentions=NO_PINGS)
            log.info("guild=%s moderators told in channel=%s", guild.id, channel.id)
            return True
        except discord.HTTPException as exc:
            log.warning("guild=%s alert to channel=%s failed: %s", guild.id, channel.id, exc)
    try:
        owner = guild.owner or await bot.fetch_user(guild.owner_id)
        await owner.send(
            f"**{discord.utils.escape_markdown(guild.name[:100])}**: {text}"[:2000],
            allowed_mentions=NO_PINGS,
        )
        log.info("guild=%s moderators told by DM to the owner", guild.id)
        return True
    except Exception as exc:  # noqa: BLE001 - a closed DM must never break the caller
        log.warning("guild=%s could not tell the moderators: %r", guild.id, exc)
        return False
