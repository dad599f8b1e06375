"""The `/videoqueue` feature: what is queued and running, and Cancel for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord.ext import commands

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

__all__ = ["setup"]


class QueueCog(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(QueueCog(bot))
