"""Who counts as a moderator: Manage Server, Administrator, or the server's moderator role."""

from __future__ import annotations

import discord


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
    services = getattr(interaction.client, "services", None)
    if services is None:
        return False
    role_id = await services.limits.moderator_role_id(interaction.guild_id)
    return role_id is not None and any(
        role.id == role_id for role in getattr(interaction.user, "roles", ())
    )
