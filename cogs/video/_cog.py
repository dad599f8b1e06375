"""`/video`: the command members type; the work is deferred to the starter and the presenter."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.video import reuse
from services.models import (
    FRAME_RATE,
    GUIDANCE_SCALE,
    INPUT_FRAMES,
    PROMPT_MAX,
    SEED,
    STEPS,
    VideoRequest,
    request_fingerprint,
)

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)


class VideoCog(commands.Cog):
    """Generation for members: turns `/video` into a request and the starter takes it on."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.services.runner.set_listener(self.bot.presenter)

    @app_commands.command(name="video", description="Turn a text prompt into a short video clip")
    @app_commands.guild_only()
    @app_commands.describe(
        prompt="What the video should show",
        negative_prompt="What to avoid (default: low quality, blurry)",
        input_frames="How many frames to generate (16-60, default 49)",
        steps="Generation steps: more is slower and finer (25-50, default 45)",
        guidance_scale="How closely to follow the prompt (5-10, default 6)",
        seed="Repeat a clip by reusing its seed (random when omitted)",
        frame_rate="Frames per second of the clip (8-10, default 8)",
        private="Only you see the progress and the clip; share it afterwards if you like",
    )
    async def video(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, PROMPT_MAX],
        negative_prompt: app_commands.Range[str, 0, PROMPT_MAX] | None = None,
        input_frames: app_commands.Range[int, INPUT_FRAMES[0], INPUT_FRAMES[1]] | None = None,
        steps: app_commands.Range[int, STEPS[0], STEPS[1]] | None = None,
        guidance_scale: app_commands.Range[float, GUIDANCE_SCALE[0], GUIDANCE_SCALE[1]]
        | None = None,
        seed: app_commands.Range[int, SEED[0], SEED[1]] | None = None,
        frame_rate: app_commands.Range[int, FRAME_RATE[0], FRAME_RATE[1]] | None = None,
        private: bool = False,
    ) -> None:
        request = VideoRequest.create(
            prompt,
            seed=seed,
            negative_prompt=negative_prompt,
            input_frames=input_frames,
            steps=steps,
            guidance_scale=guidance_scale,
            frame_rate=frame_rate,
            default_negative_prompt=self.bot.services.settings.default_negative_prompt,
        )
        # A chosen seed makes the request repeatable: if that very clip was delivered here
        # already, the member gets it (or its link) instead of the owner paying for a copy.
        # The server's rules come first (the starter checks them for every other request):
        # an earlier clip of a blocked prompt, or outside the allowed channels, is not offered.
        if seed is not None:
            await self.bot.starter.screen(interaction, request)
            if await reuse.offer_earlier_clip(self.bot, interaction, request, private=private):
                return
        # The same command sent twice in a moment is one request (a seed left out is drawn
        # anew each time, so it is not part of what makes them the same).
        fingerprint = request_fingerprint(request, private=private, seed_given=seed is not None)
        await self.bot.starter.start(interaction, request, private=private, fingerprint=fingerprint)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """Removed from a server: its waiting jobs can never be delivered, so none is submitted."""
        dropped = await self.bot.services.runner.cancel_guild(guild.id)
        if dropped:
            log.info("guild=%s left; %d waiting jobs cancelled", guild.id, dropped)
