"""The `/video` feature: the command, its buttons, the job's messages and how they look.

``_cog`` holds the command; ``starter`` admits and acknowledges a request; ``presenter``
is the job runner's listener; ``messenger`` knows the routes to the member; ``render``
the wording; ``buttons`` the persistent buttons; ``remix`` the Remix form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.video._cog import VideoCog
from cogs.video.buttons import BUTTONS
from cogs.video.remix import on_submit_form

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

__all__ = ["VideoCog", "setup"]


async def setup(bot: VideoBot) -> None:
    bot.add_dynamic_items(*BUTTONS)
    # Remix forms are answered from here, not by a Modal in memory (see remix.py).
    bot.add_listener(on_submit_form, "on_interaction")
    await bot.add_cog(VideoCog(bot))
