"""`/videolimit channels add | remove | show`: where `/video` works.

Mixed into ``LimitsCog`` (the `/videolimit` group), so these subcommands share its
moderator check and its private defer. The rule itself (a listed channel or a thread of
one) lives in ``services.allowed_channels``; this module phrases it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.limits.common import guild_id_of, reply
from cogs.pages import paginate
from cogs.permissions import moderator_only
from cogs.words import discord_timestamp, plural
from services.allowed_channels import ALLOW_ACTION, DISALLOW_ACTION, ChannelListChange
from services.models import AllowedChannel, AuditEntry

if TYPE_CHECKING:
    from discord.ext.commands import Cog as _Mixin  # lets mypy check the group's callbacks

    from cogs.videobot import VideoBot
else:
    _Mixin = object  # at run time a plain mixin: LimitsCog is the one Cog

log = logging.getLogger(__name__)

# Channels members type `/video` in: text and announcement channels, the text chat of voice
# and stage channels, and forums (whose posts are threads, so a forum counts through them).
# Categories and threads are not offered: a category holds no messages, and a thread is
# covered by its parent (and is archived away in days).
ListableChannel = (
    discord.TextChannel | discord.VoiceChannel | discord.StageChannel | discord.ForumChannel
)


class ChannelCommands(_Mixin):
    """Mixed into LimitsCog."""

    bot: VideoBot

    channels = app_commands.Group(
        name="channels", description="Where /video works: when any are listed, only there."
    )

    @channels.command(name="add", description="Let /video work in a channel (and its threads).")
    @app_commands.describe(channel="A channel, or a forum (its posts count)")
    @moderator_only
    async def channels_add(
        self, interaction: discord.Interaction, channel: ListableChannel
    ) -> None:
        change = await self.bot.services.channels.add(
            guild_id_of(interaction), channel.id, actor_id=interaction.user.id
        )
        await reply(interaction, render_channel_change(change))

    @channels.command(name="remove", description="Stop /video working in a listed channel.")
    @app_commands.describe(channel="A listed channel")
    @moderator_only
    async def channels_remove(
        self, interaction: discord.Interaction, channel: ListableChannel
    ) -> None:
        change = await self.bot.services.channels.remove(
            guild_id_of(interaction), channel.id, actor_id=interaction.user.id
        )
        await reply(interaction, render_channel_change(change))

    @channels.command(name="show", description="The channels where /video works on this server.")
    @moderator_only
    async def channels_show(self, interaction: discord.Interaction) -> None:
        listed = await self.bot.services.channels.listed(guild_id_of(interaction))
        await reply(interaction, embeds=render_channel_list(listed))

    @commands.Cog.listener("on_guild_channel_delete")
    async def forget_deleted_channel(self, channel: discord.abc.GuildChannel) -> None:
        """A deleted channel leaves the list: the picker cannot offer it to remove any more.

        Left listed, it would be named in every refusal, and as the only one it would keep
        `/video` out of every channel with no way back.
        """
        await self._unlist_deleted(channel.guild.id, [channel.id])

    @commands.Cog.listener("on_guild_available")
    async def forget_channels_deleted_while_away(self, guild: discord.Guild) -> None:
        """Channels deleted while the bot was offline leave the list once the server is back.

        Discord's GUILD_CREATE lists every channel of the server, hidden ones included, so
        a listed id it does not name is gone.
        """
        try:
            listed = await self.bot.services.channels.listed(guild.id)
        except Exception:
            log.warning("guild=%s could not read the allowed channels", guild.id, exc_info=True)
            return
        gone = [c.channel_id for c in listed if guild.get_channel(c.channel_id) is None]
        await self._unlist_deleted(guild.id, gone)

    async def _unlist_deleted(self, guild_id: int, channel_ids: Sequence[int]) -> None:
        me = self.bot.user
        for channel_id in channel_ids:
            try:
                await self.bot.services.channels.remove(
                    guild_id, channel_id, actor_id=me.id if me else 0, why="deleted"
                )
            except Exception:
                log.warning(
                    "guild=%s channel=%s could not unlist the deleted channel",
                    guild_id,
                    channel_id,
                    exc_info=True,
                )


# --- wording ---------------------------------------------------------------------------


def render_channel_change(change: ChannelListChange) -> str:
    """What an add or remove did, and where `/video` works now."""
    mention = f"<#{change.channel_id}>"
    if change.added:
        if not change.changed:
            return f"{mention} is already listed; nothing was changed."
        others = change.listed - 1
        rest = f" and the {plural(others, 'other listed channel')}" if others else ""
        return (
            f"`/video` now works in {mention} and its threads{rest}, and nowhere else. "
            "Members elsewhere are told where it works."
        )
    if not change.changed:
        if change.listed == 0:
            return f"{mention} is not listed, and no channel is: `/video` works everywhere."
        return f"{mention} is not listed; nothing was changed."
    if change.listed == 0:
        return f"{mention} was the last listed channel: `/video` works in every channel again."
    return (
        f"`/video` no longer works in {mention}. It still works in the "
        f"{plural(change.listed, 'listed channel')} (see `/videolimit channels show`)."
    )


def render_channel_list(listed: Sequence[AllowedChannel]) -> list[discord.Embed]:
    """`/videolimit channels show`: each channel, who listed it and when."""
    if not listed:
        header = ["No channel is listed: `/video` works in every channel."]
    elif len(listed) == 1:
        header = ["`/video` works only in this channel and its threads:"]
    else:
        header = [f"`/video` works only in these {len(listed)} channels and their threads:"]
    # Shown as mentions: should a deleted channel linger (its removal failed), Discord
    # renders it as deleted, so moderators can see why /video is refused there.
    lines = [
        f"<#{c.channel_id}> · added by <@{c.added_by}> {discord_timestamp(c.added_at)}"
        for c in listed
    ]
    return paginate("Where /video works", header, lines)


def channel_history_words(entry: AuditEntry) -> str | None:
    """An allow-list change in `/videolimit history`'s words; None when it is not one."""
    if entry.action not in (ALLOW_ACTION, DISALLOW_ACTION):
        return None
    kind, _, ident = entry.target.partition(":")
    mention = f"<#{ident}>" if kind == "channel" and ident.isdigit() else "a channel"
    listed_text, _, why = entry.detail.partition("; ")
    count = listed_text.removeprefix("listed=")
    if entry.action == ALLOW_ACTION:
        return f"let `/video` work in {mention}"
    reason = " (the channel was deleted)" if why == "deleted" else ""
    everywhere = ": `/video` works everywhere again" if count == "0" else ""
    return f"stopped `/video` working in {mention}{reason}{everywhere}"
