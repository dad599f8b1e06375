"""Approval before spending: held requests, the moderators' Approve and Deny, and expiry.

The cog routes clicks and form submissions from ``on_interaction`` (no view or modal kept
in memory, so they work the same after a restart), and runs the expiry loop; the work is
``flow.ApprovalFlow`` (``bot.approvals``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

import discord
from discord.ext import commands

from cogs import words
from cogs.approval import ids, wording
from cogs.approval.recovery import post_missing_cards, recover_stranded
from cogs.replies import reply
from cogs.tree import describe_error, enter_log_context
from cogs.video.remix import submitted_values
from cogs.words import discord_timestamp
from services.approval_models import ApprovalState, HeldRequest
from services.approvals import AlreadyDecided, UnknownRequest
from services.errors import BotError

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

__all__ = ["setup"]

log = logging.getLogger(__name__)


class ApprovalCog(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self._expiry: asyncio.Task[None] | None = None
        self._cards: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        approvals, flow = self.bot.services.approvals, self.bot.approvals
        await approvals.load()
        started = self.bot.services.clock.time()
        # Awaited here, in setup_hook before recover_unacknowledged and the runner: a job
        # the last run admitted for an approval must get the member's message first, or it
        # would be ended as never acknowledged.
        try:
            await recover_stranded(self.bot)
        except Exception:
            log.exception("approved requests could not be recovered; the next start tries")
        # Its first sweep is the start-up one: requests that ran out while the bot was down.
        self._expiry = asyncio.create_task(flow.keep_expiring(), name="approval-expiry")
        self._cards = asyncio.create_task(
            post_missing_cards(self.bot, started), name="approval-missing-cards"
        )

    async def cog_unload(self) -> None:
        tasks = [task for task in (self._expiry, self._cards) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Acts on approval buttons and the Deny form only; everything else passes by."""
        if interaction.type not in (
            discord.InteractionType.component,
            discord.InteractionType.modal_submit,
        ):
            return
        data = cast("dict[str, Any]", interaction.data or {})
        clicked = ids.read(self.bot.custom_ids, str(data.get("custom_id", "")))
        if clicked is None:
            return
        try:
            enter_log_context(interaction)
            await self._act(interaction, clicked, data)
        except Exception as error:
            if isinstance(error, AlreadyDecided) and error.expired_now:
                # This click found it past its time and expired it: the member hears it
                # now, as from the sweep, and the moderator is told it had expired.
                await self.bot.approvals.expired_on_click(error.held)
                text, unexpected = _expired_words(error.held), False
            elif isinstance(error, AlreadyDecided):
                text, unexpected = wording.already_decided(error.held), False
            else:
                text, unexpected = describe_error(error)
            if unexpected:
                log.exception(
                    "approval %s of request=%s failed", clicked.action, clicked.request_id
                )
                text = text or "Something went wrong on my side. Please try again."
            await reply(interaction, text, ephemeral=True)

    async def _act(
        self, interaction: discord.Interaction, clicked: ids.Clicked, data: dict[str, Any]
    ) -> None:
        bot, flow = self.bot, self.bot.approvals
        if interaction.guild_id is not None and not bot.services.settings.allows_guild(
            interaction.guild_id
        ):
            raise UnknownRequest(words.NOT_SERVED)
        if not clicked.signed:
            log.info("approval %s for request=%s refused: not signed here", clicked.action,
                     clicked.request_id)  # fmt: skip
            raise UnknownRequest()
        if clicked.action == ids.DENY:
            await self._open_deny_form(interaction, clicked)
            return
        # Answer first: every step below waits on SQLite or Discord (Discord allows 3 s).
        await interaction.response.defer(ephemeral=True, thinking=True)
        held = await bot.services.approvals.get(clicked.request_id, interaction.guild_id)
        if clicked.action == ids.SHOW:
            await self._show_prompt(interaction, held)
            return
        if clicked.action == ids.CANCEL:
            if interaction.user.id != held.user_id and not await flow.may_moderate(
                interaction, held
            ):
                raise UnknownRequest(
                    "Only the member who asked, or a moderator, can withdraw this request."
                )
            await flow.cancel(interaction, _pending(held))
            return
        await flow.require_moderator(interaction, held)
        if clicked.action == ids.APPROVE:
            await flow.approve(interaction, _pending(held))
        else:  # the Deny form, submitted
            reason = submitted_values(data.get("components")).get(ids.REASON_FIELD)
            await flow.deny(interaction, _pending(held), reason)

    async def _show_prompt(self, interaction: discord.Interaction, held: HeldRequest) -> None:
        """A private request's prompt, to a moderator at click time; who looked is logged."""
        if not held.private:
            raise UnknownRequest("This request is public: its prompt is on the card.")
        if not await self.bot.approvals.may_moderate(interaction, held):
            log.info(
                "approval=%s private prompt refused to user=%s: not a moderator",
                held.id,
                interaction.user.id,
            )
            raise BotError(wording.NOT_MODERATOR_SHOW)
        log.info(
            "guild=%s moderator user=%s viewed the private prompt of approval=%s (user=%s)",
            held.guild_id,
            interaction.user.id,
            held.id,
            held.user_id,
        )
        await reply(interaction, wording.revealed_prompt(held), ephemeral=True)

    async def _open_deny_form(self, interaction: discord.Interaction, clicked: ids.Clicked) -> None:
        """The form at once: it must be the click's first answer, within Discord's 3 s.

        Nothing is read before it (a busy SQLite would make every press too slow): the
        signed id is the only check here. Whether the clicker is a moderator and whether
        the request still waits are checked when the form is submitted (``_act``), so a
        member who opens it can still change nothing.
        """
        await interaction.response.send_modal(
            wording.deny_form(clicked.request_id, self.bot.custom_ids)
        )


def _expired_words(held: HeldRequest) -> str:
    return (
        f"Request #{held.id} had expired {discord_timestamp(held.expires_at)}, so it can no "
        "longer be approved or denied. Nothing was spent; the member was told it expired."
    )


def _pending(held: HeldRequest) -> HeldRequest:
    """The request, if it still waits; else who answered it is the answer."""
    if held.state is not ApprovalState.PENDING:
        raise AlreadyDecided(held)
    return held


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(ApprovalCog(bot))
