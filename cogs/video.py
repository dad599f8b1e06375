"""/video: turn a member's prompt into a clip, show progress, deliver it, and its buttons."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from cogs import render
from cogs.alerts import notify_moderators
from cogs.messenger import Clip, JobMessenger, ResultMessage
from cogs.replies import reply
from cogs.video_buttons import BUTTONS, progress_view, result_view
from services.admission import Admitted, BudgetExhausted
from services.errors import (
    BotError,
    GenerationFailed,
    SegmindBadRequest,
    SegmindInsufficientCredits,
)
from services.gates import AccountPaused
from services.jobs import SEGMIND_RETENTION_SECONDS
from services.limits import format_usd
from services.models import (
    FRAME_RATE,
    GUIDANCE_SCALE,
    INPUT_FRAMES,
    PROMPT_MAX,
    SEED,
    STEPS,
    Job,
    JobState,
    Progress,
    ProgressPhase,
    VideoRequest,
    random_seed,
)
from services.storage import NewJob
from services.throttle import EditThrottle

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

T = TypeVar("T")
ALREADY_ACKNOWLEDGED = 40060  # Discord: "Interaction has already been acknowledged"
# What a call to Discord may raise: discord.py passes connection errors through untouched.
DISCORD_UNREACHABLE = (discord.HTTPException, aiohttp.ClientError, OSError)

# One alert per server and kind of problem in this long, however many jobs hit it.
ALERT_REPEAT_SECONDS = 3600.0


class VideoCog(commands.Cog):
    """Generation for members; also the job runner's listener (it renders what the runner says)."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.services = bot.services
        self.messenger = JobMessenger(bot)
        self.throttle = EditThrottle(bot.timings.progress_edit_interval)
        self._spend: dict[int, str] = {}  # "$0.36 · 2 of 3 clips left today", per job
        self._background: set[asyncio.Task[None]] = set()
        self._alerted: dict[tuple[int, str], float] = {}
        # Private clips shared since the start: Share stays on the private message.
        self.shared: set[int] = set()

    async def cog_load(self) -> None:
        self.services.runner.set_listener(self)

    # --- the command ------------------------------------------------------------

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
            default_negative_prompt=self.services.settings.default_negative_prompt,
        )
        await self.start_job(interaction, request, private=private)

    async def start_job(
        self,
        interaction: discord.Interaction,
        request: VideoRequest,
        *,
        private: bool = False,
        parent_job_id: int | None = None,
    ) -> Job | None:
        """Admit, acknowledge and queue one request (from /video or a re-roll button).

        Only local checks (validation, limits in SQLite) come before the answer to
        Discord, because after a public answer every follow-up is public too.
        """
        if interaction.guild_id is None or interaction.channel_id is None:
            raise BotError("Videos can only be made in a server channel.")
        if not self.services.runner.accepting:
            # Admitted now, it would only wait (and count) until the restart.
            raise BotError(
                "The bot is restarting. Please try again in a minute; nothing was spent."
            )
        member = interaction.user
        role_ids = [role.id for role in getattr(member, "roles", [])]
        new = NewJob(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            user_id=member.id,
            request=request,
            created_at=self.services.clock.time(),
            private=private,
            parent_job_id=parent_job_id,
            interaction_token=interaction.token,
            interaction_created_at=interaction.created_at.timestamp(),
            application_id=interaction.application_id,
            upload_limit=interaction.filesize_limit,
        )
        admitted = await self._admit(interaction, new, role_ids)
        job = admitted.job
        spend = admitted.summary()
        self._spend[job.id] = spend
        first = Progress(job.id, ProgressPhase.QUEUED)  # its place in line is known once queued
        try:
            message_id = await self._post_progress(
                interaction,
                embed=render.progress_embed(job, first, spend),
                view=progress_view(job),
                private=private,
            )
        except Exception:
            # Discord refused it, or the connection broke (discord.py passes OSError and
            # aiohttp errors through): the member saw no progress, so nothing may run or count.
            log.warning("job=%s could not be acknowledged", job.id, exc_info=True)
            await self._abandon(job)
            if interaction.response.is_done():  # told "on its way" privately: correct that
                with contextlib.suppress(*DISCORD_UNREACHABLE):
                    await reply(interaction, "Your video could not be started; nothing was spent.")
            return None
        self.throttle.note_sent(job.id, render.progress_key(first))
        job = await self.services.storage.jobs.update(
            job.id, now=self.services.clock.time(), message_id=message_id
        )
        log.info(
            "job=%s queued guild=%s user=%s private=%s", job.id, job.guild_id, job.user_id, private
        )
        await self.services.runner.enqueue(job)
        return job

    async def _admit(
        self, interaction: discord.Interaction, new: NewJob, role_ids: list[int]
    ) -> Admitted:
        """Run admission within Discord's 3 s; a refusal stays private either way."""
        admission = asyncio.ensure_future(self.services.admission.admit(new, role_ids=role_ids))
        try:
            return await self.in_time(interaction, admission)
        except BudgetExhausted as refusal:
            if refusal.alert_key and interaction.guild is not None:
                self._spawn(
                    notify_moderators(self.bot, interaction.guild, refusal.moderator_message)
                )
            raise
        except AccountPaused as refusal:
            # The member is told the moderators know: make it true for this server too.
            self._spawn(self._tell_moderators(new.guild_id, refusal.cause))
            raise
        except DISCORD_UNREACHABLE:
            # Too late to answer at all: whatever admission stored must never run.
            if not admission.cancelled() and admission.exception() is None:
                await self._abandon(admission.result().job)
            raise

    async def in_time(self, interaction: discord.Interaction, work: asyncio.Future[T]) -> T:
        """Await local work (SQLite); if it would outlast Discord's 3 s, acknowledge privately first.

        Admissions are serialised on the database (that is what makes them atomic), so a
        large burst queues them. A private defer keeps the 3-second promise and keeps any
        refusal private; the public progress message then follows as a follow-up. If even
        the defer fails, ``work`` is let finish before the error is raised, so the caller
        can undo it.
        """
        if not interaction.response.is_done():
            # Discord's 3 s run from the interaction's creation, not from when we got to it.
            age = self.services.clock.time() - interaction.created_at.timestamp()
            budget = self.bot.timings.admission_budget
            done, _ = await asyncio.wait({work}, timeout=min(budget, max(0.1, budget - age)))
            if not done:
                log.warning("interaction=%s slow to decide; acknowledging first", interaction.id)
                try:
                    await interaction.response.defer(ephemeral=True, thinking=True)
                except DISCORD_UNREACHABLE:
                    await asyncio.wait({work})
                    raise
        return await work

    async def _abandon(self, job: Job) -> None:
        """End a job whose answer Discord refused (3 s passed): nothing is submitted or billed."""
        log.warning("job=%s not acknowledged in time; it will not be submitted", job.id)
        await self.services.storage.jobs.update(
            job.id,
            now=self.services.clock.time(),
            state=JobState.CANCELLED,
            error="not acknowledged",
        )
        self._spend.pop(job.id, None)

    async def _post_progress(
        self,
        interaction: discord.Interaction,
        *,
        embed: discord.Embed,
        view: discord.ui.View,
        private: bool,
    ) -> int:
        """Post the progress message as the interaction's answer; returns its message id."""
        if not interaction.response.is_done():
            try:
                response = await interaction.response.send_message(
                    embed=embed, view=view, ephemeral=private
                )
            except discord.HTTPException as error:
                if error.code != ALREADY_ACKNOWLEDGED:
                    raise
                # Discord took the answer but its reply was lost (a 5xx), and discord.py's
                # retry was refused as a second answer: the progress message exists.
                return (await interaction.original_response()).id
            message_id = getattr(response, "message_id", None)
            return message_id or (await interaction.original_response()).id
        # Deferred privately: the first follow-up replaces "thinking" and stays private.
        if not private:
            await interaction.followup.send(
                "Your video is on its way; progress is below.", ephemeral=True
            )
        message = await interaction.followup.send(
            embed=embed, view=view, ephemeral=private, wait=True
        )
        return message.id

    # --- JobListener ------------------------------------------------------------

    async def _current(self, job: Job) -> Job:
        """The stored job: message ids and tokens change underneath the runner's copy."""
        return await self.services.storage.jobs.get(job.id) or job

    def _spend_of(self, job: Job) -> str | None:
        """What admission said; after a restart only the stored price is known."""
        known = self._spend.get(job.id)
        if known is None and job.cost_usd > 0:
            return format_usd(job.cost_usd)
        return known

    async def on_progress(self, job: Job, progress: Progress) -> None:
        spend = self._spend_of(job)

        async def send() -> None:
            current = await self._current(job)
            if current.state.is_terminal:
                return
            await self.messenger.edit_progress(
                current,
                embed=render.progress_embed(current, progress, spend),
                view=progress_view(current),
            )

        self.throttle.update(job.id, render.progress_key(progress), send)

    async def on_clip_ready(self, job: Job) -> int | None:
        current = await self._current(job)
        spend = self._spend_of(current)
        assert current.clip_path is not None
        # Segmind's link lives one hour; past that (a late restart) it is no fallback at all.
        age = self.services.clock.time() - (current.submitted_at or 0)
        link = current.video_url if age < SEGMIND_RETENTION_SECONDS else None
        result = ResultMessage(
            clip=Clip(Path(current.clip_path), link),
            content=render.result_content(current),
            link_content=render.result_content(current, link=current.video_url),
            embed=render.result_embed(current, spend),
            view=result_view(current),
        )
        message_id = await self.messenger.send_result(current, result)
        self._spend.pop(job.id, None)
        # Return at once so the runner records the delivery; the cosmetic "finished" edit
        # must not stand between a posted clip and its record (or a restart posts it twice).
        self._spawn(self._finish_progress(current, message_id))
        return message_id

    async def _finish_progress(self, job: Job, result_message_id: int | None) -> None:
        if self.messenger.sent_by_dm(job.id):
            where = "Sent to the requester by direct message (the bot cannot post here)."
        elif job.private or not result_message_id:
            where = "Posted below."
        else:
            link = (
                f"https://discord.com/channels/{job.guild_id}/{job.channel_id}/{result_message_id}"
            )
            where = f"[Jump to the video]({link})"
        try:
            await self.throttle.final(job.id, lambda: self._mark_progress_finished(job, where))
        except Exception:
            log.info("job=%s progress message could not be finished", job.id, exc_info=True)
        finally:
            self.messenger.forget(job.id)

    async def _mark_progress_finished(self, job: Job, where: str) -> None:
        current = await self._current(job)
        try:
            await self.messenger.edit_progress(
                current, embed=render.finished_embed(current, where), view=None
            )
        except discord.HTTPException:
            log.info("job=%s progress message could not be marked finished", job.id)

    async def on_failed(self, job: Job, error: BotError) -> None:
        self._spend.pop(job.id, None)
        current = await self._current(job)
        reason = error.user_message
        if isinstance(error, (GenerationFailed, SegmindBadRequest)):
            # These carry Segmind's own text, which may echo the prompt: show it literally.
            reason = render.shown_text(reason, render.FIELD_VALUE_MAX)
        embed = render.failure_embed(current, reason)
        await self.throttle.final(job.id, lambda: self.messenger.send_failure(current, embed=embed))
        self.messenger.forget(job.id)

    async def on_operator_alert(self, job: Job, error: BotError) -> None:
        await self._tell_moderators(job.guild_id, error)

    async def _tell_moderators(self, guild_id: int, error: BotError) -> None:
        """Once an hour per server and kind of problem, however many requests hit it."""
        guild = self.bot.get_guild(guild_id)
        if guild is None:
            return
        key, now = (guild_id, type(error).__name__), self.services.clock.time()
        if now - self._alerted.get(key, -ALERT_REPEAT_SECONDS) < ALERT_REPEAT_SECONDS:
            return
        self._alerted[key] = now
        if isinstance(error, SegmindInsufficientCredits):
            text = (
                "The bot's Segmind account is out of credits, so no videos can be made. "
                "Whoever hosts the bot needs to top it up at segmind.com. New requests are "
                "refused meanwhile; the bot checks again every "
                f"{int(self.services.settings.credits_recheck_seconds // 60)} minutes."
            )
        else:
            text = (
                "Segmind refused the bot's API key or settings, so no videos can be made. "
                "Whoever hosts the bot needs to check `SEGMIND_API_KEY` (and "
                "`SEGMIND_BASE_URL`); the details are in the bot's log."
            )
        await notify_moderators(self.bot, guild, text)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """Removed from a server: its waiting jobs can never be delivered, so none is submitted."""
        dropped = await self.services.runner.cancel_guild(guild.id)
        if dropped:
            log.info("guild=%s left; %d waiting jobs cancelled", guild.id, dropped)

    # --- helpers for the buttons ---------------------------------------------------

    async def reroll(self, interaction: discord.Interaction, job_id: int) -> None:
        lookup = asyncio.ensure_future(self.services.storage.jobs.get(job_id))
        original = await self.in_time(interaction, lookup)
        if original is None or original.guild_id != interaction.guild_id:
            raise BotError("That video is no longer known to me.")
        request = original.request.with_seed(random_seed())
        await self.start_job(interaction, request, private=original.private, parent_job_id=job_id)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def setup(bot: VideoBot) -> None:
    bot.add_dynamic_items(*BUTTONS)
    await bot.add_cog(VideoCog(bot))
