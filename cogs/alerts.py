"""Telling a server's moderators about something they must act on (budget reached, bad key)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord

from services.errors import BotError, SegmindInsufficientCredits
from services.limits import LimitService

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
# One alert per server and kind of problem in this long, however many jobs hit it.
ALERT_REPEAT_SECONDS = 3600.0


class ModeratorAlerts:
    """Alerts for moderators, sent in the background so no member's reply waits on them."""

    def __init__(self, bot: VideoBot) -> None:
        self._bot = bot
        self._alerted: dict[tuple[int, str], float] = {}
        self._background = bot.background

    def send(self, guild: discord.Guild, text: str) -> None:
        """Tell the moderators of ``guild`` in the background (the caller must not wait)."""
        self._background.spawn(notify_moderators(self._bot.services.limits, self._bot, guild, text))

    def account_problem_soon(self, guild_id: int, error: BotError) -> None:
        """``account_problem`` in the background, for a caller answering a member."""
        self._background.spawn(self.account_problem(guild_id, error))

    async def account_problem(self, guild_id: int, error: BotError) -> None:
        """Segmind refused the key or has no credits: once an hour per server and kind.

        Awaited by the job runner (inside its shielded submit), so the moderators are told
        before the member's failure says they were, and before a shutdown closes the session.
        """
        guild = self._bot.get_guild(guild_id)
        if guild is None:
            return
        key, now = (guild_id, type(error).__name__), self._bot.services.clock.time()
        if now - self._alerted.get(key, -ALERT_REPEAT_SECONDS) < ALERT_REPEAT_SECONDS:
            return
        self._alerted[key] = now
        await notify_moderators(
            self._bot.services.limits, self._bot, guild, self._account_text(error)
        )

    def _account_text(self, error: BotError) -> str:
        if isinstance(error, SegmindInsufficientCredits):
            minutes = int(self._bot.services.settings.credits_recheck_seconds // 60)
            return (
                "The bot's Segmind account is out of credits, so no videos can be made. "
                "Whoever hosts the bot needs to top it up at segmind.com. New requests are "
                f"refused meanwhile; the bot checks again every {minutes} minutes."
            )
        return (
            "Segmind refused the bot's API key or settings, so no videos can be made. "
            "Whoever hosts the bot needs to check `SEGMIND_API_KEY` (and "
            "`SEGMIND_BASE_URL`); the details are in the bot's log."
        )


async def notify_moderators(
    limits: LimitService, client: discord.Client, guild: discord.Guild, text: str
) -> bool:
    """Post once: the alert channel, else DM the owner, else the system channel; never raises.

    The owner comes before the system channel because that is usually a public channel
    (#general), and an alert about the bill or the bot's key is for moderators.
    """
    configured = await _alert_channel(limits, guild)
    if configured is not None and await _post(guild, configured, text):
        return True
    if await _tell_owner(client, guild, text):
        return True
    if guild.system_channel is not None and await _post(guild, guild.system_channel, text):
        return True
    log.warning("guild=%s could not tell the moderators", guild.id)
    return False


async def _alert_channel(limits: LimitService, guild: discord.Guild) -> Any | None:
    try:
        channel_id = await limits.alert_channel_id(guild.id)
    except Exception:
        log.exception("guild=%s could not read the alert channel", guild.id)
        return None
    if channel_id is None:
        return None
    channel = guild.get_channel(channel_id)
    if channel is None:
        log.warning("guild=%s alert channel=%s is gone", guild.id, channel_id)
    return channel


async def post_for_moderators(
    limits: LimitService,
    client: discord.Client,
    guild: discord.Guild,
    text: str,
    *,
    embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
    system_channel: bool = True,
) -> discord.Message | None:
    """As ``notify_moderators``, with an embed and buttons; returns the message posted.

    ``system_channel``: whether the last resort may be used; a post showing a private
    request must not land in a public #general.
    """
    extra: dict[str, Any] = {"embed": embed, "view": view}
    configured = await _alert_channel(limits, guild)
    if configured is not None and (posted := await _send(guild, configured, text, extra))[0]:
        return posted[1]
    if (posted := await _send_owner(client, guild, text, extra))[0]:
        return posted[1]
    fallback = guild.system_channel if system_channel else None
    if fallback is not None and (posted := await _send(guild, fallback, text, extra))[0]:
        return posted[1]
    log.warning("guild=%s could not reach the moderators", guild.id)
    return None


async def _post(guild: discord.Guild, channel: Any, text: str) -> bool:
    return (await _send(guild, channel, text, {}))[0]


async def _send(
    guild: discord.Guild, channel: Any, text: str, extra: dict[str, Any]
) -> tuple[bool, discord.Message | None]:
    """Whether it was posted, and the message (when discord.py hands it back)."""
    if not may_post(guild, channel, embed=extra.get("embed") is not None):
        return False, None
    extra = {key: value for key, value in extra.items() if value is not None}
    try:
        message: discord.Message = await channel.send(
            text[:2000], allowed_mentions=NO_PINGS, **extra
        )
    except Exception as exc:  # noqa: BLE001 - a failed alert must never break the caller
        log.warning("guild=%s alert to channel=%s failed: %s", guild.id, channel.id, exc)
        return False, None
    log.info("guild=%s moderators told in channel=%s", guild.id, channel.id)
    return True, message


def may_post(guild: discord.Guild, channel: Any, *, embed: bool) -> bool:
    """Whether the bot may post in ``channel`` (a server's), with an embed if ``embed``.

    Without Embed Links Discord silently drops a bot's embeds: a card whose prompt is in its
    embed would reach the moderators blank, with Approve still on it. Such a channel is no
    place for it, and the caller falls back as for a missing channel.
    """
    me = guild.me
    if me is None:
        return False
    permissions = channel.permissions_for(me)
    return bool(permissions.send_messages and (permissions.embed_links or not embed))


def owner_dm_text(guild: discord.Guild, text: str) -> str:
    """A DM to the owner names the server first: an owner may own several."""
    return f"**{discord.utils.escape_markdown(guild.name[:100])}**: {text}"[:2000]


async def _tell_owner(client: discord.Client, guild: discord.Guild, text: str) -> bool:
    return (await _send_owner(client, guild, text, {}))[0]


async def _send_owner(
    client: discord.Client, guild: discord.Guild, text: str, extra: dict[str, Any]
) -> tuple[bool, discord.Message | None]:
    extra = {key: value for key, value in extra.items() if value is not None}
    try:
        owner: discord.Member | discord.User | None = guild.owner
        if owner is None and guild.owner_id is not None:
            owner = await client.fetch_user(guild.owner_id)
        if owner is None:
            return False, None
        message = await owner.send(
            owner_dm_text(guild, text),
            allowed_mentions=NO_PINGS,
            **extra,
        )
    except Exception as exc:  # noqa: BLE001 - a closed DM must never break the caller
        log.info("guild=%s owner could not be told by DM: %r", guild.id, exc)
        return False, None
    log.info("guild=%s moderators told by DM to the owner", guild.id)
    return True, message
