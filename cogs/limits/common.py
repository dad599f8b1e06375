"""What every `/videolimit` subcommand shares: the server it runs in, and its private reply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import discord

from cogs.pages import Pages
from cogs.replies import reply as safe_reply
from services.errors import BotError

NO_PINGS = discord.AllowedMentions.none()


def guild_id_of(interaction: discord.Interaction) -> int:
    """The server of a guild-only command (the moderator check has already required one)."""
    if interaction.guild_id is None:
        raise BotError("`/videolimit` works only in a server.")
    return interaction.guild_id


def member_role_ids(user: Any) -> list[int]:
    return [role.id for role in getattr(user, "roles", ())]


async def reply(
    interaction: discord.Interaction,
    content: str | None = None,
    *,
    embeds: Sequence[discord.Embed] = (),
    file: discord.File | None = None,
) -> None:
    """Ephemeral, no pings, through the bot's one safe send; several embeds become pages."""
    kwargs: dict[str, Any] = {"allowed_mentions": NO_PINGS}
    if file is not None:  # stays on the message while the pages turn (edits keep attachments)
        kwargs["file"] = file
    if embeds:
        kwargs["embed"] = embeds[0]
    if len(embeds) > 1:
        kwargs["view"] = pages = Pages(embeds, interaction.user.id)
        pages.message_of = interaction
    await safe_reply(interaction, content or None, ephemeral=True, **kwargs)
