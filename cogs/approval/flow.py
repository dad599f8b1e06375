"""Holding a request for approval: the member's "waiting" message and the moderators' alert."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from services.models import JobOrigin, VideoRequest

if TYPE_CHECKING:
    from cogs.videobot import VideoBot


class ApprovalFlow:
    def __init__(self, bot: VideoBot) -> None:
        self._bot = bot

    async def hold(
        self, interaction: discord.Interaction, request: VideoRequest, origin: JobOrigin
    ) -> None:
        """Store the request as waiting, tell the member, and ask the moderators."""
        raise NotImplementedError
