"""Starting a job from an interaction: admit it within Discord's 3 s, acknowledge it, queue it.

Used by `/video` and by the Re-roll button. Only local checks (validation, limits in
SQLite) come before the answer to Discord, because after a public answer every
follow-up is public too, and a refusal must stay private.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, TypeVar

import discord

from cogs import words
from cogs.discord_errors import ALREADY_ACKNOWLEDGED, DISCORD_UNREACHABLE
from cogs.permissions import is_moderator
from cogs.replies import reply
from cogs.video import render
from cogs.video.buttons import progress_view
from services import logcontext
from services.admission import Admitted
from services.errors import BotError
from services.gates import AccountPaused
from services.models import (
    Job,
    JobOrigin,
    JobState,
    Progress,
    ProgressPhase,
    VideoRequest,
    random_seed,
    reroll_fingerprint,
)
from services.spend_caps import BudgetExhausted, SpendCeilingReached

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

T = TypeVar("T")


def origin_of(
    interaction: discord.Interaction,
    *,
    private: bool,
    parent_job_id: int | None = None,
    fingerprint: str | None = None,
) -> JobOrigin:
    """Who asked, where, and the interaction's token to answer through."""
    if interaction.guild_id is None or interaction.channel_id is None:
        raise BotError("Videos can only be made in a server channel.")
    member = interaction.user
    return JobOrigin(
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        user_id=member.id,
        role_ids=tuple(role.id for role in getattr(member, "roles", ())),
        private=private,
        parent_job_id=parent_job_id,
        interaction_token=interaction.token,
        interaction_created_at=interaction.created_at.timestamp(),
        application_id=interaction.application_id,
        upload_limit=interaction.filesize_limit,
        fingerprint=fingerprint,
    )


class JobStarter:
    def __init__(self, bot: VideoBot) -> None:
        self._bot = bot
        self._services = bot.services

    async def start(
        self,
        interaction: discord.Interaction,
        request: VideoRequest,
        *,
        private: bool = False,
        parent_job_id: int | None = None,
        fingerprint: str | None = None,
    ) -> Job | None:
        """Admit, acknowledge and queue one request; None when it could not be acknowledged.

        ``fingerprint`` says what makes a repeat of this request the same one (a double
        click): admission answers a repeat moments later with this job instead of a second.
        """
        origin = origin_of(
            interaction, private=private, parent_job_id=parent_job_id, fingerprint=fingerprint
        )
        if not self._services.settings.allows_guild(origin.guild_id):
            # Not on ALLOWED_GUILDS (a Re-roll there; commands are refused by the tree).
            raise BotError(words.NOT_SERVED)
        if not self._services.runner.accepting:
            # Admitted now, it would only wait (and count) until the restart.
            raise BotError(
                "The bot is restarting. Please try again in a minute; nothing was spent."
            )
        await self.screen(interaction, request)
        # Its moderator check reads SQLite: within the same 3-second budget as admission.
        if await self.in_time(interaction, asyncio.ensure_future(self._held(interaction, origin))):
            await self._bot.approvals.hold(interaction, request, origin)
            return None
        admitted = await self._admit(interaction, request, origin)
        job = admitted.job
        presenter = self._bot.presenter
        presenter.remember_allowance(job.id, words.allowance(admitted))
        first = Progress(job.id, ProgressPhase.QUEUED)  # its place in line is known once queued
        try:
            message_id = await self.post_progress(
                interaction,
                embed=render.progress_embed(job, first, presenter.allowance_of(job)),
                view=progress_view(job, self._bot.custom_ids),
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
        presenter.note_shown(job.id, first)
        job = await self._services.storage.jobs.update(
            job.id, now=self._services.clock.time(), message_id=message_id
        )
        logcontext.bind(job_id=job.id)  # the rest of this interaction's lines are about it
        log.info(
            "job=%s queued guild=%s user=%s private=%s", job.id, job.guild_id, job.user_id, private
        )
        await self._services.runner.enqueue(job)
        return job

    async def screen(self, interaction: discord.Interaction, request: VideoRequest) -> None:
        """The server's own rules before anything is stored: where `/video` works, what it may say.

        Both raise a RefusedError, which the central handler answers privately; a thread
        counts as its parent channel. A server's rules are cached, but the first read after
        a start (or a change) waits on SQLite, and the blocklist's patterns may run for up to
        half a second: within the same 3-second budget as admission.
        """
        if interaction.guild_id is None or interaction.channel_id is None:
            raise BotError("Videos can only be made in a server channel.")
        channel = interaction.channel
        parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
        await self.in_time(
            interaction,
            asyncio.ensure_future(
                self._screen(
                    interaction.guild_id,
                    interaction.channel_id,
                    parent_id,
                    interaction.user.id,
                    request,
                )
            ),
        )

    async def _screen(
        self,
        guild_id: int,
        channel_id: int,
        parent_id: int | None,
        user_id: int,
        request: VideoRequest,
    ) -> None:
        await self._services.channels.check(guild_id, channel_id, parent_id)
        await self._services.blocklist.screen(guild_id, channel_id, user_id, request)

    async def _held(self, interaction: discord.Interaction, origin: JobOrigin) -> bool:
        """Whether this request waits for a moderator's approval (``cogs.approval``).

        Moderators never wait: they could approve their own request anyway.
        """
        if not await self._services.approvals.required(origin):
            return False
        return not await is_moderator(interaction)

    async def reroll(self, interaction: discord.Interaction, original: Job) -> None:
        """The same request as ``original`` with a new seed, through the limits like any other."""
        request = original.request.with_seed(random_seed())
        await self.start(
            interaction,
            request,
            private=original.private,
            parent_job_id=original.id,
            fingerprint=reroll_fingerprint(original.id),
        )

    async def _admit(
        self, interaction: discord.Interaction, request: VideoRequest, origin: JobOrigin
    ) -> Admitted:
        """Run admission within Discord's 3 s; a refusal stays private either way."""
        admission = asyncio.ensure_future(self._services.admission.admit(request, origin))
        try:
            return await self.in_time(interaction, admission)
        except BudgetExhausted as refusal:
            if refusal.tell_moderators and interaction.guild is not None:
                self._bot.alerts.send(interaction.guild, words.budget_alert(refusal))
            raise
        except SpendCeilingReached as refusal:
            if refusal.tell_moderators and interaction.guild is not None:
                self._bot.alerts.send(interaction.guild, words.ceiling_alert(refusal))
            raise
        except AccountPaused as refusal:
            # The member is told the moderators know: make it true for this server too.
            self._bot.alerts.account_problem_soon(origin.guild_id, refusal.cause)
            raise
        except DISCORD_UNREACHABLE:
            # Too late to answer at all: whatever admission stored must never run.
            if not admission.cancelled() and admission.exception() is None:
                await self._abandon(admission.result().job)
            raise

    async def in_time(self, interaction: discord.Interaction, work: asyncio.Future[T]) -> T:
        """Await local work (SQLite); if it would outlast Discord's 3 s, acknowledge first.

        Admissions are serialised on the database (that is what makes them atomic), so a
        large burst queues them. A private defer keeps the 3-second promise and keeps any
        refusal private; the public progress message then follows as a follow-up. If even
        the defer fails, ``work`` is let finish before the error is raised, so the caller
        can undo it.
        """
        if not interaction.response.is_done():
            # Discord's 3 s run from the interaction's creation, not from when we got to it.
            age = self._services.clock.time() - interaction.created_at.timestamp()
            budget = self._bot.timings.admission_budget
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
        await self._services.storage.jobs.update(
            job.id,
            now=self._services.clock.time(),
            state=JobState.CANCELLED,
            error="not acknowledged",
        )
        self._bot.presenter.forget_job(job.id)

    async def post_progress(
        self,
        interaction: discord.Interaction,
        *,
        embed: discord.Embed,
        view: discord.ui.View,
        private: bool,
        below: str = "Your video is on its way; progress is below.",
    ) -> int:
        """Post the progress message as the interaction's answer; returns its message id.

        Also the "waiting for approval" message of a held request (``cogs.approval``), which
        passes its own ``below``: the private line said after a defer, before a public message.
        """
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
            await interaction.followup.send(below, ephemeral=True)
        message = await interaction.followup.send(
            embed=embed, view=view, ephemeral=private, wait=True
        )
        return message.id
