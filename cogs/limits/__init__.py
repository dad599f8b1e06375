"""The `/videolimit` feature: moderators' limits, budgets, usage and history.

``_cog`` holds the command group; ``wording`` how its answers read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.limits._cog import LimitsCog

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

__all__ = ["LimitsCog", "setup"]


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(LimitsCog(bot))
