"""Publishing a clip to the server's gallery channel: at most once, ever, per clip.

The clip's one post is claimed in the database before anything is sent and released only
when the post surely failed, so a double click, a second process or a restart never posts
it twice. A claim left by a crash mid-post stays claimed: the clip may then never reach
the gallery, which is the price of never posting it twice. In auto mode, a restart
between a clip's delivery and its gallery post is caught up at the next start
(``catch_up``): the clip kept for the gallery is still there, unclaimed.

Public clips are removed from disk once delivered (they live on in Discord), so for a
server with a gallery the presenter keeps a hard link (``gallery-<job>.mp4``) beside them
(a copy where the disk has no hard links) until the clip is published; the runner's sweep
drops it after the clips' retention, and Publish then says the clip is gone. A clip
deleted by its requester or a moderator is taken down (``take_down``): its post goes,
and it is never posted again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import discord

from cogs.replies import reply
from cogs.video import render
from cogs.words import message_url
from services.errors import BotError
from services.models import Gallery, GalleryMode, Job

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

# Discord's codes for a channel the bot cannot post in: missing access, missing
# permissions, unknown channel.
UNPOSTABLE_CODES = frozenset({50001, 50013, 10003})
UNPOSTABLE = (
    "I cannot post in this server's gallery channel, so nothing was published. "
    "The moderators have been told."
)
AUTO_PUBLISH_WAIT_SECONDS = 30.0  # for the runner to record the delivery first
# Not render.clip_gone: making it again with the same seed is no advice here (other
# settings make another clip, and a moderator would pay for someone else's clip).
CLIP_GONE = "This clip is no longer kept, so it can no longer be published."
TAKEN_DOWN = "This video was deleted, so it stays out of the gallery."


class _Unsent(BotError):
    """The gallery post surely did not go out; ``user_message`` says why."""


@dataclass(frozen=True, slots=True)
class Published:
    """Where the clip's gallery post is."""

    channel_id: int
    message_id: int
    jump_url: str


def gallery_embed(job: Job, link: str | None) -> discord.Embed:
    """The gallery post: the prompt shown literally, the seed, credit, a link back.

    The requester is credited by a mention inside the embed, which never pings.
    """
    embed = discord.Embed(
        title="From the gallery",
        description=render.shown_text(job.request.prompt, render.PROMPT_SHOWN_IN_RESULT),
        colour=render.COLOUR_DONE,
    )
    embed.add_field(name="Made by", value=f"<@{job.user_id}>")
    embed.add_field(name="Seed", value=f"`{job.request.seed}`")
    if link is not None:
        embed.add_field(name="Original", value=f"[Jump to the video]({link})")
    return embed


class GalleryPublisher:
    """Posts clips to gallery channels; reached by buttons through ``bot.presenter.gallery``."""

    def __init__(self, bot: VideoBot) -> None:
        self._bot = bot
        # Gallery channels whose moderators were told that the bot cannot post there;
        # forgotten after a post there succeeds, so a new breakage is told again.
        self._told_unpostable: set[tuple[int, int]] = set()
        # Clips being copied for the gallery (where hard links fail), by job id: a publish
        # or a take-down waits for its copy.
        self._keeping: dict[int, asyncio.Task[None]] = {}

    async def gallery_of(self, guild_id: int) -> Gallery | None:
        """The server's gallery; None when unset or unreadable (never fails a delivery)."""
        try:
            return await self._bot.services.gallery.setting(guild_id)
        except Exception:
            log.warning("guild=%s gallery setting could not be read", guild_id, exc_info=True)
            return None

    async def offers_publish(self, job: Job) -> bool:
        """Whether the job's public card (or shared post) carries a Publish button."""
        gallery = await self.gallery_of(job.guild_id)
        return gallery is not None and gallery.mode is GalleryMode.MANUAL

    def kept_path(self, job: Job) -> Path:
        return self._bot.services.clips.directory / f"gallery-{job.id}.mp4"

    def keep_clip(self, job: Job) -> None:
        """Keep a public clip for the gallery past its delivery: a hard link, else a copy.

        Some disks have no hard links (FAT, some network and FUSE mounts: EPERM, ENOTSUP,
        EXDEV). The copy (tens of MiB) runs in a thread, off the event loop; the clip is
        opened here first, so the runner removing it after the delivery cannot outrun it.
        """
        if job.clip_path is None:
            return
        kept = self.kept_path(job)
        try:
            os.link(job.clip_path, kept)
            return
        except FileExistsError:
            return  # a retried delivery
        except OSError as error:
            log.info("job=%s no hard link for the gallery (%s): copying", job.id, error)
        try:
            source = open(job.clip_path, "rb")  # noqa: SIM115 (closed by the copy)
        except OSError as error:
            log.warning("job=%s clip could not be kept for the gallery: %s", job.id, error)
            return
        task = self._bot.background.spawn(self._copy(job.id, source, kept))
        self._keeping[job.id] = task
        task.add_done_callback(lambda _: self._keeping.pop(job.id, None))

    async def _copy(self, job_id: int, source: BinaryIO, kept: Path) -> None:
        try:
            await asyncio.to_thread(_copy_into, source, kept)
        except OSError as error:
            log.warning("job=%s clip could not be kept for the gallery: %s", job_id, error)

    async def _kept(self, job: Job) -> None:
        """Wait for the clip's copy for the gallery, if one is being made."""
        copying = self._keeping.get(job.id)
        if copying is not None:
            await asyncio.shield(copying)

    def _source(self, job: Job) -> Path | None:
        for path in (job.clip_path, self.kept_path(job)):
            if path and Path(path).is_file():
                return Path(path)
        return None

    async def publish(self, job: Job, *, by: int, link: str | None) -> Published:
        """Post the clip to its server's gallery, once ever; raises BotError saying why not."""
        services = self._bot.services
        guild, channel = await self._gallery_channel(job)
        earlier = await services.gallery.post_of(job.id)
        if earlier is not None and earlier.taken_down:
            raise BotError(TAKEN_DOWN)
        if earlier is not None:
            raise BotError(self._already(job, earlier.channel_id, earlier.message_id))
        await self._kept(job)
        source = self._source(job)
        if source is None:
            raise BotError(CLIP_GONE)
        if not await services.gallery.claim(job, channel.id, by=by):
            raise BotError(self._already(job, None, None))
        release = services.gallery.release
        try:
            path = await services.clips.fit(job, guild.filesize_limit, source=source)
        except OSError as error:
            await asyncio.shield(release(job.id))  # swept (or taken down) since it was found
            log.info("job=%s clip left the disk before its gallery post: %s", job.id, error)
            raise BotError(CLIP_GONE) from error
        except BaseException:
            await asyncio.shield(release(job.id))  # nothing was sent
            raise
        try:
            if path is None:
                raise _Unsent("This clip is too large for the gallery channel, even re-encoded.")
            message = await self._send(job, channel, path, link)
        except _Unsent:
            # Surely not posted: the clip may be published later.
            await asyncio.shield(release(job.id))
            raise
        self._told_unpostable.discard((job.guild_id, channel.id))
        services.clips.remove(self.kept_path(job))
        if not await services.gallery.posted(job.id, message.id):
            # Deleted by its requester or a moderator while the post went out.
            await self._delete_post(job, channel.id, message.id)
            raise BotError(TAKEN_DOWN)
        log.info("job=%s published to gallery channel=%s by user=%s", job.id, channel.id, by)
        return Published(channel.id, message.id, message.jump_url)

    async def _gallery_channel(self, job: Job) -> tuple[discord.Guild, discord.TextChannel]:
        """The server's gallery channel, when the clip may go there; else BotError why not."""
        gallery = await self._bot.services.gallery.setting(job.guild_id)
        if gallery is None:
            raise BotError("This server has no gallery channel (any more).")
        guild = self._bot.get_guild(job.guild_id)
        channel = guild.get_channel(gallery.channel_id) if guild else None
        if guild is None or not isinstance(channel, discord.TextChannel):
            self._tell_unpostable(job.guild_id, gallery.channel_id, gone=True)
            raise BotError(UNPOSTABLE)
        can = channel.permissions_for(guild.me)
        # Without Embed Links Discord does not refuse the post: it drops the embed, and the
        # clip's one post would go out with no prompt, credit or link back, for good.
        if not (can.view_channel and can.send_messages and can.attach_files and can.embed_links):
            self._tell_unpostable(job.guild_id, channel.id, gone=False)
            raise BotError(UNPOSTABLE)
        hidden = _not_for_everyone(guild, job, channel)
        if hidden is not None:
            raise BotError(hidden)
        return guild, channel

    async def _send(
        self, job: Job, channel: discord.TextChannel, path: Path, link: str | None
    ) -> discord.Message:
        embed = gallery_embed(job, link)
        try:
            # Opened before the upload: a clip swept since ``fit`` surely was not posted.
            file = discord.File(path, filename=render.clip_filename(job))
        except OSError as error:
            log.info("job=%s clip left the disk before its gallery post: %s", job.id, error)
            raise _Unsent(CLIP_GONE) from error
        try:
            return await channel.send(
                embed=embed, file=file, allowed_mentions=discord.AllowedMentions.none()
            )
        except discord.HTTPException as error:
            # A 4xx is Discord refusing the post; a 5xx, a timeout or a cancel mid-upload
            # may have posted it, so those keep the claim (at most once before at least once).
            if error.status >= 500:
                raise
            log.info(
                "job=%s gallery channel=%s refused the post (code=%s)",
                job.id,
                channel.id,
                error.code,
            )
            if error.code not in UNPOSTABLE_CODES:
                raise _Unsent(
                    "Discord refused the gallery post. Please try again later."
                ) from error
            self._tell_unpostable(job.guild_id, channel.id, gone=error.code == 10003)
            raise _Unsent(UNPOSTABLE) from error

    async def take_down(self, job: Job) -> None:
        """The clip was deleted: delete its gallery post, and never post or keep it again.

        Called after the requester or a moderator deleted the clip's message. The claim
        stays, marked taken down, so no click, process or restart publishes it later.
        """
        services = self._bot.services
        await self._kept(job)
        services.clips.remove(self.kept_path(job))
        bot_id = self._bot.user.id if self._bot.user else 0
        earlier = await services.gallery.take_down(job, by=bot_id)
        if earlier is None or earlier.message_id is None or earlier.taken_down:
            return  # never posted, taken down before, or being posted (``publish`` deletes it)
        await self._delete_post(job, earlier.channel_id, earlier.message_id)
        log.info("job=%s gallery post=%s taken down", job.id, earlier.message_id)

    async def _delete_post(self, job: Job, channel_id: int, message_id: int) -> None:
        guild = self._bot.get_guild(job.guild_id)
        channel = guild.get_channel(channel_id) if guild else None
        if not isinstance(channel, discord.TextChannel):
            return  # the channel is gone, and its posts with it
        try:
            await channel.get_partial_message(message_id).delete()
        except discord.NotFound:
            pass  # deleted already
        except discord.HTTPException as error:
            log.warning(
                "job=%s gallery post channel=%s message=%s could not be deleted (code=%s)",
                job.id,
                channel_id,
                message_id,
                error.code,
            )

    def _already(self, job: Job, channel_id: int | None, message_id: int | None) -> str:
        if channel_id is None or message_id is None:
            return "This video is already in the gallery (or on its way there)."
        url = message_url(job.guild_id, channel_id, message_id)
        return f"This video is already in the gallery: {url}"

    def _tell_unpostable(self, guild_id: int, channel_id: int, *, gone: bool) -> None:
        """Tell the moderators once that the gallery channel cannot take posts."""
        if (guild_id, channel_id) in self._told_unpostable:
            return
        guild = self._bot.get_guild(guild_id)
        if guild is None:
            return
        self._told_unpostable.add((guild_id, channel_id))
        problem = (
            "no longer exists"
            if gone
            else "does not let me post (I need View Channel, Send Messages, Attach Files "
            "and Embed Links there)"
        )
        self._bot.alerts.send(
            guild,
            f"The gallery channel <#{channel_id}> {problem}, so no clip can be published. "
            "Fix it, or choose another channel with `/videolimit gallery`.",
        )

    async def publish_when_delivered(self, job: Job, link: str | None) -> None:
        """Auto mode: publish a public clip once the runner has recorded its delivery.

        Runs in the background: the delivery never waits on the gallery, and a gallery
        that fails is only logged (and told to moderators), never the job's failure.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + AUTO_PUBLISH_WAIT_SECONDS
        while True:
            current = await self._bot.services.runner.stored(job.id)
            if current is None or (current.state.is_terminal and current.result_message_id is None):
                return
            if current.result_message_id is not None:
                break
            if loop.time() > deadline:
                log.info("job=%s delivery not recorded in time: not auto-published", job.id)
                return
            await asyncio.sleep(0.05)
        bot_id = self._bot.user.id if self._bot.user else 0
        with contextlib.suppress(BotError):
            await self.publish(current, by=bot_id, link=link)

    async def catch_up(self) -> int:
        """Auto mode after a restart: publish delivered clips kept for the gallery but unposted.

        A clip is kept (``gallery-<job>.mp4``) only for a server with a gallery, and the link
        goes once it is published, so one left over is a delivery the last process did not
        get to publish (or a manual-mode clip nobody published: those are left alone).
        Returns how many were published.
        """
        store = self._bot.services.gallery
        bot_id = self._bot.user.id if self._bot.user else 0
        published = 0
        for kept in sorted(self._bot.services.clips.directory.glob("gallery-*.mp4")):
            number = kept.stem.removeprefix("gallery-")
            job = await self._bot.services.runner.stored(int(number)) if number.isdigit() else None
            if job is None or job.private or job.result_message_id is None:
                continue  # not delivered yet: the resumed delivery publishes it
            gallery = await self.gallery_of(job.guild_id)
            if gallery is None or gallery.mode is not GalleryMode.AUTO:
                continue
            if await store.post_of(job.id) is not None:
                continue  # posted, or claimed by a post that may have gone out
            link = message_url(job.guild_id, job.channel_id, job.result_message_id)
            try:
                await self.publish(job, by=bot_id, link=link)
                published += 1
            except BotError as refusal:
                log.info("job=%s not published at start: %s", job.id, refusal.user_message)
            except Exception:
                log.warning("job=%s could not be published at start", job.id, exc_info=True)
        return published


def _copy_into(source: BinaryIO, kept: Path) -> None:
    """Copy an open clip to ``kept``, whole or not at all (a half copy is never published).

    The partial file's name is one the sweep at start removes (``.*.part``).
    """
    partial = kept.with_name(f".{kept.name}.part")
    with source:
        try:
            with open(partial, "wb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            # The clip's own times, as a hard link would have: the sweep ages it the same.
            stat = os.fstat(source.fileno())
            os.utime(partial, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            os.replace(partial, kept)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def _not_for_everyone(guild: discord.Guild, job: Job, gallery: discord.TextChannel) -> str | None:
    """Why the clip's channel keeps it out of the gallery, or None when it may go there.

    A clip made where not everyone may look (a staff channel, a private thread, an
    age-restricted channel) was shown to those who can see it, not to the whole server:
    the gallery would show it, its prompt and who made it to everyone else.
    """
    source = guild.get_channel_or_thread(job.channel_id)
    if isinstance(source, discord.Thread):
        if source.is_private():
            return "This video was made in a private thread, so it stays out of the gallery."
        source = source.parent
    if source is None:
        return "The channel this video was made in is gone, so it stays out of the gallery."
    everyone_sees = source.permissions_for(guild.default_role).view_channel
    # A member or role kept out by an overwrite would read it in the gallery all the same.
    if not everyone_sees or any(o.pair()[1].view_channel for o in source.overwrites.values()):
        return (
            "This video was made in a channel not everyone can see, so it stays out of the gallery."
        )
    if getattr(source, "nsfw", False) and not gallery.is_nsfw():
        return (
            "This video was made in an age-restricted channel, and the gallery is not one, "
            "so it stays out of the gallery."
        )
    return None


def _link_back(interaction: discord.Interaction, job: Job) -> str | None:
    """The public message the clip came from: the clicked card, else the job's record."""
    clicked = interaction.message
    if clicked is not None and clicked.guild is not None and not clicked.flags.ephemeral:
        return message_url(job.guild_id, clicked.channel.id, clicked.id)
    shown = job.shared_message_id if job.private else job.result_message_id
    return message_url(job.guild_id, job.channel_id, shown) if shown else None


async def publish_clicked(interaction: discord.Interaction, job: Job) -> None:
    """The Publish button, once the clicker may publish: post, then say where, privately."""
    if job.private and job.shared_at is None:
        raise BotError("This video is private: share it in the channel first, then publish it.")
    bot = cast("VideoBot", interaction.client)
    published = await bot.presenter.gallery.publish(
        job, by=interaction.user.id, link=_link_back(interaction, job)
    )
    await reply(
        interaction, f"Published in <#{published.channel_id}>: {published.jump_url}", ephemeral=True
    )
