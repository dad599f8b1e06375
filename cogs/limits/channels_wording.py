"""How `/videolimit channels` reads: what an add or remove did, the list, and its history.

Pure functions from the allow-list service's data to text and embeds, kept apart from the
command module so `cogs.limits.wording` (history) can use them without importing commands.
"""

from __future__ import annotations

from collections.abc import Sequence

import discord

from cogs.pages import paginate
from cogs.words import discord_timestamp, plural
from services.allowed_channels import ALLOW_ACTION, DISALLOW_ACTION, ChannelListChange
from services.models import AllowedChannel, AuditEntry


def render_channel_change(change: ChannelListChange) -> str:
    """What an add or remove did, and where `/video` works now."""
    mention = f"<#{change.channel_id}>"
    if change.added:
        if not change.changed:
            return f"{mention} is already listed; nothing was changed."
        others = change.listed - 1
        rest = f" and the {plural(others, 'other listed channel')}" if others else ""
        return (
            f"`/video` now works in {mention} and its threads{rest}, and nowhere else. "
            "Members elsewhere are told where it works."
        )
    if not change.changed:
        if change.listed == 0:
            return f"{mention} is not listed, and no channel is: `/video` works everywhere."
        return f"{mention} is not listed; nothing was changed."
    if change.listed == 0:
        return f"{mention} was the last listed channel: `/video` works in every channel again."
    return (
        f"`/video` no longer works in {mention}. It still works in the "
        f"{plural(change.listed, 'listed channel')} (see `/videolimit channels show`)."
    )


def render_channel_list(listed: Sequence[AllowedChannel]) -> list[discord.Embed]:
    """`/videolimit channels show`: each channel, who listed it and when."""
    if not listed:
        header = ["No channel is listed: `/video` works in every channel."]
    elif len(listed) == 1:
        header = ["`/video` works only in this channel and its threads:"]
    else:
        header = [f"`/video` works only in these {len(listed)} channels and their threads:"]
    # Shown as mentions: should a deleted channel linger (its removal failed), Discord
    # renders it as deleted, so moderators can see why /video is refused there.
    lines = [
        f"<#{c.channel_id}> · added by <@{c.added_by}> {discord_timestamp(c.added_at)}"
        for c in listed
    ]
    return paginate("Where /video works", header, lines)


def channel_history_words(entry: AuditEntry) -> str | None:
    """An allow-list change in `/videolimit history`'s words; None when it is not one."""
    if entry.action not in (ALLOW_ACTION, DISALLOW_ACTION):
        return None
    kind, _, ident = entry.target.partition(":")
    mention = f"<#{ident}>" if kind == "channel" and ident.isdigit() else "a channel"
    listed_text, _, why = entry.detail.partition("; ")
    count = listed_text.removeprefix("listed=")
    if entry.action == ALLOW_ACTION:
        return f"let `/video` work in {mention}"
    reason = " (the channel was deleted)" if why == "deleted" else ""
    everywhere = ": `/video` works everywhere again" if count == "0" else ""
    return f"stopped `/video` working in {mention}{reason}{everywhere}"
