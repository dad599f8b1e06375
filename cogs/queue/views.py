"""The `/videoqueue` listing and its buttons: Cancel per job, Show for a private prompt, paging.

Every button is a ``DynamicItem`` whose custom id carries what it acts on, so a listing needs
no view kept in memory and its buttons work after a restart. Cancel is the job's own signed
Cancel (``cogs.video.buttons``), Show is signed with the same secret (``custom_ids``), so a
button acts only on its own job; paging and Refresh read everything again at the click.
Permissions are checked again at every click: a moderator demoted since the listing was
drawn can no longer use its buttons.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

import discord

from cogs import words
from cogs.approval import ids as approval_ids
from cogs.limits.common import member_role_ids
from cogs.permissions import is_moderator
from cogs.queue.wording import (
    HELD_SHOWN,
    NOT_MODERATOR_SCOPE,
    NOT_MODERATOR_SHOW,
    Page,
    Scope,
    page_of,
    render_page,
    revealed_prompt,
)
from cogs.replies import reply
from cogs.tree import describe_error, enter_log_context
from cogs.video.buttons import JobButton
from cogs.video.custom_ids import CustomIds
from services import logcontext
from services.approval_models import HeldRequest
from services.errors import BotError
from services.job_queue import JobNotFound

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
# Signed as ``CustomIds`` signs a job button's action; its own prefix keeps it out of the
# job buttons' template.
SHOW_ACTION = "queueshow"

ROW_CANCEL, ROW_SHOW, ROW_PAGES, ROW_HELD = 0, 1, 2, 3


def _bot(interaction: discord.Interaction) -> VideoBot:
    return cast("VideoBot", interaction.client)


def _guild_id(interaction: discord.Interaction) -> int:
    if interaction.guild_id is None:
        raise BotError("`/videoqueue` works only in a server.")
    return interaction.guild_id


async def show_listing(
    interaction: discord.Interaction, scope: Scope, page_number: int, *, edit: bool
) -> None:
    """Read the queue now and show one page: as the answer, or (``edit``) over the clicked one."""
    bot = _bot(interaction)
    guild_id = _guild_id(interaction)
    user = interaction.user
    if scope is Scope.SERVER and not await is_moderator(interaction):
        log.info("guild=%s user=%s refused /videoqueue scope server", guild_id, user.id)
        raise BotError(NOT_MODERATOR_SCOPE)
    queue = bot.services.queue
    if scope is Scope.MINE:
        snapshot = await queue.of_member(guild_id, user.id)
        usage = await bot.services.limits.member_usage(guild_id, user.id, member_role_ids(user))
    else:
        snapshot, usage = await queue.of_server(guild_id), None
    held = await bot.services.approvals.waiting(guild_id, user.id if scope is Scope.MINE else None)
    page = page_of(snapshot, page_number)
    embed = render_page(snapshot, page, scope, usage, held)
    view = listing_view(page, scope, bot.custom_ids, held)
    if edit:
        await interaction.edit_original_response(embed=embed, view=view, allowed_mentions=NO_PINGS)
    else:
        await reply(interaction, embed=embed, view=view, ephemeral=True)


def listing_view(
    page: Page, scope: Scope, ids: CustomIds, held: list[HeldRequest] | None = None
) -> discord.ui.View:
    """A Cancel per job that can still be stopped, Show per hidden prompt, paging, then a
    Withdraw per request waiting for approval (the approval cog's own signed Cancel)."""
    view = discord.ui.View(timeout=None)
    for entry in page.entries:
        if entry.cancellable:
            cancel = JobButton.for_job("cancel", entry.job.id, ids)
            cancel.item.label = f"Cancel #{entry.job.id}"
            cancel.item.row = ROW_CANCEL
            view.add_item(cancel)
    if scope is Scope.SERVER:
        for entry in page.entries:
            if entry.job.private:
                view.add_item(ShowPromptButton.for_job(entry.job.id, ids))
    if page.count > 1:
        view.add_item(PageButton(scope, page.number - 1, "Previous", disabled=page.number <= 1))
    view.add_item(PageButton(scope, page.number, "Refresh"))
    if page.count > 1:
        view.add_item(
            PageButton(scope, page.number + 1, "Next", disabled=page.number >= page.count)
        )
    for request in (held or [])[:HELD_SHOWN]:
        view.add_item(
            discord.ui.Button(
                label=f"Withdraw request #{request.id}",
                style=discord.ButtonStyle.secondary,
                custom_id=approval_ids.make(ids, approval_ids.CANCEL, request.id),
                row=ROW_HELD,
            )
        )
    # Nothing for discord.py to keep: the dynamic items are registered for the whole bot,
    # and Withdraw is routed by the approval cog's listener (a kept view would take the
    # click too, and an ephemeral one would time out and drop the dynamic patterns).
    view.stop()
    return view


async def _answer_error(interaction: discord.Interaction, text: str) -> None:
    """Buttons are not app commands, so the tree's handler never sees them: use its wording."""
    await reply(interaction, text or "Something went wrong on my side. Please try again.")


class PageButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"vqueue:page:(?P<scope>mine|server):(?P<page>\d{1,6})",
):
    """Previous, Next and Refresh: show that page of the listing as it stands at the click."""

    def __init__(self, scope: Scope, page: int, label: str = "Refresh", *, disabled: bool = False):
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=f"vqueue:page:{scope.value}:{max(page, 0)}",
                disabled=disabled,
                row=ROW_PAGES,
            )
        )
        self.scope = scope
        self.page = page

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
    ) -> PageButton:
        return cls(Scope(match["scope"]), int(match["page"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            enter_log_context(interaction)
            if not _bot(interaction).services.settings.allows_guild(interaction.guild_id):
                raise BotError(words.NOT_SERVED)
            # The listing is edited in place; a refusal comes as a private follow-up.
            await interaction.response.defer()
            await show_listing(interaction, self.scope, self.page, edit=True)
        except Exception as error:
            text, unexpected = describe_error(error)
            if unexpected:
                log.exception("queue page %s failed", self.page)
            await _answer_error(interaction, text)


class ShowPromptButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"vqueue:show:(?P<job>\d+):(?P<sig>[A-Za-z0-9_-]{1,40})",
):
    """A private job's prompt, shown privately to the moderator who pressed it (and logged)."""

    def __init__(self, job_id: int, signature: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=f"Show #{job_id}",
                style=discord.ButtonStyle.secondary,
                custom_id=f"vqueue:show:{job_id}:{signature}",
                row=ROW_SHOW,
            )
        )
        self.job_id = job_id
        self.signature = signature

    @classmethod
    def for_job(cls, job_id: int, ids: CustomIds) -> ShowPromptButton:
        # ``make`` gives ``vjob:<action>:<id>:<signature>``: only the signature is taken.
        return cls(job_id, ids.make(SHOW_ACTION, job_id).rsplit(":", 1)[1])

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
    ) -> ShowPromptButton:
        return cls(int(match["job"]), match["sig"])

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            enter_log_context(interaction)
            logcontext.bind(job_id=self.job_id)
            bot = _bot(interaction)
            if not bot.services.settings.allows_guild(interaction.guild_id):
                raise BotError(words.NOT_SERVED)
            # Answered first and privately: the checks wait on SQLite.
            await interaction.response.defer(ephemeral=True, thinking=True)
            if not bot.custom_ids.verify(SHOW_ACTION, self.job_id, self.signature):
                log.info("show for job=%s refused: not this database's button", self.job_id)
                raise JobNotFound()
            if not await is_moderator(interaction):
                log.info(
                    "guild=%s user=%s refused a private prompt (not a moderator)",
                    interaction.guild_id,
                    interaction.user.id,
                )
                raise BotError(NOT_MODERATOR_SHOW)
            job = await bot.services.queue.reveal_prompt(
                _guild_id(interaction), self.job_id, moderator_id=interaction.user.id
            )
            await reply(interaction, revealed_prompt(job), ephemeral=True)
        except Exception as error:
            text, unexpected = describe_error(error)
            if unexpected:
                log.exception("show prompt for job=%s failed", self.job_id)
            await _answer_error(interaction, text)


BUTTONS = (PageButton, ShowPromptButton)
