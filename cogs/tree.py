"""The command tree with the bot's one error handler for every application command."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from cogs import words
from cogs.replies import reply
from services import logcontext
from services.errors import BotError, ConfigurationError, RefusedError

if TYPE_CHECKING:
    from cogs.videobot import VideoBot  # noqa: F401 - named in a string in the base class

log = logging.getLogger(__name__)


class FriendlyCheckFailure(app_commands.CheckFailure):
    """A check failure whose message is written for the member."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


# discord.py's own check failures whose words never change; the last one is the catch-all.
FIXED_WORDS: tuple[tuple[type[Exception], str], ...] = (
    (app_commands.NoPrivateMessage, "This command works in a server, not in direct messages."),
    (app_commands.MissingPermissions, "You need the Manage Server permission for this."),
    (app_commands.CheckFailure, "You are not allowed to use this command here."),
)
UNEXPECTED = (
    "Something went wrong on my side. If it keeps happening, tell a moderator (ref `{ref}`)."
)


def describe_error(error: Exception) -> tuple[str, bool]:
    """The member-facing text for an error, and whether it is unexpected (to log loudly)."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, RefusedError):
        return words.refusal(error), False
    if isinstance(error, BotError):
        return error.user_message, isinstance(error, ConfigurationError)
    if isinstance(error, FriendlyCheckFailure):
        return error.user_message, False
    if isinstance(error, app_commands.BotMissingPermissions):
        missing = ", ".join(p.replace("_", " ") for p in error.missing_permissions)
        return f"I am missing permissions here: {missing}.", False
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down a little: try again in {error.retry_after:.0f}s.", False
    if isinstance(error, app_commands.TransformerError):
        return f"`{error.value}` is not a valid value for this option.", False
    for kind, text in FIXED_WORDS:
        if isinstance(error, kind):
            return text, False
    return "", True


def enter_log_context(interaction: discord.Interaction) -> None:
    """Every line logged while handling ``interaction`` names its server, channel and member.

    discord.py runs each interaction's handler in a task of its own, so this reaches exactly
    the lines of this one (the tree's error handler included).
    """
    logcontext.enter(
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        user_id=interaction.user.id,
    )


class VideoBotTree(app_commands.CommandTree["VideoBot"]):
    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Serve only the servers on ALLOWED_GUILDS (when set); others are told so, privately."""
        enter_log_context(interaction)
        if self.client.services.settings.allows_guild(interaction.guild_id):
            return True
        log.info(
            "guild=%s user=%s not on ALLOWED_GUILDS: refused",
            interaction.guild_id,
            interaction.user.id,
        )
        if interaction.type is discord.InteractionType.autocomplete:
            return False  # suggestions cannot carry a message: offer none
        raise FriendlyCheckFailure(words.NOT_SERVED)

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        text, unexpected = describe_error(error)
        command = interaction.command.qualified_name if interaction.command else "?"
        if unexpected and not text:
            ref = secrets.token_hex(3)
            original = getattr(error, "original", error)
            log.error(
                "command=%s guild=%s user=%s ref=%s failed",
                command,
                interaction.guild_id,
                interaction.user.id,
                ref,
                exc_info=original,
            )
            text = UNEXPECTED.format(ref=ref)
        elif unexpected:
            original = getattr(error, "original", error)
            log.error(
                "command=%s guild=%s: %s",
                command,
                interaction.guild_id,
                getattr(original, "detail", original),
            )
        else:
            # A BotError's detail, not the text shown: the answer to a moderator can quote
            # what they typed (a blocklist term), which is not for the operator's log.
            original = getattr(error, "original", error)
            log.info(
                "command=%s guild=%s user=%s refused: %s",
                command,
                interaction.guild_id,
                interaction.user.id,
                original.detail if isinstance(original, BotError) else text,
            )
        try:
            await reply(interaction, text, ephemeral=True)
        except discord.HTTPException:
            log.warning("could not tell user=%s about an error in %s", interaction.user.id, command)
