"""Buttons on progress and result messages, persistent across restarts.

Each button is a ``DynamicItem``: the job id lives in the custom id and the state in
the database, so a button clicked a week later, after any number of restarts, still
finds its job. The custom id is signed with the database's secret (``custom_ids``), and
a button acts only from a message of its own job, so a button from another database
or another message never acts.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import discord

from cogs import words
from cogs.gallery import publisher
from cogs.permissions import is_moderator
from cogs.replies import reply
from cogs.tree import describe_error, enter_log_context
from cogs.video import render, reuse
from cogs.video.custom_ids import CustomIds
from cogs.video.details import send_details
from cogs.video.remix import open_form
from services import logcontext
from services.errors import BotError
from services.models import Job

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)


def _bot(interaction: discord.Interaction) -> VideoBot:
    """The bot that received the click; its features are typed attributes."""
    return cast("VideoBot", interaction.client)


def _job_messages(job: Job) -> set[int]:
    """The messages that carry this job's buttons: progress, result, shared post."""
    ids = {job.message_id, job.result_message_id, job.shared_message_id}
    return {message_id for message_id in ids if message_id}


def _clicked_on_own_message(interaction: discord.Interaction, job: Job) -> bool:
    return interaction.message is not None and interaction.message.id in _job_messages(job)


async def _owner_or_moderator(interaction: discord.Interaction, job: Job, action: str) -> None:
    if interaction.user.id == job.user_id or await is_moderator(interaction):
        return
    raise BotError(f"Only the person who asked for this video, or a moderator, can {action} it.")


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    # The signature is absent on buttons posted before ids were signed.
    template=r"vjob:(?P<action>[a-z]+):(?P<job>\d+)(?::(?P<sig>[A-Za-z0-9_-]{1,40}))?",
):
    """One class for every job button; the action in the custom id picks the behaviour."""

    # Only emoji that are emoji by default: text-default ones (like ✖ or 🗑) are refused by
    # Discord with or without U+FE0F depending on the emoji, and one refusal fails the message.
    LABELS: ClassVar[dict[str, tuple[str, discord.ButtonStyle, str | None]]] = {
        "cancel": ("Cancel", discord.ButtonStyle.secondary, None),
        "reroll": ("Re-roll", discord.ButtonStyle.primary, "🎲"),
        "share": ("Share", discord.ButtonStyle.success, "📣"),
        "delete": ("Delete", discord.ButtonStyle.danger, None),
        "open": ("Show my video", discord.ButtonStyle.primary, "🔒"),
        "details": ("Details", discord.ButtonStyle.secondary, "🔎"),
        "remix": ("Remix", discord.ButtonStyle.secondary, "🎨"),
        "publish": ("Publish", discord.ButtonStyle.success, "⭐"),
        "anew": ("Make it anew", discord.ButtonStyle.primary, "🔁"),
    }

    def __init__(self, action: str, job_id: int, custom_id: str) -> None:
        label, style, emoji = self.LABELS.get(
            action, ("Unavailable", discord.ButtonStyle.secondary, None)
        )
        super().__init__(
            discord.ui.Button(label=label, style=style, emoji=emoji, custom_id=custom_id)
        )
        self.action = action
        self.job_id = job_id
        self.signature: str | None = None

    @classmethod
    def for_job(cls, action: str, job_id: int, ids: CustomIds) -> JobButton:
        return cls(action, job_id, ids.make(action, job_id))

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
    ) -> JobButton:
        # An unknown action (a button from another version) still gets an item, so that the
        # click is answered; raising here would leave it unanswered.
        button = cls(match["action"], int(match["job"]), match.group(0))
        button.signature = match["sig"]
        return button

    async def _own_job(self, interaction: discord.Interaction) -> Job:
        """The button's job, if this button is truly its own: signed by this database, or
        (posted before ids were signed) clicked on one of the job's own messages."""
        bot = _bot(interaction)
        job = await bot.services.storage.jobs.get(self.job_id)
        signed = bot.custom_ids.verify(self.action, self.job_id, self.signature)
        if (
            job is None
            or job.guild_id != interaction.guild_id
            or not (
                signed or (self.signature is None and _clicked_on_own_message(interaction, job))
            )
        ):
            log.info(
                "button %s for job=%s refused: not this database's or not its message",
                self.action,
                self.job_id,
            )
            raise BotError("That video is no longer known to me.")
        return job

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            enter_log_context(interaction)
            logcontext.bind(job_id=self.job_id)
            if self.action not in self.LABELS:
                raise BotError("This button is from an older version of the bot.")
            if not _bot(interaction).services.settings.allows_guild(interaction.guild_id):
                raise BotError(words.NOT_SERVED)
            await getattr(self, f"_{self.action}")(interaction)
        except Exception as error:
            # Buttons are not app commands, so the tree's handler never sees them: use its wording.
            text, unexpected = describe_error(error)
            if unexpected:
                log.exception("button %s for job=%s failed", self.action, self.job_id)
                text = text or "Something went wrong on my side. Please try again."
            await reply(interaction, text, ephemeral=True)

    async def _cancel(self, interaction: discord.Interaction) -> None:
        # Answer first: the lookups wait on SQLite, and cancelling waits for an in-flight
        # submit to answer; both can outlast Discord's 3 s. Private, like any refusal.
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await self._own_job(interaction)
        # Checked at click time, and only for someone else's job (the check may read SQLite).
        moderator = interaction.user.id != job.user_id and await is_moderator(interaction)
        outcome = await _bot(interaction).services.queue.cancel(
            job, by=interaction.user.id, moderator=moderator
        )
        text = render.cancelled(outcome.job, by_moderator=outcome.by_moderator)
        await reply(interaction, text, ephemeral=True)

    async def _reroll(self, interaction: discord.Interaction) -> None:
        starter = _bot(interaction).starter
        # The lookup shares admission's time budget: acknowledged first if it is slow.
        original = await starter.in_time(
            interaction, asyncio.ensure_future(self._own_job(interaction))
        )
        if original.private and interaction.user.id != original.user_id:
            # The new job would carry the private prompt to whoever clicked.
            raise BotError("Only the person who made this video can re-roll it.")
        await starter.reroll(interaction, original)

    async def _delete(self, interaction: discord.Interaction) -> None:
        # An invisible acknowledgement first (the checks wait on SQLite); a refusal then
        # comes as a private follow-up.
        await interaction.response.defer()
        job = await self._own_job(interaction)
        if not _clicked_on_own_message(interaction, job):
            # Deleting acts on the clicked message: it must be this job's own.
            raise BotError("That video is no longer known to me.")
        await _owner_or_moderator(interaction, job, "delete")
        try:
            await _delete_clicked_message(interaction)
        except discord.HTTPException as error:
            log.info("job=%s result could not be deleted (code=%s)", job.id, error.code)
            await reply(interaction, "I could not delete that message.", ephemeral=True)
        else:
            log.info("job=%s result deleted by user=%s", job.id, interaction.user.id)
            # Recorded so that "already made" no longer points anyone at the deleted post.
            bot = _bot(interaction)
            assert interaction.message is not None  # checked by _clicked_on_own_message
            job = (
                await bot.services.storage.jobs.mark_post_deleted(
                    job.id, interaction.message.id, now=bot.services.clock.time()
                )
                or job
            )
            try:
                # Deleted by its maker or a moderator: the gallery does not keep showing it.
                await bot.presenter.gallery.take_down(job)
            except Exception:
                log.warning("job=%s gallery post not taken down", job.id, exc_info=True)

    async def _open(self, interaction: discord.Interaction) -> None:
        """The requester's private clip, shown to them alone (the notice is public)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await self._own_job(interaction)
        if interaction.user.id != job.user_id:
            raise BotError("This video is private: only the person who asked for it can open it.")
        bot = _bot(interaction)
        if not bot.services.clips.exists(job) or job.clip_path is None:
            raise BotError(render.clip_gone(job))
        path = await bot.services.clips.fit(
            job, interaction.filesize_limit, source=Path(job.clip_path)
        )
        if path is None:
            raise BotError(
                "This clip is too large to show here. Make it again with `/video` and seed "
                f"`{job.request.seed}`, with fewer frames."
            )
        await interaction.followup.send(
            render.result_content(job),
            embed=render.result_embed(job),
            file=discord.File(path, filename=render.clip_filename(job)),
            view=result_view(job, bot.custom_ids),
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    async def _share(self, interaction: discord.Interaction) -> None:
        # Lookups and re-encoding can take a while; a private defer keeps problems private.
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await self._own_job(interaction)
        if interaction.user.id != job.user_id:
            raise BotError("Only the person who made this video can share it.")
        if not _bot(interaction).services.clips.exists(job) or job.clip_path is None:
            raise BotError(render.clip_gone(job))
        bot = _bot(interaction)
        # Stored, so a second click, a restart or another process cannot post it again;
        # the private message keeps its Share button.
        if not await bot.services.storage.jobs.claim_share(job.id, now=bot.services.clock.time()):
            raise BotError("You have already shared this video.")
        try:
            shared_id = await self._post_share(interaction, job, Path(job.clip_path))
        except BaseException:
            await asyncio.shield(
                bot.services.storage.jobs.release_share(job.id, now=bot.services.clock.time())
            )
            raise
        await bot.services.storage.jobs.update(
            job.id, now=bot.services.clock.time(), shared_message_id=shared_id
        )

    async def _post_share(self, interaction: discord.Interaction, job: Job, stored: Path) -> int:
        path = await _bot(interaction).services.clips.fit(
            job, interaction.filesize_limit, source=stored
        )
        if path is None:
            raise BotError("This clip is too large to post in this channel.")
        embed = render.result_embed(job)
        embed.title = "A video, shared"
        # The first follow-up replaces the private "thinking"; the share is the second.
        await reply(interaction, "Sharing it in the channel…")
        posted = await interaction.followup.send(
            f"<@{job.user_id}> shared a video.",
            embed=embed,
            file=discord.File(path, filename=render.clip_filename(job)),
            view=result_view(
                job,
                _bot(interaction).custom_ids,
                shared=True,
                publish=await _bot(interaction).presenter.gallery.offers_publish(job),
            ),
            allowed_mentions=discord.AllowedMentions.none(),
            wait=True,
        )
        await interaction.edit_original_response(content="Shared in the channel.")
        return posted.id

    async def _details(self, interaction: discord.Interaction) -> None:
        # Answered first and privately: the lookup waits on SQLite, and the card (or a
        # refusal) is for the clicker alone.
        await interaction.response.defer(ephemeral=True, thinking=True)
        await send_details(interaction, await self._own_job(interaction))

    async def _remix(self, interaction: discord.Interaction) -> None:
        # The form must be the click's first answer: only the job lookup comes before it.
        await open_form(interaction, self._own_job(interaction))

    async def _publish(self, interaction: discord.Interaction) -> None:
        # Answered first and privately: the post may wait on a re-encode, and a refusal
        # (or where it was published) is for the clicker alone.
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await self._own_job(interaction)
        await _owner_or_moderator(interaction, job, "publish")
        await publisher.publish_clicked(interaction, job)

    async def _anew(self, interaction: discord.Interaction) -> None:
        bot = _bot(interaction)
        # The lookup shares admission's time budget: acknowledged first if it is slow.
        earlier = await bot.starter.in_time(
            interaction, asyncio.ensure_future(self._own_job(interaction))
        )
        await reuse.make_anew(bot, interaction, earlier)


async def _delete_clicked_message(interaction: discord.Interaction) -> None:
    """Through the click's token; a clip posted as a plain channel message (after the
    request's token expired) may need the channel route, which works for the bot's own."""
    try:
        await interaction.delete_original_response()
    except discord.HTTPException:
        if interaction.message is None or interaction.message.flags.ephemeral:
            raise
        await interaction.message.delete()


BUTTONS = (JobButton,)


class KeptButtons(enum.Enum):
    KEEP = "keep"


# A progress edit's view when the message already shows the progress buttons: the edit leaves
# them as they are (Discord keeps what an edit leaves out); a message posted anew gets them.
KEEP_BUTTONS = KeptButtons.KEEP


def progress_view(job: Job, ids: CustomIds) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(JobButton.for_job("cancel", job.id, ids))
    return view


def notice_view(job: Job, ids: CustomIds) -> discord.ui.View:
    """On the public notice for a private clip that no DM could carry."""
    view = discord.ui.View(timeout=None)
    view.add_item(JobButton.for_job("open", job.id, ids))
    return view


def result_view(
    job: Job, ids: CustomIds, *, shared: bool = False, publish: bool = False
) -> discord.ui.View:
    """The result card's buttons; ``publish`` when the server's gallery takes clips by hand."""
    view = discord.ui.View(timeout=None)
    view.add_item(JobButton.for_job("reroll", job.id, ids))
    view.add_item(JobButton.for_job("remix", job.id, ids))
    view.add_item(JobButton.for_job("details", job.id, ids))
    if publish:
        view.add_item(JobButton.for_job("publish", job.id, ids))
    if job.private and not shared:
        view.add_item(JobButton.for_job("share", job.id, ids))
    else:
        view.add_item(JobButton.for_job("delete", job.id, ids))
    return view
