"""One way to answer an interaction, whatever state it is in.

It knows whether the interaction was already answered (then it follows up) and
whether its token still works (15 minutes, or Discord says 10062/50027): then it
falls back to a plain channel message, which can never be ephemeral, so private
text is dropped there rather than shown to everyone.
"""

from __future__ import annotations

import logging
from typing import Any

import discord

from cogs.discord_errors import token_expired
from cogs.words import CONTENT_MAX

log = logging.getLogger(__name__)


def fit_content(text: str) -> str:
    """``text`` within Discord's limit on a message's text, marked with … where it was cut."""
    return text if len(text) <= CONTENT_MAX else text[: CONTENT_MAX - 1] + "…"


async def reply(
    interaction: discord.Interaction,
    content: str | None = None,
    *,
    ephemeral: bool = True,
    **kwargs: Any,
) -> discord.Message | None:
    """Answer ``interaction`` (respond, or follow up) and fall back when its token is gone.

    Text over Discord's 2,000 characters is cut (ending in …): Discord refuses the whole
    message otherwise, and the member would be left with no answer at all.
    """
    kwargs.setdefault("allowed_mentions", discord.AllowedMentions.none())
    if content is not None:
        kwargs["content"] = fit_content(content)
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(ephemeral=ephemeral, **kwargs)
            return None
        message: discord.Message = await interaction.followup.send(
            ephemeral=ephemeral, wait=True, **kwargs
        )
        return message
    except discord.HTTPException as error:
        if not token_expired(error):
            raise
        if ephemeral or interaction.channel is None:
            log.info("interaction=%s expired before a private reply could be sent", interaction.id)
            return None
        channel = interaction.channel
        if isinstance(channel, discord.abc.Messageable):
            return await channel.send(**kwargs)
        return None
