"""`/videoqueue`: a member's queued and running videos, or (moderators) the whole server's.

Always private and pinging nobody. The rules (who may cancel what, what counts) live in
``services.job_queue``; the words in ``wording``; the listing and its buttons in ``views``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.queue.views import show_listing
from cogs.queue.wording import Scope

if TYPE_CHECKING:
    from cogs.videobot import VideoBot


class QueueCog(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    @app_commands.command(name="videoqueue")
    @app_commands.guild_only()
    @app_commands.describe(
        scope="mine: your videos (default); server: every video here, for moderators"
    )
    @app_commands.choices(
        scope=[
            app_commands.Choice(name="mine", value=Scope.MINE.value),
            app_commands.Choice(name="server", value=Scope.SERVER.value),
        ]
    )
    async def videoqueue(
        self, interaction: discord.Interaction, scope: str = Scope.MINE.value
    ) -> None:
        """Your queued and running videos, with Cancel; moderators can list the whole server."""
        # Answer first and privately: the listing reads SQLite, and a refusal stays private.
        await interaction.response.defer(ephemeral=True, thinking=True)
        await show_listing(interaction, Scope(scope), 1, edit=False)
