"""`/videolimit approval`: requests wait for a moderator's Approve or Deny.

Mixed into ``LimitsCog`` (the `/videolimit` group), so these subcommands share its
moderator check and its private defer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

from cogs.approval.wording import change_words
from cogs.limits.common import guild_id_of, reply
from cogs.permissions import moderator_only
from services.approvals import MODES

if TYPE_CHECKING:
    from discord.ext.commands import Cog as _Mixin  # lets mypy check the callbacks

    from cogs.videobot import VideoBot
else:
    _Mixin = object  # at run time a plain mixin: LimitsCog is the one Cog


class ApprovalCommands(_Mixin):
    """Mixed into LimitsCog."""

    bot: VideoBot

    @app_commands.command(
        name="approval",
        description="Make requests wait for a moderator's Approve (no options: show it).",
    )
    @app_commands.describe(
        mode="required: requests wait for a moderator; off: made at once (the default)",
        role="Members with this role never wait (leave out with required: everyone waits)",
        expires="How long a request waits unanswered, 5m to 7d (default 1h), like 30m or 2h",
    )
    @app_commands.choices(mode=[app_commands.Choice(name=m, value=m) for m in MODES])
    @moderator_only
    async def approval(
        self,
        interaction: discord.Interaction,
        mode: str | None = None,
        role: discord.Role | None = None,
        expires: app_commands.Range[str, 1, 10] | None = None,
    ) -> None:
        change = await self.bot.services.approvals.configure(
            guild_id_of(interaction),
            mode=mode,
            role_id=role.id if role is not None else None,
            expires=expires,
            actor_id=interaction.user.id,
        )
        await reply(interaction, change_words(change))
