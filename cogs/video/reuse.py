"""A seeded `/video` someone already got on this server: point at that clip, bill nothing.

The answer is private (the member's request is theirs to see) and offers "Make it anew",
which starts the same request through the limits like any other, for a member who wants
a fresh copy anyway (a deleted post, a clip posted elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord

from cogs.replies import reply
from cogs.video import buttons, render
from cogs.video.custom_ids import CustomIds
from cogs.words import message_url
from services.errors import BotError
from services.models import Job, VideoRequest
from services.reuse import EarlierClip, anew_fingerprint, find_earlier_clip

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

# Whether each member asked for privacy when a clip was offered to them, so that "Make it
# anew" honours it. Only in memory: after a restart the new clip is made privately, which
# shows nobody anything the member did not choose to show (they can still Share it).
_WISHES_KEPT = 1000
_wished_private: OrderedDict[tuple[int, int], bool] = OrderedDict()

ALREADY_MADE = (
    "This exact clip was already made on this server (same prompt, settings and seed), "
    "so nothing was spent"
)
MAKE_IT_ANEW = "Press **Make it anew** to make a new one anyway; it counts like any other."


def anew_view(job: Job, ids: CustomIds) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(buttons.JobButton.for_job("anew", job.id, ids))
    return view


def _remember_wish(user_id: int, job_id: int, private: bool) -> None:
    _wished_private[(user_id, job_id)] = private
    _wished_private.move_to_end((user_id, job_id))
    while len(_wished_private) > _WISHES_KEPT:
        _wished_private.popitem(last=False)


async def offer_earlier_clip(
    bot: VideoBot, interaction: discord.Interaction, request: VideoRequest, *, private: bool
) -> bool:
    """Answer with a delivered clip of exactly ``request``; False when there is none to show.

    Only for a seed the member chose: an omitted one is drawn anew, so that request is new.
    """
    if interaction.guild_id is None:
        return False
    services = bot.services
    lookup = asyncio.ensure_future(
        find_earlier_clip(
            services.storage.jobs,
            services.clips,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
            request=request,
            may_offer=_offerable_to(interaction),
        )
    )
    # A local lookup, but the database may be busy: acknowledged privately first if slow.
    earlier = await bot.starter.in_time(interaction, lookup)
    if earlier is None:
        return False
    if earlier.message_id is not None:
        url = message_url(interaction.guild_id, earlier.job.channel_id, earlier.message_id)
        await reply(
            interaction,
            f"{ALREADY_MADE}: {url}\n{MAKE_IT_ANEW}",
            view=anew_view(earlier.job, bot.custom_ids),
        )
    elif not await _show_own_clip(bot, interaction, earlier):
        return False
    _remember_wish(interaction.user.id, earlier.job.id, private)
    log.info(
        "job=%s offered again to user=%s instead of a new clip", earlier.job.id, interaction.user.id
    )
    return True


def _offerable_to(interaction: discord.Interaction) -> Callable[[Job], bool]:
    """Which earlier clips may be shown to the member asking: what storage cannot judge."""
    guild, member = interaction.guild, interaction.user
    if guild is None or not isinstance(member, discord.Member):
        return lambda job: False  # no channel permissions to check against: make it anew

    def may_offer(job: Job) -> bool:
        if not _may_view_channel(guild, member, job):
            return False
        # Someone else's shared private clip: its post may show its request cut short, and
        # a match on the whole request would confirm a guess at the part left hidden.
        return not job.private or job.user_id == member.id or _shown_in_full(job)

    return may_offer


def _may_view_channel(guild: discord.Guild, member: discord.Member, job: Job) -> bool:
    """Whether ``member`` sees the job's channel: a link into one they cannot would reveal
    that it exists (its id), and open nothing for them."""
    channel = guild.get_channel_or_thread(job.channel_id)
    if channel is None:
        return False  # gone (or a thread not in the cache): nothing to point at
    try:
        permissions = channel.permissions_for(member)
    except discord.ClientException:
        return False  # a thread whose parent is not cached: its permissions are unknown
    if not permissions.view_channel:
        return False
    if isinstance(channel, discord.Thread) and channel.is_private():
        # Seeing the parent is not enough: a private thread shows only to those in it,
        # which the cache does not reliably know; its requester and thread managers do.
        return member.id == job.user_id or permissions.manage_threads
    return True


def _shown_in_full(job: Job) -> bool:
    """Whether the shared post, as render draws it, shows the prompt and negative prompt uncut."""
    embed = render.result_embed(job)
    negative = {field.name: field.value for field in embed.fields}.get("Negative prompt")
    request = job.request
    return embed.description == _uncut(request.prompt) and negative == (
        _uncut(request.negative_prompt) or "(none)"
    )


def _uncut(text: str) -> str:
    return render.shown_text(text, sys.maxsize)


async def _show_own_clip(
    bot: VideoBot, interaction: discord.Interaction, earlier: EarlierClip
) -> bool:
    """The member's own private clip, sent to them alone again; False if it no longer fits."""
    if not interaction.response.is_done():
        # Fitting the file may mean re-encoding it: longer than Discord's 3 s.
        await interaction.response.defer(ephemeral=True, thinking=True)
    job = earlier.job
    path = await bot.services.clips.fit(job, interaction.filesize_limit, source=earlier.clip_path)
    if path is None:
        return False  # too large for this member now: made anew, as if never made
    await interaction.followup.send(
        f"{ALREADY_MADE}; here it is again, for you alone.\n{MAKE_IT_ANEW}",
        embed=render.result_embed(job),
        file=discord.File(path, filename=render.clip_filename(job)),
        view=anew_view(job, bot.custom_ids),
        ephemeral=True,
        allowed_mentions=discord.AllowedMentions.none(),
    )
    return True


async def make_anew(bot: VideoBot, interaction: discord.Interaction, earlier: Job) -> None:
    """The "Make it anew" button: ``earlier``'s request again, through admission like any other."""
    offered = interaction.message.interaction_metadata if interaction.message else None
    if offered is None or offered.user.id != interaction.user.id:
        # The offer is private to the member who asked; nobody else may spend for them.
        raise BotError("Only the member this clip was offered to can make it anew.")
    if earlier.private and earlier.shared_message_id is None and earlier.user_id != offered.user.id:
        raise BotError("That video is no longer known to me.")  # never offered to them
    private = _wished_private.get((interaction.user.id, earlier.id), True)
    await bot.starter.start(
        interaction,
        earlier.request,
        private=private,
        parent_job_id=earlier.id,
        fingerprint=anew_fingerprint(earlier.id),
    )
