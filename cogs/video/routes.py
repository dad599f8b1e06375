"""The ways a job's messages reach its member, and what every post through them shares.

The interaction's webhook (while its token is fresh: the only way to ephemeral messages),
the job's channel, and the member's DMs; the pings, embeds and nonces each post carries.
``JobMessenger`` (messenger.py) decides which route to try, and in what order.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord.http import handle_message_parameters
from discord.webhook.async_ import async_context

from cogs.discord_errors import TOKEN_LIFETIME, TOKEN_MARGIN
from cogs.video import render
from cogs.video.buttons import KEEP_BUTTONS, KeptButtons
from cogs.video.earlier_posts import bot_permissions
from cogs.words import CONTENT_MAX
from services.models import Job

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger("cogs.video.messenger")  # the messenger's lines keep one name

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
Buttons = discord.ui.View | KeptButtons | None  # a view, none, or those shown left as they are


class MemberRoutes:
    """Builds each route for a job, and knows whether the interaction's token still works."""

    def __init__(self, bot: VideoBot) -> None:
        self._bot = bot

    def token_usable(self, job: Job) -> bool:
        if (
            not job.interaction_token
            or not job.application_id
            or job.interaction_created_at is None
        ):
            return False
        age = self._bot.services.clock.time() - job.interaction_created_at
        return age < TOKEN_LIFETIME - TOKEN_MARGIN

    def webhook(self, job: Job) -> discord.Webhook:
        """The interaction's webhook, built as ``Interaction.followup`` builds it.

        It must be an application webhook (type 3): discord.py refuses to send ephemeral
        messages, so private clips, through any other kind (``Webhook.partial`` makes type 1).
        """
        assert job.application_id and job.interaction_token
        payload: Any = {
            "id": job.application_id,
            "type": discord.WebhookType.application.value,
            "token": job.interaction_token,
        }
        return discord.Webhook.from_state(payload, state=self._bot._connection)

    # --- edits of a message's embed -------------------------------------------------------
    # Most progress edits leave the buttons as they are (``KEEP_BUTTONS``). For those, the
    # request ``Webhook.edit_message`` and ``PartialMessage.edit`` make is made through the
    # same discord.py calls, raising the same errors, without what they do next: build a
    # ``Message`` from Discord's answer (its author, embeds, components), about a fifth of a
    # progress edit's CPU (bench/load.py --profile cprofile), for an answer never read.

    async def edit_by_webhook(
        self, job: Job, message_id: int, embed: discord.Embed, view: Buttons
    ) -> None:
        webhook = self.webhook(job)
        if view is not KEEP_BUTTONS:
            await webhook.edit_message(message_id, embed=embed, view=view)
            return
        assert webhook.token is not None
        with handle_message_parameters(
            embed=embed, previous_allowed_mentions=self._bot.allowed_mentions
        ) as params:
            await async_context.get().edit_webhook_message(
                webhook.id,
                webhook.token,
                message_id,
                session=webhook.session,
                proxy=webhook.proxy,
                proxy_auth=webhook.proxy_auth,
                payload=params.payload,
            )

    async def edit_in_channel(
        self, job: Job, message_id: int, embed: discord.Embed, view: Buttons
    ) -> None:
        body = self.channel_body(job, None, embed)
        if view is not KEEP_BUTTONS:
            await self.channel(job).get_partial_message(message_id).edit(**body, view=view)
            return
        with handle_message_parameters(
            **body, previous_allowed_mentions=self._bot.allowed_mentions
        ) as params:
            await self._bot.http.edit_message(job.channel_id, message_id, params=params)

    def channel(self, job: Job) -> discord.PartialMessageable:
        return self._bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)

    async def drop_token(self, job: Job) -> Job:
        log.info("job=%s interaction token expired; using channel messages", job.id)
        return await self._bot.services.storage.jobs.update(
            job.id, now=self._bot.services.clock.time(), interaction_token=None
        )

    def upload_limit(self, job: Job) -> int:
        guild = self._bot.get_guild(job.guild_id)
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    def mention(self, job: Job) -> discord.AllowedMentions:
        return discord.AllowedMentions(
            users=[discord.Object(job.user_id)], everyone=False, roles=False
        )

    def origin(self, job: Job) -> str:
        guild = self._bot.get_guild(job.guild_id)
        return render.origin(job, guild.name if guild is not None else None)

    def can_embed(self, job: Job) -> bool:
        permissions = bot_permissions(self._bot, job)
        return permissions is None or permissions.embed_links  # unknown: Discord will tell

    def channel_body(self, job: Job, content: str | None, embed: discord.Embed) -> dict[str, Any]:
        """``content`` and ``embed`` for a channel message, folded into text without Embed Links."""
        if self.can_embed(job):
            return {"content": content, "embed": embed}
        return {"content": folded(content, embed), "embed": None}


def folded(content: str | None, embed: discord.Embed) -> str:
    """The message text with the embed's words below it, within Discord's 2000 characters."""
    text = "\n".join(part for part in (content, render.embed_as_text(embed)) if part)
    return text[:CONTENT_MAX]


def clip_nonce(job: Job) -> str:
    """The same for every attempt at one job's clip: with it discord.py sets enforce_nonce, so
    Discord returns the first message instead of posting again when a retry follows a post
    that succeeded but whose answer was lost (a 5xx from Discord's edge)."""
    return f"videobot-clip-{job.id}"[:25]


def progress_nonce(job: Job) -> str:
    """Like ``clip_nonce``: a progress message posted anew after a lost answer is one message."""
    return f"videobot-prog-{job.id}"[:25]


def failure_nonce(job: Job) -> str:
    """Like ``clip_nonce``: a failure message posted again after a lost answer is one message."""
    return f"videobot-fail-{job.id}"[:25]


def clip_file(job: Job, path: Path) -> discord.File:
    return discord.File(
        path, filename=render.clip_filename(job), description=f"Video for job {job.id}"
    )
