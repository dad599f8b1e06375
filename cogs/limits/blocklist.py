"""`/videolimit blocklist add | remove | show`: words and /regex/ kept out of prompts.

Mixed into ``LimitsCog`` (the `/videolimit` group), so these subcommands share its
moderator check and its private defer. The matching lives in ``services.blocklist``;
the words in ``blocklist_wording``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import discord
from discord import app_commands

from cogs.limits.blocklist_wording import TERM_HELP, render_added, render_blocklist, render_removed
from cogs.limits.common import guild_id_of, reply
from cogs.permissions import is_moderator, moderator_only
from services.blocklist_terms import MAX_TERM_LENGTH

if TYPE_CHECKING:
    from discord.ext.commands import Cog as _Mixin  # lets mypy check the group's callbacks

    from cogs.videobot import VideoBot
else:
    _Mixin = object  # at run time a plain mixin: LimitsCog is the one Cog


async def blocked_term_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """The server's terms that contain what is typed; only moderators are shown them."""
    if interaction.guild_id is None or not await is_moderator(interaction):
        return []
    bot = cast("VideoBot", interaction.client)
    typed = current.strip().casefold()
    terms = await bot.services.blocklist.term_texts(interaction.guild_id)
    return [
        app_commands.Choice(name=term, value=term) for term in terms if typed in term.casefold()
    ][:25]


class BlocklistCommands(_Mixin):
    """Mixed into LimitsCog."""

    bot: VideoBot

    blocklist = app_commands.Group(
        name="blocklist", description="Words and /regex/ patterns refused in prompts."
    )

    @blocklist.command(name="add", description="Refuse prompts with a word, phrase or /regex/.")
    @app_commands.describe(term=TERM_HELP)
    @moderator_only
    async def blocklist_add(
        self,
        interaction: discord.Interaction,
        term: app_commands.Range[str, 1, MAX_TERM_LENGTH],
    ) -> None:
        added = await self.bot.services.blocklist.add(
            guild_id_of(interaction), term, actor_id=interaction.user.id
        )
        await reply(interaction, render_added(added))

    @blocklist.command(name="remove", description="Allow a blocked word, phrase or /regex/ again.")
    @app_commands.describe(term="The term as listed by /videolimit blocklist show")
    @app_commands.autocomplete(term=blocked_term_autocomplete)
    @moderator_only
    async def blocklist_remove(
        self,
        interaction: discord.Interaction,
        term: app_commands.Range[str, 1, MAX_TERM_LENGTH],
    ) -> None:
        removed = await self.bot.services.blocklist.remove(
            guild_id_of(interaction), term, actor_id=interaction.user.id
        )
        await reply(interaction, render_removed(removed))

    @blocklist.command(name="show", description="The blocked terms and the latest refused prompts.")
    @moderator_only
    async def blocklist_show(self, interaction: discord.Interaction) -> None:
        overview = await self.bot.services.blocklist.overview(guild_id_of(interaction))
        await reply(interaction, embeds=render_blocklist(overview))
