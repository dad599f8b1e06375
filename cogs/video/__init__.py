"""The `/video` feature: the command, its buttons, the job's messages and how they look.

``_cog`` holds the command; ``starter`` admits and acknowledges a request; ``presenter``
is the job runner's listener; ``messenger`` knows the routes to the member; ``render``
the wording; ``buttons`` the persistent buttons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.video._cog import VideoCog
from cogs.video.buttons import BUTTONS

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

__all__ = ["VideoCog", "setup"]


async def setup(bot: VideoBot) -> None:
    bot.add_dynamic_items(*BUTTONS)
    await bot.add_cog(VideoCog(bot))
