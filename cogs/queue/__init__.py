"""The `/videoqueue` feature: what is queued and running, and Cancel for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.queue._cog import QueueCog
from cogs.queue.views import BUTTONS

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

__all__ = ["QueueCog", "setup"]


async def setup(bot: VideoBot) -> None:
    # Persistent: a listing's buttons are dispatched by their custom ids, after restarts too.
    bot.add_dynamic_items(*BUTTONS)
    await bot.add_cog(QueueCog(bot))
