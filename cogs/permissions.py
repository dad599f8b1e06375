"""Who counts as a moderator: Manage Server, Administrator, or the server's moderator role."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

import discord
from discord import app_commands

from services.errors import BotError

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)


async def is_moderator(interaction: discord.Interaction) -> bool:
    """Checked at run time, because default permissions only hide commands and can be overridden.

    ``interaction.permissions`` are the member's resolved permissions in this channel, as
    Discord computed them for the interaction.
    """
    if interaction.guild_id is None:
        return False
    perms = interaction.permissions
    if perms.manage_guild or perms.administrator:
        return True
    bot = cast("VideoBot", interaction.client)
    role_id = await bot.services.limits.moderator_role_id(interaction.guild_id)
    return role_id is not None and any(
        role.id == role_id for role in getattr(interaction.user, "roles", ())
    )


class NotModerator(app_commands.CheckFailure, BotError):
    """The member may not use /videolimit; ``user_message`` says who may."""

    user_message = (
        "Only moderators can use `/videolimit`: you need Manage Server, Administrator, "
        "or this server's moderator role. Nothing was changed."
    )

    def __init__(self, user_message: str | None = None) -> None:
        BotError.__init__(self, user_message)


async def require_moderator(interaction: discord.Interaction) -> bool:
    """The run-time check on every /videolimit subcommand; raises NotModerator with why."""
    if interaction.guild_id is None:
        raise NotModerator("`/videolimit` works only in a server.")
    if await is_moderator(interaction):
        return True
    log.info(
        "guild=%s user=%s refused /videolimit (not a moderator)",
        interaction.guild_id,
        interaction.user.id,
    )
    raise NotModerator()


async def is_server_manager(interaction: discord.Interaction) -> bool:
    """Manage Server or Administrator only: who may name the moderator role."""
    perms = interaction.permissions
    if interaction.guild_id is not None and (perms.manage_guild or perms.administrator):
        return True
    raise NotModerator(
        "Only members with Manage Server or Administrator can choose the moderator role. "
        "Nothing was changed."
    )


moderator_only = app_commands.check(require_moderator)
server_manager_only = app_commands.check(is_server_manager)
