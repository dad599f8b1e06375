"""Telling a server's moderators about something they must act on (budget reached, bad key)."""

from __future__ import annotations

import logging
from typing import Any

import discord

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()


async def notify_moderators(bot: Any, guild: discord.Guild, text: str) -> bool:
    """Post once: the alert channel, else DM the owner, else the system channel; never raises.

    The owner comes before the system channel because that is usually a public channel
    (#general), and an alert about the bill or the bot's key is for moderators.
    """
    configured = await _alert_channel(bot, guild)
    if configured is not None and await _post(guild, configured, text):
        return True
    if await _tell_owner(bot, guild, text):
        return True
    if guild.system_channel is not None and await _post(guild, guild.system_channel, text):
        return True
    log.warning("guild=%s could not tell the moderators", guild.id)
    return False


async def _alert_channel(bot: Any, guild: discord.Guild) -> Any | None:
    try:
        channel_id = await bot.services.limits.alert_channel_id(guild.id)
    except Exception:
        log.exception("guild=%s could not read the alert channel", guild.id)
        return None
    if channel_id is None:
        return None
    channel = guild.get_channel(channel_id)
    if channel is None:
        log.warning("guild=%s alert channel=%s is gone", guild.id, channel_id)
    return channel


async def _post(guild: discord.Guild, channel: Any, text: str) -> bool:
    me = guild.me
    if me is None or not channel.permissions_for(me).send_messages:
        return False
    try:
        await channel.send(text[:2000], allowed_mentions=NO_PINGS)
    except Exception as exc:  # noqa: BLE001 - a failed alert must never break the caller
        log.warning("guild=%s alert to channel=%s failed: %s", guild.id, channel.id, exc)
        return False
    log.info("guild=%s moderators told in channel=%s", guild.id, channel.id)
    return True


async def _tell_owner(bot: Any, guild: discord.Guild, text: str) -> bool:
    try:
        owner = guild.owner or await bot.fetch_user(guild.owner_id)
        await owner.send(
            f"**{discord.utils.escape_markdown(guild.name[:100])}**: {text}"[:2000],
            allowed_mentions=NO_PINGS,
        )
    except Exception as exc:  # noqa: BLE001 - a closed DM must never break the caller
        log.info("guild=%s owner could not be told by DM: %r", guild.id, exc)
        return False
    log.info("guild=%s moderators told by DM to the owner", guild.id)
    return True
