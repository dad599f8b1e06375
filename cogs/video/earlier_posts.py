"""Finding a clip an earlier attempt already posted, before posting it again.

A post whose answer was lost (a 5xx after Discord stored it), or a crash between
Discord storing a clip and the bot recording it, would otherwise post the clip, and
ping its member, twice. A durable mark is written before each attempt; the next
attempt looks in the channel's and the member's DM's recent history for the bot's own
message, recognised by this database's signed button ids or the clip's file name.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord

from cogs.discord_errors import is_transient
from cogs.video import render
from services.models import Job

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

# From this far before the last attempt's mark (clocks differ), through this many
# messages (a busy channel chats on meanwhile).
POSTING_LOOKBACK = 60.0
POSTING_LOOKUP_LIMIT = 500


def bot_permissions(bot: VideoBot, job: Job) -> discord.Permissions | None:
    """The bot's permissions in the job's channel, or None when the cache does not know."""
    guild = bot.get_guild(job.guild_id)
    channel = guild.get_channel(job.channel_id) if guild is not None else None
    if guild is None or channel is None or guild.me is None:
        return None
    return channel.permissions_for(guild.me)


class EarlierPosts:
    def __init__(self, bot: VideoBot) -> None:
        self._bot = bot

    async def find(self, job: Job) -> int | None:
        """The id of the bot's own message with this job's clip (or its notice), if any.

        Raises on Discord's own trouble (5xx, 429): not knowing is not "not posted".
        """
        permissions = bot_permissions(self._bot, job)
        if permissions is not None and not permissions.read_message_history:
            # Discord answers an empty history then: the nonce, for a few minutes, is all.
            log.warning(
                "job=%s cannot look for an earlier post: Read Message History is missing in "
                "channel=%s",
                job.id,
                job.channel_id,
            )
        since = datetime.fromtimestamp((job.posting_started_at or 0) - POSTING_LOOKBACK, UTC)
        after = discord.Object(discord.utils.time_snowflake(since))
        marks = {
            self._bot.custom_ids.make("reroll", job.id),  # a public clip
            self._bot.custom_ids.make("open", job.id),  # a private clip's notice
        }
        for channel in await self._places(job):
            found = await self._look_in(job, channel, after, marks)
            if found is not None:
                return found
        return None

    async def _places(self, job: Job) -> list[discord.abc.Messageable]:
        places: list[discord.abc.Messageable] = [
            self._bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        ]
        # After a restart the cache (GUILDS intent only) knows no user: ask Discord.
        user = self._bot.get_user(job.user_id)
        if user is None:
            with contextlib.suppress(discord.HTTPException):
                user = await self._bot.fetch_user(job.user_id)
        if user is not None:
            places.append(user)
        return places

    async def _look_in(
        self, job: Job, channel: discord.abc.Messageable, after: discord.Object, marks: set[str]
    ) -> int | None:
        own = self._bot.user.id if self._bot.user is not None else None
        try:
            async for message in channel.history(limit=POSTING_LOOKUP_LIMIT, after=after):
                if message.author.id == own and _carries_clip(message, job, marks):
                    return message.id
        except discord.HTTPException as error:
            if is_transient(error):
                raise
            # Without access the nonce is what still protects a repeat.
            log.info("job=%s could not look for an earlier post (%s)", job.id, error.code)
        return None


def _carries_clip(message: discord.Message, job: Job, marks: set[str]) -> bool:
    """The job's clip, a link to it, or its notice: by a signed button id or the file name."""
    ids = {
        getattr(child, "custom_id", None)
        for row in message.components
        for child in getattr(row, "children", ())
    }
    names = {attachment.filename for attachment in message.attachments}
    return bool(ids & marks) or not names.isdisjoint(_clip_names(job))


def _clip_names(job: Job) -> set[str]:
    """The names the clip may carry: today's, and the one a bot before the upgrade gave it.

    A post made by the older bot and never recorded (a crash) is otherwise posted again by
    the new one; in a DM the name is all that marks it.
    """
    return {render.clip_filename(job), f"video-{job.id}.mp4"}
