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

log = logging.getLogger(__name__)


async def reply(
    interaction: discord.Interaction,
    content: str | None = None,
    *,
    ephemeral: bool = True,
    **kwargs: Any,
) -> discord.Message | None:
    """Answer ``interaction`` (respond, or follow up) and fall back when its token is gone."""
    kwargs.setdefault("allowed_mentions", discord.AllowedMentions.none())
    if content is not None:
        kwargs["content"] = content
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
