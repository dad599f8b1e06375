"""Holding a request for approval: the member's "waiting" message and the moderators' alert.

Then the answers: Approve (the request goes through admission as it stands then, and the
job takes over the member's message), Deny (with an optional reason), the member's own
Cancel, and expiry. Each is decided once in the database (``services.approvals``); the
member's message and the moderators' card are edited after.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING

import discord

from cogs import words
from cogs.alerts import post_for_moderators
from cogs.approval import wording
from cogs.approval.notices import (
    FAILED_REASON,
    FAILED_TITLE,
    FAILED_WHY,
    LEFT_SERVER,
    NO_MODERATORS_REASON,
    REFUSED_TITLE,
    REFUSED_WHY,
    ApprovalNotices,
)
from cogs.approval.recovery import RESTART_WHY, recover_stranded
from cogs.discord_errors import DISCORD_UNREACHABLE
from cogs.permissions import is_moderator
from cogs.replies import reply
from cogs.video import render
from cogs.video.buttons import progress_view
from services import logcontext
from services.admission import Admitted
from services.approval_models import ApprovalState, HeldRequest
from services.approvals import RESTART_REASON, AlreadyDecided, admission_origin
from services.errors import BotError, RefusedError
from services.gates import AccountPaused
from services.models import JobOrigin, Progress, ProgressPhase, VideoRequest
from services.spend_caps import BudgetExhausted, SpendCeilingReached

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)


class ApprovalFlow:
    def __init__(self, bot: VideoBot) -> None:
        self._bot = bot
        self.notices = ApprovalNotices(bot)

    # --- holding ---------------------------------------------------------------------

    async def hold(
        self, interaction: discord.Interaction, request: VideoRequest, origin: JobOrigin
    ) -> None:
        """Store the request as waiting, tell the member, and ask the moderators."""
        services, starter = self._bot.services, self._bot.starter

        async def store() -> HeldRequest:
            # The member's limit now: one who is out of clips hears it now, not after an
            # approval. Budgets and the ceiling are checked when it is approved.
            usage = await services.limits.member_usage(
                origin.guild_id, origin.user_id, origin.role_ids
            )
            return await services.approvals.hold(request, origin, usage)

        work = asyncio.ensure_future(store())
        try:
            held = await starter.in_time(interaction, work)
        except DISCORD_UNREACHABLE:
            # Not even a defer went through: the member saw nothing, so nothing may wait.
            if not work.cancelled() and work.exception() is None:
                await self._withdraw(work.result())
            raise
        try:
            message_id = await starter.post_progress(
                interaction,
                embed=render.waiting_embed(
                    request, origin.user_id, request_no=held.id, expires_at=held.expires_at
                ),
                view=wording.waiting_view(held, self._bot.custom_ids),
                private=origin.private,
                below=wording.WAITING_BELOW,
            )
        except Exception:
            log.warning("approval=%s could not be acknowledged", held.id, exc_info=True)
            await self._withdraw(held)
            if interaction.response.is_done():
                with contextlib.suppress(*DISCORD_UNREACHABLE):
                    await reply(interaction, "Your video could not be started; nothing was spent.")
            return
        held = await services.approvals.place(held.id, message_id=message_id) or held
        if interaction.guild is not None:
            # The member has their answer; the moderators' card must not hold it up.
            self._bot.background.spawn(self.ask_moderators(interaction.guild, held))

    async def _withdraw(self, held: HeldRequest) -> None:
        with contextlib.suppress(AlreadyDecided):
            await self._bot.services.approvals.decide(held, ApprovalState.CANCELLED, by=None)

    async def ask_moderators(self, guild: discord.Guild, held: HeldRequest) -> None:
        """The card with Approve and Deny; if no moderator can be reached, the member is told."""
        message = await post_for_moderators(
            self._bot.services.limits,
            self._bot,
            guild,
            wording.alert_text(held),
            embed=wording.alert_embed(held),
            view=wording.alert_view(held, self._bot.custom_ids),
            # A private request's prompt never goes to a public #general.
            system_channel=not held.private,
        )
        approvals = self._bot.services.approvals
        if message is None:
            try:
                ended = await approvals.decide(
                    held, ApprovalState.CANCELLED, by=None, reason=NO_MODERATORS_REASON
                )
            except AlreadyDecided:
                return
            await self.tell_member(
                ended, "Nobody could approve this request", wording.NO_MODERATORS_WHY
            )
            return
        placed = await approvals.place(
            held.id, alert_channel_id=message.channel.id, alert_message_id=message.id
        )
        if placed is not None and placed.state is not ApprovalState.PENDING:
            await self.edit_alert(placed)  # answered (the member cancelled) while it was posted

    # --- answers ---------------------------------------------------------------------

    async def approve(self, interaction: discord.Interaction, held: HeldRequest) -> None:
        """Decide it approved (once), then admit it as it stands now and queue its job."""
        services = self._bot.services
        # The member's roles now, not when they asked (up to days ago): a role that gives a
        # bigger limit, or took it away, counts. Before deciding, so a failed read changes
        # nothing and the moderator can press Approve again.
        role_ids = await self._current_roles(interaction, held)
        if role_ids is None:
            return
        held = await services.approvals.decide(held, ApprovalState.APPROVED, by=interaction.user.id)
        try:
            admitted = await services.admission.admit(
                held.request, admission_origin(held, role_ids)
            )
        except RefusedError as refusal:
            self._tell_moderators_of(held, refusal)
            why = words.refusal(refusal)
            await services.approvals.refused(held, why)
            held = await services.approvals.get(held.id, None)
            # A refusal is the member's business (their limit, the server's budget): a public
            # message says only that it cannot be made; the reason goes to them privately.
            told = await self.tell_member(
                held,
                REFUSED_TITLE,
                REFUSED_WHY,
                private_why=why,
            )
            await self.edit_alert(held)
            whom = (
                "The member was told why"
                if told
                else "The member's direct messages are closed, so they could not be told why"
            )
            await reply(
                interaction,
                f"Approved, but request #{held.id} cannot be made now; nothing was spent. "
                f"{whom}:\n>>> {why}",
            )
            return
        except asyncio.CancelledError:
            # The handler was cancelled (the bot is stopping) while admission decided: any
            # job it made for this caller is withdrawn unsent, so nothing will run. Left
            # approved, the member's message would say "waiting" until a restart noticed;
            # ended now, off this cancelled task (a restart's recovery still ends it if the
            # bot stops first).
            self._bot.background.spawn(self._end_interrupted(held))
            raise
        except Exception:
            log.exception("approval=%s approved but could not be admitted", held.id)
            await self._end_failed(interaction, held)
            return
        await self._start(interaction, held, admitted)

    async def _end_interrupted(self, held: HeldRequest) -> None:
        approvals = self._bot.services.approvals
        log.warning("approval=%s Approve was interrupted before its job started; ended", held.id)
        await approvals.failed(held, RESTART_REASON)
        held = await approvals.get(held.id, None)
        await self.tell_member(held, FAILED_TITLE, RESTART_WHY)
        await self.edit_alert(held)

    async def _current_roles(
        self, interaction: discord.Interaction, held: HeldRequest
    ) -> tuple[int, ...] | None:
        """The member's role ids as Discord has them now; None if they left (the request
        then ends, and the moderator is told). Discord out of reach: nothing changes."""
        guild = self._bot.get_guild(held.guild_id)
        if guild is None:
            raise BotError("I cannot reach that server right now; nothing was changed.")
        try:
            # A REST read: works without the members intent, and is never a stale cache.
            member = await guild.fetch_member(held.user_id)
        except discord.NotFound:
            ended = await self._bot.services.approvals.decide(
                held, ApprovalState.CANCELLED, by=interaction.user.id, reason=LEFT_SERVER
            )
            await self.edit_alert(ended)
            await reply(
                interaction,
                f"The member has left the server, so request #{held.id} has ended; "
                "nothing was spent.",
            )
            return None
        except DISCORD_UNREACHABLE as error:
            log.warning("approval=%s member's roles could not be read (%r)", held.id, error)
            raise BotError(
                "I could not check the member's roles with Discord; nothing was changed. "
                "Please press Approve again."
            ) from error
        return tuple(role.id for role in member.roles)  # as the starter reads them

    async def _end_failed(self, interaction: discord.Interaction, held: HeldRequest) -> None:
        """Approved, but admission failed for the bot's own reasons (not the limits).

        The request ends (the member is told to ask again), so nobody waits on it. If even
        this write fails, the row stays approved and the start-up sweep ends it.
        """
        approvals = self._bot.services.approvals
        try:
            await approvals.failed(held, FAILED_REASON)
            held = await approvals.get(held.id, None)
        except Exception:
            log.exception("approval=%s could not be marked failed; left to the restart", held.id)
        else:
            await self.edit_alert(held)
        await self.tell_member(held, FAILED_TITLE, FAILED_WHY)
        await reply(
            interaction,
            f"Approved, but request #{held.id} could not be started because of an error on "
            "the bot's side. The request has ended and nothing was spent; the member was "
            "told to ask again.",
        )

    async def _start(
        self, interaction: discord.Interaction, held: HeldRequest, admitted: Admitted
    ) -> None:
        """The admitted job takes over the member's waiting message and is queued."""
        services, presenter = self._bot.services, self._bot.presenter
        try:
            job = await services.approvals.admitted(held, admitted.job)
        except Exception:
            # The job is stored and counted: run it anyway, on the member's message. The
            # link is left to the start-up sweep (it finds the job by its fingerprint).
            log.exception("approval=%s job=%s not linked", held.id, admitted.job.id)
            job = dataclasses.replace(admitted.job, message_id=held.message_id)
        logcontext.bind(job_id=job.id)
        presenter.remember_allowance(job.id, words.allowance(admitted))
        first = Progress(job.id, ProgressPhase.QUEUED)
        try:
            # The member's waiting message becomes the job's progress message, through the
            # same routes as any job's (the token while fresh, then the channel).
            job = await presenter.messenger.edit_progress(
                job,
                embed=render.progress_embed(job, first, presenter.allowance_of(job)),
                view=progress_view(job, self._bot.custom_ids),
            )
            presenter.note_shown(job.id, first)
        except DISCORD_UNREACHABLE:
            log.info("job=%s progress not shown yet; the runner's next update shows it", job.id)
        await services.runner.enqueue(job)
        log.info("approval=%s approved by user=%s as job=%s", held.id, interaction.user.id, job.id)
        held = await services.approvals.get(held.id, None)
        await self.edit_alert(held)
        await reply(interaction, f"Approved: request #{held.id} is queued as job #{job.id}.")

    def _tell_moderators_of(self, held: HeldRequest, refusal: RefusedError) -> None:
        """As the starter does: a reached budget or ceiling, or the account, is news for them."""
        guild = self._bot.get_guild(held.guild_id)
        if isinstance(refusal, BudgetExhausted) and refusal.tell_moderators and guild:
            self._bot.alerts.send(guild, words.budget_alert(refusal))
        elif isinstance(refusal, SpendCeilingReached) and refusal.tell_moderators and guild:
            self._bot.alerts.send(guild, words.ceiling_alert(refusal))
        elif isinstance(refusal, AccountPaused):
            self._bot.alerts.account_problem_soon(held.guild_id, refusal.cause)

    async def deny(
        self, interaction: discord.Interaction, held: HeldRequest, reason: str | None
    ) -> None:
        held = await self._bot.services.approvals.decide(
            held, ApprovalState.DENIED, by=interaction.user.id, reason=reason
        )
        # A public message keeps only the fact; the reason goes to the member alone.
        reached = await self.tell_member(
            held, "Request denied", wording.DENIED_PUBLIC, wording.denial_reason(held)
        )
        await self.edit_alert(held)
        await reply(interaction, wording.denied_reply(held, reason_reached=reached))

    async def cancel(self, interaction: discord.Interaction, held: HeldRequest) -> None:
        held = await self._bot.services.approvals.decide(
            held, ApprovalState.CANCELLED, by=interaction.user.id
        )
        await self.tell_member(held, "Request withdrawn", wording.cancelled_why(held))
        await self.edit_alert(held)
        await reply(interaction, f"Request #{held.id} withdrawn; nothing was spent.")

    async def expire_due(self) -> int:
        """Expire every request past its time: the member and the moderators are told."""
        expired = await self._bot.services.approvals.expire_due()
        for held in expired:
            await self.tell_member(held, "Request expired", wording.EXPIRED_WHY)
            await self.edit_alert(held)
        return len(expired)

    async def expired_on_click(self, held: HeldRequest) -> None:
        """A click after its expiry time expired it: told as the sweep would have told it."""
        await self.tell_member(held, "Request expired", wording.EXPIRED_WHY)
        await self.edit_alert(held)

    async def keep_expiring(self) -> None:
        """Expire requests now (at start-up, for those that ran out while the bot was down)
        and then every ``approval_sweep_interval`` seconds; and tell again what Discord
        failed to take (an ended request is no longer pending: nothing else would).

        Real seconds, not the services' clock: a test's fake clock jumps when slept on.
        """
        while True:
            try:
                # Another process sharing the database may have changed a server's rule.
                await self._bot.services.approvals.load()
            except Exception:
                log.exception("approval rules could not be read again; keeping those known")
            try:
                await self.expire_due()
            except Exception:
                log.exception("expiring approval requests failed; trying again later")
            try:
                await self.notices.retry_unsettled()
            except Exception:
                log.exception("approval notices could not be retried; trying again later")
            try:
                await recover_stranded(self._bot)
            except Exception:
                log.exception("approved requests could not be recovered; trying again later")
            await asyncio.sleep(self._bot.timings.approval_sweep_interval)

    # --- messages (cogs.approval.notices) ----------------------------------------------

    async def tell_member(
        self, held: HeldRequest, title: str, why: str, private_why: str | None = None
    ) -> bool:
        """How it ended, to the member; False when Discord refused it for good."""
        return await self.notices.tell_member(held, title, why, private_why)

    async def edit_alert(self, held: HeldRequest) -> None:
        """The moderators' card says who answered, and loses its buttons."""
        await self.notices.edit_alert(held)

    # --- clicks and forms ----------------------------------------------------------------

    async def may_moderate(self, interaction: discord.Interaction, held: HeldRequest) -> bool:
        """A moderator of the request's server, checked at click time.

        In the owner's DMs (no alert channel, the owner told directly) only the owner.
        """
        if interaction.guild_id is None:
            guild = self._bot.get_guild(held.guild_id)
            return guild is not None and guild.owner_id == interaction.user.id
        return await is_moderator(interaction)

    async def require_moderator(self, interaction: discord.Interaction, held: HeldRequest) -> None:
        if not await self.may_moderate(interaction, held):
            log.info(
                "approval=%s refused to user=%s: not a moderator", held.id, interaction.user.id
            )
            raise BotError("Only moderators can approve or deny requests. Nothing was changed.")
