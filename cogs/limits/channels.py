"""`/videolimit channels add | remove | show`: where `/video` works.

Mixed into ``LimitsCog`` (the `/videolimit` group), so these subcommands share its
moderator check and its private defer. The rule itself (a listed channel or a thread of
one) lives in ``services.allowed_channels``; ``channels_wording`` phrases it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.limits.channels_wording import render_channel_change, render_channel_list
from cogs.limits.common import guild_id_of, reply
from cogs.permissions import moderator_only

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
