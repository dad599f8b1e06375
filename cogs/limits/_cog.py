"""`/videolimit`: moderators set who may make how many clips, see usage and spend, and keep
words out of prompts, `/video` to some channels and requests waiting for their approval.

Hidden from members by default permissions (Manage Server) and checked again at run
time, because server admins can change who sees a command. Every reply is ephemeral
and pings nobody. The rules live in services.limits, the words in ``wording``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.limits.approval import ApprovalCommands
from cogs.limits.blocklist import BlocklistCommands
from cogs.limits.channels import ChannelCommands
from cogs.limits.common import guild_id_of, member_role_ids, reply
from cogs.limits.usage_chart import usage_chart_file
from cogs.limits.wording import (
    render_alert_channel,
    render_budget,
    render_change,
    render_gallery,
    render_history,
    render_member_usage,
    render_moderator_role,
    render_overview,
    render_usage,
)
from cogs.permissions import moderator_only, server_manager_only
from services.errors import ValidationError
from services.limits import MAX_COUNT, MAX_MONTHLY_USD, LimitService
from services.models import GalleryMode

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

PERIOD_HELP = "Rolling window: a number then m, h, d or w, like 30m, 6h, 1d or 1w"
PERIOD_SUGGESTIONS = ("30m", "1h", "6h", "12h", "1d", "3d", "1w", "4w")


async def period_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    typed = current.strip().lower()
    options = [p for p in PERIOD_SUGGESTIONS if p.startswith(typed)] or list(PERIOD_SUGGESTIONS)
    if typed and typed not in options:
        options.insert(0, typed[:20])
    return [app_commands.Choice(name=p, value=p) for p in options[:25]]


# --- the command group -------------------------------------------------------------------


# Discord shows this under the command (at most 100 characters): it names every part of
# the group, the blocklist, channels and approval subcommand groups included.
GROUP_DESCRIPTION = (
    "Moderators: limits and spending, blocked words, where /video works, and approval."
)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class LimitsCog(
    BlocklistCommands,
    ChannelCommands,
    ApprovalCommands,
    commands.GroupCog,
    group_name="videolimit",
    group_description=GROUP_DESCRIPTION,
):
    """Moderators: limits and spending, blocked words, where /video works, and approval."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    @property
    def limits(self) -> LimitService:
        return self.bot.services.limits

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Answer first: every check and change below waits on SQLite, and Discord allows 3 s.

        Every reply of this command is private, so a private defer shows nothing to others;
        discord.py runs this before the moderator checks, and not for autocomplete.
        """
        if not interaction.response.is_done():
            await interaction.response.defer(ephemeral=True, thinking=True)
        return True

    @app_commands.command(
        name="set",
        description="Set a member's own limit: count clips per rolling period (0 blocks).",
    )
    @app_commands.describe(
        user="The member",
        count="Clips allowed per period; 0 blocks the member",
        period=PERIOD_HELP,
    )
    @app_commands.autocomplete(period=period_autocomplete)
    @moderator_only
    async def set_user(
        self,
        interaction: discord.Interaction,
        user: discord.Member | discord.User,
        count: app_commands.Range[int, 0, MAX_COUNT],
        period: str,
    ) -> None:
        change = await self.limits.set_user_limit(
            guild_id_of(interaction), user.id, count, period, actor_id=interaction.user.id
        )
        await reply(interaction, render_change(change))

    @app_commands.command(
        name="clear",
        description="Remove a member's own limit: their roles or the server default apply.",
    )
    @app_commands.describe(user="The member")
    @moderator_only
    async def clear_user(
        self, interaction: discord.Interaction, user: discord.Member | discord.User
    ) -> None:
        change = await self.limits.clear_user_limit(
            guild_id_of(interaction), user.id, actor_id=interaction.user.id
        )
        await reply(interaction, render_change(change))

    @app_commands.command(
        name="show", description="A member's limit and usage; without a member, every limit here."
    )
    @app_commands.describe(user="The member (leave out to list the server's limits)")
    @moderator_only
    async def show(
        self, interaction: discord.Interaction, user: discord.Member | discord.User | None = None
    ) -> None:
        if user is None:
            guild_id = guild_id_of(interaction)
            services = self.bot.services
            overview = await self.limits.overview(guild_id)
            gallery = await services.gallery.setting(guild_id)
            # Only the terms' count is shown; term_texts reads the in-memory cache.
            terms = await services.blocklist.term_texts(guild_id)
            channels = await services.channels.listed(guild_id)
            approval = await services.approvals.rule(guild_id)
            embeds = render_overview(
                overview,
                gallery,
                blocklist_terms=len(terms),
                channel_ids=[c.channel_id for c in channels],
                approval=approval,
            )
            await reply(interaction, embeds=embeds)
            return
        usage = await self.limits.member_usage(
            guild_id_of(interaction), user.id, member_role_ids(user)
        )
        await reply(interaction, embeds=[render_member_usage(usage)])

    @app_commands.command(
        name="default", description="Set the server-wide default: count clips per rolling period."
    )
    @app_commands.describe(
        count="Clips allowed per period; 0 blocks everyone without a role or own limit",
        period=PERIOD_HELP,
    )
    @app_commands.autocomplete(period=period_autocomplete)
    @moderator_only
    async def default(
        self,
        interaction: discord.Interaction,
        count: app_commands.Range[int, 0, MAX_COUNT],
        period: str,
    ) -> None:
        change = await self.limits.set_server_default(
            guild_id_of(interaction), count, period, actor_id=interaction.user.id
        )
        await reply(interaction, render_change(change))

    @app_commands.command(
        name="cleardefault",
        description="Remove the server default: the bot's built-in default applies.",
    )
    @moderator_only
    async def clear_default(self, interaction: discord.Interaction) -> None:
        change = await self.limits.clear_server_default(
            guild_id_of(interaction), actor_id=interaction.user.id
        )
        await reply(interaction, render_change(change))

    @app_commands.command(
        name="role",
        description="Set a limit for everyone with a role (members get their most generous).",
    )
    @app_commands.describe(
        role="The role",
        count="Clips per period; 0 gives none (another role's limit still applies)",
        period=PERIOD_HELP,
    )
    @app_commands.autocomplete(period=period_autocomplete)
    @moderator_only
    async def role(
        self,
        interaction: discord.Interaction,
        role: discord.Role,
        count: app_commands.Range[int, 0, MAX_COUNT],
        period: str,
    ) -> None:
        change = await self.limits.set_role_limit(
            guild_id_of(interaction), role.id, count, period, actor_id=interaction.user.id
        )
        await reply(interaction, render_change(change))

    @app_commands.command(name="clearrole", description="Remove a role's limit.")
    @app_commands.describe(role="The role")
    @moderator_only
    async def clear_role(self, interaction: discord.Interaction, role: discord.Role) -> None:
        change = await self.limits.clear_role_limit(
            guild_id_of(interaction), role.id, actor_id=interaction.user.id
        )
        await reply(interaction, render_change(change))

    @app_commands.command(
        name="usage", description="Recent generations, totals per member and the month's spend."
    )
    @app_commands.describe(
        period="Totals over this rolling period (default 1w), like 1d or 4w",
        user="Only this member",
    )
    @app_commands.autocomplete(period=period_autocomplete)
    @moderator_only
    async def usage(
        self,
        interaction: discord.Interaction,
        period: str | None = None,
        user: discord.Member | discord.User | None = None,
    ) -> None:
        report = await self.limits.usage_report(
            guild_id_of(interaction), period=period, user_id=user.id if user else None
        )
        # The text stays whole for screen readers; the chart, when it draws, comes with it.
        chart = await usage_chart_file(interaction, report, user)
        await reply(interaction, embeds=render_usage(report), file=chart)

    @app_commands.command(
        name="budget",
        description="Server caps: clips per UTC day and USD per month (0 removes a cap).",
    )
    @app_commands.describe(
        daily_clips="Clips the whole server may make per UTC day (0 removes the cap)",
        monthly_usd="Spending cap per UTC calendar month in USD (0 removes the cap)",
    )
    @moderator_only
    async def budget(
        self,
        interaction: discord.Interaction,
        daily_clips: app_commands.Range[int, 0, MAX_COUNT] | None = None,
        monthly_usd: app_commands.Range[float, 0.0, MAX_MONTHLY_USD] | None = None,
    ) -> None:
        if daily_clips is None and monthly_usd is None:
            status = await self.limits.budget_status(guild_id_of(interaction))
        else:
            status = await self.limits.set_budget(
                guild_id_of(interaction),
                actor_id=interaction.user.id,
                daily_clips=daily_clips,
                monthly_usd=monthly_usd,
            )
        await reply(interaction, embeds=[render_budget(status)])

    @app_commands.command(
        name="modrole", description="Let a role use /videolimit (leave out to remove it)."
    )
    @app_commands.describe(role="The moderator role (leave out: Manage Server only)")
    @server_manager_only
    async def moderator_role(
        self, interaction: discord.Interaction, role: discord.Role | None = None
    ) -> None:
        if role is not None and (role.is_default() or role.managed):
            # @everyone would make every member a moderator; a bot's own role is no person's.
            raise ValidationError(
                "Choose a role that you give to moderators, not @everyone or a bot's own role."
            )
        await self.limits.set_moderator_role(
            guild_id_of(interaction), role.id if role else None, actor_id=interaction.user.id
        )
        await reply(interaction, render_moderator_role(role.id if role else None))

    @app_commands.command(
        name="alerts",
        description="Where moderator alerts go: caps, key, credits (leave out: DM the owner).",
    )
    @app_commands.describe(
        channel="The channel for alerts (leave out: a DM to the owner, else the system channel)"
    )
    @moderator_only
    async def alerts(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        await self.limits.set_alert_channel(
            guild_id_of(interaction), channel.id if channel else None, actor_id=interaction.user.id
        )
        await reply(interaction, render_alert_channel(channel.id if channel else None))

    @app_commands.command(
        name="gallery",
        description="The gallery channel for the best clips (no options: no gallery).",
    )
    @app_commands.describe(
        channel="Where published clips go (leave out both options to turn the gallery off)",
        mode="manual: a Publish button on public clips; auto: every public clip",
    )
    @app_commands.choices(
        mode=[app_commands.Choice(name=m.value, value=m.value) for m in GalleryMode]
    )
    @moderator_only
    async def gallery(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | None = None,
        mode: str | None = None,
    ) -> None:
        gallery = await self.bot.services.gallery.choose(
            guild_id_of(interaction),
            channel.id if channel is not None else None,
            GalleryMode(mode) if mode is not None else None,
            actor_id=interaction.user.id,
        )
        await reply(interaction, render_gallery(gallery))

    @app_commands.command(
        name="history",
        description=(
            "The latest changes moderators made: limits, settings, blocklist, channels, approval."
        ),
    )
    @moderator_only
    async def history(self, interaction: discord.Interaction) -> None:
        entries = await self.limits.audit_log(guild_id_of(interaction), limit=50)
        await reply(interaction, embeds=render_history(entries))
