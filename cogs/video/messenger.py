"""Posting and editing a job's messages, through whatever route still works.

Progress goes through the interaction webhook while its token is fresh (the only route
for private, ephemeral messages, and one that needs no channel permissions); near
Discord's 15-minute limit, or when Discord answers 50027/401, it moves to plain channel
messages. The clip itself is posted once on every route (see ``send_result``): a
private one replaces its progress message, a public one goes to the channel with a
nonce, a DM carries one too. Deleted messages are posted again, an upload that does
not fit becomes an expiring link, a channel the bot cannot use becomes a direct
message. Each fault is logged once; none ends in a crash or a retry loop. The routes
themselves, and what every post carries (pings, nonces, folded embeds), are in routes.py.

Every write to a channel spends that channel's share of Discord's rate limit
(``services.channel_budget``), in one of two lanes as Discord counts them: posts and edits.
A clip, a failure, a final edit is a priority write, ahead of any waiting progress edit;
progress edits take their fair turn in the throttle before they reach ``edit_progress``
(``turn_taken``). A write holds its turn until Discord has answered it. Interaction webhook
edits are limited per token by Discord, not per channel, and spend nothing here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from cogs.discord_errors import (
    UNKNOWN_MESSAGE,
    is_transient,
    token_expired,
    upload_refused,
)
from cogs.video import render
from cogs.video.buttons import KEEP_BUTTONS, KeptButtons, notice_view, progress_view
from cogs.video.earlier_posts import EarlierPosts
from cogs.video.routes import (
    DEFAULT_UPLOAD_LIMIT,
    MemberRoutes,
    clip_file,
    clip_nonce,
    failure_nonce,
    folded,
    progress_nonce,
)
from cogs.words import CONTENT_MAX
from services.channel_budget import ChannelBudget
from services.errors import ClipUndeliverable
from services.metrics import DeliveryRoute
from services.models import Job, JobState

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

# Discord keeps two buckets per channel, one for posting messages and one for editing them.
CREATE, EDIT = "create", "edit"


class NoRoute(ClipUndeliverable):
    """No way is left to reach the member for this job (not a passing outage)."""


@dataclass(frozen=True)
class Clip:
    path: Path
    link: str | None  # Segmind's URL: the last resort, valid for about an hour

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@dataclass(frozen=True)
class ResultMessage:
    """The clip's message: ``link_content`` replaces ``content`` when only a link can be sent."""

    clip: Clip
    content: str
    link_content: str
    embed: discord.Embed | None  # None where the bot may not embed: the text holds it all
    view: discord.ui.View | None = None


class JobMessenger:
    def __init__(self, bot: VideoBot) -> None:
        self._bot = bot
        self._unreachable_progress: set[int] = set()
        # Jobs whose progress message is a plain channel message (posted again after a
        # delete): the interaction webhook can only edit its own messages, so skip it.
        self._progress_in_channel: set[int] = set()
        self._sent_by_dm: set[int] = set()
        self._earlier_posts = EarlierPosts(bot)
        self._routes = MemberRoutes(bot)
        self.budget = ChannelBudget()

    def forget(self, job_id: int) -> None:
        """Drop what was remembered about a job's messages once it has ended."""
        self._unreachable_progress.discard(job_id)
        self._progress_in_channel.discard(job_id)
        self._sent_by_dm.discard(job_id)

    def sent_by_dm(self, job_id: int) -> bool:
        """Whether the clip went to the requester's DMs (the channel could not be used)."""
        return job_id in self._sent_by_dm

    def token_usable(self, job: Job) -> bool:
        """Whether the interaction's token still reaches the job's messages."""
        return self._routes.token_usable(job)

    def progress_lane(self, job: Job) -> Hashable | None:
        """The channel budget a progress edit of ``job`` spends now (None: the webhook's)."""
        if job.private or job.id in self._unreachable_progress:
            return None
        if self._routes.token_usable(job) and job.id not in self._progress_in_channel:
            return None
        return (job.channel_id, EDIT)

    def _channel_turn(self, job: Job, kind: str) -> AbstractAsyncContextManager[None]:
        """A priority write in the job's channel: ahead of every waiting progress edit.

        Held around the write: its share of the channel's window starts when Discord answers.
        """
        return self.budget.priority((job.channel_id, kind))

    # --- progress -----------------------------------------------------------------

    async def edit_progress(
        self,
        job: Job,
        *,
        embed: discord.Embed,
        view: discord.ui.View | KeptButtons | None,
        turn_taken: bool = False,
    ) -> Job:
        """Show ``embed`` on the job's progress message; returns the job as now stored.

        ``view``: the buttons, None for none, or ``KEEP_BUTTONS``. ``turn_taken``: the caller
        already waited for the channel's turn (a progress edit through the throttle);
        otherwise a channel edit is a priority write.
        """
        if job.id in self._unreachable_progress or job.message_id is None:
            return job
        if self._routes.token_usable(job) and job.id not in self._progress_in_channel:
            turn_taken = False  # any turn was the webhook's: the channel was not asked
            try:
                await self._routes.edit_by_webhook(job, job.message_id, embed, view)
                return job
            except discord.HTTPException as error:
                if token_expired(error):
                    job = await self._routes.drop_token(job)
                    self._progress_in_channel.add(job.id)  # the runner's copy keeps the token
                elif error.code == UNKNOWN_MESSAGE and not job.private:
                    # Deleted, or not the webhook's own (posted again in the channel
                    # before a restart): the channel route edits it or posts it anew.
                    self._progress_in_channel.add(job.id)
                else:
                    return self._give_up_progress(job, error)
        if job.private or job.message_id is None:
            return job  # an ephemeral message cannot be edited without its token
        try:
            async with nullcontext() if turn_taken else self._channel_turn(job, EDIT):
                await self._routes.edit_in_channel(job, job.message_id, embed, view)
            return job
        except discord.NotFound:
            return await self._repost_progress(job, embed=embed, view=view)
        except discord.HTTPException as error:
            return self._give_up_progress(job, error)

    async def _repost_progress(
        self, job: Job, *, embed: discord.Embed, view: discord.ui.View | KeptButtons | None
    ) -> Job:
        log.info("job=%s progress message is gone; posting it again", job.id)
        if view is KEEP_BUTTONS:  # the buttons were on the message that is gone
            view = progress_view(job, self._bot.custom_ids)
        try:
            body = self._routes.channel_body(job, None, embed)
            if view is not None:
                body["view"] = view
            # A progress post whose answer was lost is not posted twice when tried again.
            async with self._channel_turn(job, CREATE):
                message = await self._routes.channel(job).send(**body, nonce=progress_nonce(job))
        except discord.HTTPException as error:
            return self._give_up_progress(job, error)
        self._progress_in_channel.add(job.id)
        return await self._bot.services.storage.jobs.update(
            job.id, now=self._bot.services.clock.time(), message_id=message.id
        )

    def _give_up_progress(self, job: Job, error: discord.HTTPException) -> Job:
        """Stop showing progress after a refusal; Discord's own trouble is raised instead.

        A 5xx or 429 passes: the next edit (or the failure message's next try) tries again.
        """
        if is_transient(error):
            raise error
        log.warning(
            "job=%s progress can no longer be shown (status=%s code=%s); "
            "the result will still be posted",
            job.id,
            error.status,
            error.code,
        )
        self._unreachable_progress.add(job.id)
        return job

    # --- result ---------------------------------------------------------------------

    async def send_result(self, job: Job, result: ResultMessage) -> int | None:
        """Post the clip once (pinging only the requester); returns the message id.

        Every route is safe to try again, after a lost answer or a crash: a private clip
        replaces its own progress message (an edit, which repeats harmlessly); a public
        one goes to the channel, and a DM to the member, with a nonce Discord enforces for
        a few minutes; and once a post has begun (a durable mark), the bot first looks
        for its own message before posting again. The interaction webhook, which has no
        nonce and which discord.py resends after a 5xx, is only the fallback for a channel
        the bot may not post in.
        """
        # A private clip replaces its progress message: an edit repeats harmlessly.
        if job.posting_started_at is not None and not (
            job.private and self._routes.token_usable(job)
        ):
            found = await self._earlier_posts.find(job)  # a 5xx raises: look again later
            if found is not None:
                log.info("job=%s clip was already posted (message=%s)", job.id, found)
                self._bot.services.metrics.clip_found(job.id)
                return found
        # Marked anew before each attempt: the next look need only reach back to this one.
        now = self._bot.services.clock.time()
        job = await self._bot.services.storage.jobs.update(
            job.id, now=now, posting_started_at=now, durable=True
        )
        if job.private:
            return await self._send_private(job, result)
        return await self._send_public(job, result)

    async def _send_public(self, job: Job, result: ResultMessage) -> int:
        """The channel (a nonce), else the interaction (no channel rights needed), else a DM."""
        try:
            return await self._send_via_channel(job, result)
        except (discord.HTTPException, NoRoute) as error:
            # Discord's trouble is waited out; a refusal (no access, AutoMod, a locked
            # thread, no file and no link) leaves other ways in.
            if isinstance(error, discord.HTTPException) and is_transient(error):
                raise
            log.warning(
                "job=%s cannot post in channel=%s (%s); trying the interaction, then a DM",
                job.id,
                job.channel_id,
                getattr(error, "code", error),
            )
        if self._routes.token_usable(job):
            try:
                return await self._send_via_token(job, result)
            except discord.HTTPException as error:
                if token_expired(error):
                    job = await self._routes.drop_token(job)
                elif is_transient(error):
                    raise
                else:
                    log.warning("job=%s interaction webhook refused (%s)", job.id, error.status)
            except NoRoute:
                pass
        return await self._send_direct(job, result)

    async def _send_private(self, job: Job, result: ResultMessage) -> int:
        """The private progress message becomes the clip: only its token can reach it."""
        if self._routes.token_usable(job) and job.message_id is not None:
            try:
                message_id = await self._replace_progress(job, result)
            except discord.HTTPException as error:
                if not token_expired(error) and error.code != UNKNOWN_MESSAGE:
                    raise
                if token_expired(error):
                    job = await self._routes.drop_token(job)
            else:
                await self._tell_private_ready(job)
                return message_id
        try:
            return await self._send_direct(job, result)
        except NoRoute as error:
            log.warning(
                "job=%s private clip cannot be sent by DM (%s); posting a notice", job.id, error
            )
        return await self._send_notice(job)

    async def _tell_private_ready(self, job: Job) -> None:
        """An edit notifies nobody, and the member has usually looked away: a private ping.

        Best effort, and harmless if a retry sends it twice: it carries no clip.
        """
        try:
            await self._routes.webhook(job).send(
                render.private_ready(job),
                ephemeral=True,
                allowed_mentions=self._routes.mention(job),
            )
        except discord.HTTPException as error:
            log.info("job=%s requester could not be pinged (code=%s)", job.id, error.code)

    async def _send_notice(self, job: Job) -> int:
        """A short line in the channel, pinging only the requester, with a button that shows
        them the clip privately: a click is a fresh interaction, so it can answer ephemerally."""
        options: dict[str, Any] = {
            "allowed_mentions": self._routes.mention(job),
            "nonce": clip_nonce(job),
            "view": notice_view(job, self._bot.custom_ids),
        }
        try:
            async with self._channel_turn(job, CREATE):
                message = await self._routes.channel(job).send(
                    render.private_notice(job), **options
                )
        except discord.HTTPException as error:
            if error.status >= 500 or error.status == 429:
                raise
            raise NoRoute(
                detail=f"no token, DM or channel reaches the member for job {job.id}: {error.code}"
            ) from error
        self._bot.services.metrics.clip_posted(job.id, "notice", "button")
        return message.id

    async def _replace_progress(self, job: Job, result: ResultMessage) -> int:
        assert job.message_id is not None
        webhook, message_id = self._routes.webhook(job), job.message_id

        async def edit(content: str, file: discord.File | None = None, **options: Any) -> Any:
            attachments = [file] if file is not None else []
            return await webhook.edit_message(
                message_id, content=content, attachments=attachments, **options
            )

        limit = job.upload_limit or self._routes.upload_limit(job)
        options = {"allowed_mentions": self._routes.mention(job)}
        await self._post(edit, job, result, limit, options, route="edit")
        return message_id

    async def _send_via_token(self, job: Job, result: ResultMessage) -> int:
        # The interaction's own limit counts the requester's Nitro; fall back to the server's.
        limit = job.upload_limit or self._routes.upload_limit(job)
        options = {
            "ephemeral": job.private,
            "wait": True,
            "allowed_mentions": self._routes.mention(job),
        }
        return await self._post(
            self._routes.webhook(job).send, job, result, limit, options, route="followup"
        )

    async def _send_via_channel(self, job: Job, result: ResultMessage) -> int:
        options = {"allowed_mentions": self._routes.mention(job), "nonce": clip_nonce(job)}
        if result.embed is not None and not self._routes.can_embed(job):
            result = replace(
                result,
                content=folded(result.content, result.embed),
                link_content=folded(result.link_content, result.embed),
                embed=None,
            )
        channel = self._routes.channel(job)

        async def send(*args: Any, **kwargs: Any) -> discord.Message:
            # The turn is taken right before each post: a re-encode may come first.
            async with self._channel_turn(job, CREATE):
                return await channel.send(*args, **kwargs)

        return await self._post(
            send,
            job,
            result,
            self._routes.upload_limit(job),
            options,
            route="channel",
        )

    async def _send_direct(self, job: Job, result: ResultMessage) -> int:
        try:
            user = self._bot.get_user(job.user_id) or await self._bot.fetch_user(job.user_id)
            # Buttons act on the server's job; in a DM they would only confuse. Say where
            # the request was made: a DM alone does not.
            where = self._routes.origin(job)
            direct = replace(
                result,
                view=None,
                content=f"{result.content}\n{where}"[:CONTENT_MAX],
                link_content=f"{result.link_content}\n{where}"[:CONTENT_MAX],
            )
            options = {"nonce": clip_nonce(job)}
            message_id = await self._post(
                user.send, job, direct, DEFAULT_UPLOAD_LIMIT, options, route="dm"
            )
            self._sent_by_dm.add(job.id)
            return message_id
        except discord.HTTPException as error:
            if error.status >= 500 or error.status == 429:
                raise  # Discord is having trouble, not the member's DMs: try again later
            raise NoRoute(
                detail=f"no channel, token or DM reaches user for job {job.id}: {error.code}"
            ) from error

    async def _post(
        self,
        send: Callable[..., Awaitable[discord.Message | None]],
        job: Job,
        result: ResultMessage,
        limit: int,
        options: dict[str, Any],
        *,
        route: DeliveryRoute,
    ) -> int:
        """Attach the clip, re-encoded if over ``limit``; an expiring link is the last resort."""
        metrics = self._bot.services.metrics
        options = {**options}
        if result.embed is not None:
            options["embed"] = result.embed
        if result.view is not None:
            options["view"] = result.view
        path = await self._bot.services.clips.fit(job, limit, source=result.clip.path)
        if path is not None:
            try:
                message = await send(result.content, file=clip_file(job, path), **options)
                metrics.clip_posted(job.id, route, "file")
                return message.id if message else 0
            except discord.HTTPException as error:
                if not upload_refused(error):
                    raise
                log.info(
                    "job=%s upload refused (status=%s code=%s); sending a link",
                    job.id,
                    error.status,
                    error.code,
                )
        if not result.clip.link:
            raise NoRoute(
                "The video is too large to post here, and Segmind's link to it has expired.",
                detail="the clip does not fit and there is no link to it",
            )
        message = await send(result.link_content, **options)
        metrics.clip_posted(job.id, route, "link")
        return message.id if message else 0

    # --- failure --------------------------------------------------------------------

    async def _notify(self, job: Job, text: str) -> None:
        """A short public line that pings only the requester; best effort."""
        options: dict[str, Any] = {"allowed_mentions": self._routes.mention(job)}
        try:
            if self._routes.token_usable(job):
                await self._routes.webhook(job).send(text, **options)
            else:
                async with self._channel_turn(job, CREATE):
                    await self._routes.channel(job).send(text, **options)
        except discord.HTTPException as error:
            log.info("job=%s requester could not be notified (code=%s)", job.id, error.code)

    async def send_failure(self, job: Job, *, embed: discord.Embed) -> None:
        """Replace the progress message with the failure; post it anew if that is impossible.

        Raises while Discord is not answering (5xx, 429, no connection): the member is owed
        this message and the caller tries again. Every step repeats harmlessly: an edit, or a
        post with a nonce. Returns when shown, or when Discord refuses every route for good.
        """
        job = await self.edit_progress(job, embed=embed, view=None)
        shown = job.message_id is not None and job.id not in self._unreachable_progress
        if shown and (not job.private or self._routes.token_usable(job)):
            if not job.private and job.state is not JobState.CANCELLED:
                # An edit does not notify, and the member has usually looked away by now.
                await self._notify(job, f"<@{job.user_id}>, your video could not be made.")
            return
        try:
            if job.private:
                user = self._bot.get_user(job.user_id) or await self._bot.fetch_user(job.user_id)
                await user.send(embed=embed, nonce=failure_nonce(job))
            else:
                async with self._channel_turn(job, CREATE):
                    await self._routes.channel(job).send(
                        **self._routes.channel_body(job, f"<@{job.user_id}>", embed),
                        allowed_mentions=self._routes.mention(job),
                        nonce=failure_nonce(job),
                    )
        except discord.HTTPException as error:
            if is_transient(error):
                raise
            log.warning(
                "job=%s failure could not be shown to the member (code=%s)", job.id, error.code
            )
        finally:
            self._unreachable_progress.discard(job.id)
