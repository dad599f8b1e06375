"""`/videolimit`: moderators set who may make how many clips, and see usage and spend.

Hidden from members by default permissions (Manage Server) and checked again at run
time, because server admins can change who sees a command. Every reply is ephemeral
and pings nobody. The rules live in services.limits; this module only renders.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.permissions import is_moderator
from cogs.replies import reply as safe_reply
from services.errors import BotError, ValidationError
from services.limits import (
    MAX_COUNT,
    MAX_MONTHLY_USD,
    BudgetStatus,
    LimitChange,
    LimitService,
    LimitsOverview,
    MemberUsage,
    RecentJob,
    UsageReport,
    discord_timestamp,
    format_usd,
    plural,
)
from services.models import JobState
from services.periods import LimitSpec, describe_period
from services.storage import AuditEntry, LimitOverride
from services.storage.limits import AuditChange, AuditValue

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
PAGE_CHARS = 3500  # below the 4096 of an embed description, with room for a header
PAGE_LINES = 20
PROMPT_PREVIEW = 80
ERROR_PREVIEW = 60
PERIOD_HELP = "Rolling window: a number then m, h, d or w, like 30m, 6h, 1d or 1w"
PERIOD_SUGGESTIONS = ("30m", "1h", "6h", "12h", "1d", "3d", "1w", "4w")
COLOUR = discord.Colour.blurple()


class NotModerator(app_commands.CheckFailure, BotError):
    """The member may not use /videolimit; ``user_message`` says who may."""

    user_message = (
        "Only moderators can use `/videolimit`: you need Manage Server, Administrator, "
        "or this server's moderator role. Nothing was changed."
    )

    def __init__(self, user_message: str | None = None) -> None:
        BotError.__init__(self, user_message)


def limit_service(client: Any) -> LimitService:
    """The bot carries its services as ``bot.services`` (see services/app.py)."""
    return client.services.limits


def _member_role_ids(user: Any) -> list[int]:
    return [role.id for role in getattr(user, "roles", ())]


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


# --- rendering (pure: objects in, text and embeds out) ------------------------------


def _oneline(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return discord.utils.escape_markdown(flat.replace("`", "'"))


def _spec_text(spec: Any) -> str:
    return "unset" if spec is None else f"{spec.describe()} (`{spec}`)"


def paginate(title: str, header: Sequence[str], lines: Sequence[str]) -> list[discord.Embed]:
    """Embeds of at most PAGE_LINES lines / PAGE_CHARS characters, the header on each page."""
    head = "\n".join(header)
    chunks: list[list[str]] = [[]]
    size = len(head)
    for line in lines:
        line = line if len(line) <= 1000 else line[:999] + "…"
        chunk = chunks[-1]
        if chunk and (len(chunk) >= PAGE_LINES or size + len(line) + 1 > PAGE_CHARS):
            chunks.append([])
            chunk, size = chunks[-1], len(head)
        chunk.append(line)
        size += len(line) + 1
    pages = []
    for number, chunk in enumerate(chunks, 1):
        body = "\n".join(part for part in (head, "\n".join(chunk)) if part)
        embed = discord.Embed(
            title=title[:256], description=body or "Nothing to show.", colour=COLOUR
        )
        if len(chunks) > 1:
            embed.set_footer(text=f"Page {number} of {len(chunks)}")
        pages.append(embed)
    return pages


def _unchanged(change: LimitChange, who: str) -> str:
    if change.after is not None:
        return f"{who} is already {_spec_text(change.after)}; nothing changed."
    return {
        "user": f"<@{change.target_id}> had no own limit; nothing changed.",
        "role": f"<@&{change.target_id}> had no limit; nothing changed.",
        "server": (
            "This server had no default of its own (the bot's built-in default applies); "
            "nothing changed."
        ),
    }[change.target]


def render_change(change: LimitChange) -> str:
    """`<@3>'s own limit is now 2 clips per 6 hours (`2/6h`); before: not set.`"""
    if change.target == "user":
        who = f"<@{change.target_id}>'s own limit"
    elif change.target == "role":
        who = f"The limit for <@&{change.target_id}>"
    else:
        who = "The server default"
    if not change.changed:
        return _unchanged(change, who)
    before = _spec_text(change.before).replace("unset", "not set")
    if change.after is None:
        after = {
            "user": "removed: their role limits or the server default apply again",
            "role": "removed",
            "server": "removed: the bot's built-in default applies again",
        }[change.target]
        return f"{who} is {after}; before: {before}."
    if change.after.count == 0 and change.target == "user":
        return (
            f"<@{change.target_id}> is now blocked from making videos here "
            f"(`{change.after}`); before: {before}."
        )
    text = f"{who} is now {_spec_text(change.after)}; before: {before}."
    if change.after.count == 0 and change.target == "role":
        # Members get the most generous of their roles, so a 0 here is not a block.
        text += (
            " Members who also have a role with a limit get that role's limit; "
            "to block one member, use `/videolimit set` with count 0."
        )
    return text


def _budget_lines(budget: BudgetStatus) -> list[str]:
    cap = budget.daily_clip_cap
    today = f"**Today (UTC):** {plural(budget.clips_today, 'clip')}" + (
        f" of a daily cap of {cap}, resets {discord_timestamp(budget.day_resets_at)}"
        if cap is not None
        else " (no daily cap)"
    )
    month_cap = budget.monthly_budget_usd
    month = (
        f"**This month (UTC):** {format_usd(budget.spent_this_month_usd)} spent on "
        f"{plural(budget.clips_this_month, 'clip')}"
        + (
            f" of a {format_usd(month_cap)} budget, "
            f"resets {discord_timestamp(budget.month_resets_at)}"
            if month_cap is not None
            else " (no monthly budget)"
        )
    )
    lines = [today, month]
    if budget.clip_cost_usd is not None:
        lines.append(f"**Price per clip:** {format_usd(budget.clip_cost_usd)}")
    if budget.clip_cost_usd == 0 and month_cap is not None:
        lines.append(
            "**Note:** the bot's operator set the price per clip (`CLIP_COST_USD`) to $0, "
            "so the monthly budget never fills; use the daily clip cap instead."
        )
    return lines


def render_budget(budget: BudgetStatus) -> discord.Embed:
    return discord.Embed(
        title="Video budget", description="\n".join(_budget_lines(budget)), colour=COLOUR
    )


def render_member_usage(usage: MemberUsage) -> discord.Embed:
    """`/videolimit show user`: the limit, where it comes from, usage and the next free slot."""
    limit, window = usage.limit, usage.window
    lines = [
        f"**Member:** <@{usage.user_id}>",
        f"**Limit:** {_spec_text(limit.spec)}, from {limit.source_label()}",
    ]
    if limit.blocked:
        lines.append("**Status:** blocked from making videos here")
    else:
        lines.append(
            f"**Used:** {window.used} of {limit.spec.count} in the last "
            f"{describe_period(limit.spec.period_seconds)}; {window.remaining} left"
        )
        if window.remaining > 0:
            lines.append("**Next slot:** available now")
        elif window.next_free_at is not None:
            lines.append(f"**Next slot frees:** {discord_timestamp(window.next_free_at)}")
        if window.oldest_frees_at is not None and window.remaining > 0:
            lines.append(
                f"**Oldest use stops counting:** {discord_timestamp(window.oldest_frees_at)}"
            )
    if usage.override is not None:
        lines.append(
            f"**Override set by** <@{usage.override.set_by}> "
            f"{discord_timestamp(usage.override.set_at)}"
        )
    return discord.Embed(title="Video limit", description="\n".join(lines), colour=COLOUR)


def _override_line(mention: str, override: LimitOverride) -> str:
    return (
        f"{mention}: {_spec_text(override.spec)}, set by <@{override.set_by}> "
        f"{discord_timestamp(override.set_at)}"
    )


def render_overview(overview: LimitsOverview) -> list[discord.Embed]:
    """`/videolimit show`: server default, caps, every override and role limit, paginated."""
    settings = overview.settings
    default = overview.server_default
    header = [
        f"**Server default:** {_spec_text(default.spec)}"
        + (" (the bot's built-in default)" if default.source == "operator" else ""),
        *_budget_lines(overview.budget),
        "**Moderator role:** "
        + (
            f"<@&{settings.moderator_role_id}>"
            if settings.moderator_role_id
            else "none (Manage Server only)"
        ),
        "**Alerts go to:** "
        + (
            f"<#{settings.alert_channel_id}>"
            if settings.alert_channel_id
            else "a DM to the owner, else the system channel"
        ),
    ]
    lines = [f"__Role limits ({len(overview.role_limits)})__"]
    lines += [_override_line(f"<@&{r.target_id}>", r) for r in overview.role_limits] or ["none"]
    lines.append(f"__Member overrides ({len(overview.user_limits)})__")
    lines += [_override_line(f"<@{u.target_id}>", u) for u in overview.user_limits] or ["none"]
    return paginate("Video limits on this server", header, lines)


# A job's state in a moderator's words; what each means for the limit is in services.jobs.
STATE_WORDS = {
    JobState.QUEUED: "waiting",
    JobState.SUBMITTING: "in progress",
    JobState.SUBMITTED: "in progress",
    JobState.PROCESSING: "in progress",
    JobState.DOWNLOADED: "in progress",
    JobState.DELIVERED: "posted",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
    JobState.EXPIRED: "expired",
    JobState.UNKNOWN: "outcome unknown (counted)",
}


def _job_line(job: RecentJob) -> str:
    """`` `#7` <t:…:R> <@3> **failed** (The video service is busy…): a fox at dawn``"""
    state = f"**{STATE_WORDS.get(job.state, job.state.value)}**"
    if job.state is JobState.FAILED and job.error:
        state += f" ({_oneline(job.error, ERROR_PREVIEW)})"
    return (
        f"`#{job.id}` {discord_timestamp(job.created_at)} <@{job.user_id}> {state}: "
        f"{_oneline(job.prompt, PROMPT_PREVIEW)}"
    )


def render_usage(report: UsageReport) -> list[discord.Embed]:
    """`/videolimit usage`: spend, totals per member for the period, the latest jobs."""
    period = describe_period(report.period_seconds)
    who = f" for <@{report.user_id}>" if report.user_id is not None else ""
    total = f"{plural(report.total_clips, 'clip')}, {format_usd(report.total_cost_usd)}"
    header = [f"**Last {period}{who}:** {total}", *_budget_lines(report.budget)]
    lines = [f"__Totals per member, last {period}__"]
    lines += [
        f"<@{t.user_id}>: {plural(t.clips, 'clip')}, {format_usd(t.cost_usd)}"
        for t in report.totals
    ] or ["none"]
    lines.append(f"__Latest {plural(len(report.recent), 'generation')}__")
    lines += [_job_line(job) for job in report.recent] or ["none"]
    return paginate("Video usage on this server", header, lines)


def _audit_target(target: str) -> str:
    kind, _, ident = target.partition(":")
    if kind == "user" and ident.isdigit():
        return f"<@{ident}>"
    if kind == "role" and ident.isdigit():
        return f"<@&{ident}>"
    return target


def _limit_words(spec: AuditValue, *, blocks: bool) -> str:
    """`3 clips per day`; 0 is `blocked` for a member, a count for a role or the default."""
    if not isinstance(spec, LimitSpec):
        return "not set"
    if spec.count == 0 and not blocks:
        return f"0 clips per {describe_period(spec.period_seconds)}"
    return spec.describe()


def _setting_noun(change: AuditChange, target: str) -> str:
    """What a change is about: `<@3>'s limit`, `the limit for <@&4>`, `the monthly budget`."""
    if change.setting == "limit":
        mention = _audit_target(target)
        return f"{mention}'s limit" if target.startswith("user:") else f"the limit for {mention}"
    return {
        "default": "the server default",
        "daily_clip_cap": "the daily clip cap",
        "monthly_budget_usd": "the monthly budget",
        "moderator_role_id": "the moderator role",
        "alert_channel_id": "the alert channel",
    }.get(change.setting, change.setting.replace("_", " "))


def _setting_words(setting: str, value: AuditValue, target: str) -> str:
    if setting in ("limit", "default"):
        return _limit_words(value, blocks=target.startswith("user:"))
    if value is None:
        return "not set"
    if setting == "monthly_budget_usd" and isinstance(value, int | float):
        return format_usd(value)
    if setting == "moderator_role_id":
        return f"<@&{value}>"
    if setting == "alert_channel_id":
        return f"<#{value}>"
    return str(value)


def _change_words(change: AuditChange, target: str) -> str:
    """`set <@3>'s limit to 3 clips per day (was: not set)`, `set the daily clip cap to 20`."""
    noun = _setting_noun(change, target)
    before = _setting_words(change.setting, change.before, target)
    after = _setting_words(change.setting, change.after, target)
    was = f" (was: {before})"
    if change.before == change.after:  # rows from before no-ops were skipped
        return f"left {noun} as it was ({before}); nothing changed"
    if change.after is None:
        text = f"removed {noun}{was}"
        if change.setting == "default":
            text += "; the bot's built-in default applies"
        return text
    blocks = isinstance(change.after, LimitSpec) and change.after.count == 0
    if blocks and target.startswith("user:"):
        return f"blocked {_audit_target(target)} from making videos{was}"
    if change.setting in ("limit", "default") or change.before is not None:
        return f"set {noun} to {after}{was}"
    return f"set {noun} to {after}"


def _history_line(entry: AuditEntry) -> str:
    changes = entry.changes()
    if changes:
        real = [c for c in changes if c.before != c.after] or list(changes[:1])
        what = " and ".join(_change_words(c, entry.target) for c in real)
    else:  # a row this version cannot read: show it as stored
        what = (
            f"{entry.action.replace('_', ' ')} {_audit_target(entry.target)}: "
            f"{_oneline(entry.detail, 200)}"
        )
    return f"{discord_timestamp(entry.at)} <@{entry.actor_id}> {what}"


def render_history(entries: Sequence[AuditEntry]) -> list[discord.Embed]:
    """`/videolimit history`: one line in words per change, newest first."""
    lines = [_history_line(e) for e in entries] or ["No changes recorded yet."]
    return paginate("Limit changes on this server", [], lines)


class Pages(discord.ui.View):
    """Previous/next buttons over embeds, for the moderator who asked only."""

    def __init__(
        self, pages: Sequence[discord.Embed], owner_id: int, *, timeout: float = 600
    ) -> None:
        super().__init__(timeout=timeout)
        self.pages = list(pages)
        self.owner_id = owner_id
        # The command's interaction: its token edits the reply, within its 15 minutes.
        self.message_of: discord.Interaction | None = None
        self.index = 0
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.previous.disabled = self.index == 0
        self.next.disabled = self.index >= len(self.pages) - 1

    async def on_timeout(self) -> None:
        # A click after the timeout would go unanswered: show the buttons as disabled instead.
        if self.message_of is not None:
            with contextlib.suppress(discord.HTTPException):
                await self.message_of.edit_original_response(view=None)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            "These buttons belong to the moderator who asked.", ephemeral=True
        )
        return False

    async def _show(self, interaction: discord.Interaction, index: int) -> None:
        self.index = max(0, min(index, len(self.pages) - 1))
        self._sync_buttons()
        await interaction.response.edit_message(embed=self.pages[self.index], view=self)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._show(interaction, self.index - 1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._show(interaction, self.index + 1)


async def reply(
    interaction: discord.Interaction,
    content: str | None = None,
    *,
    embeds: Sequence[discord.Embed] = (),
) -> None:
    """Ephemeral, no pings, through the bot's one safe send; several embeds become pages."""
    kwargs: dict[str, Any] = {"allowed_mentions": NO_PINGS}
    if embeds:
        kwargs["embed"] = embeds[0]
    if len(embeds) > 1:
        kwargs["view"] = pages = Pages(embeds, interaction.user.id)
        pages.message_of = interaction
    await safe_reply(interaction, content[:2000] if content else None, ephemeral=True, **kwargs)


async def period_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    typed = current.strip().lower()
    options = [p for p in PERIOD_SUGGESTIONS if p.startswith(typed)] or list(PERIOD_SUGGESTIONS)
    if typed and typed not in options:
        options.insert(0, typed[:20])
    return [app_commands.Choice(name=p, value=p) for p in options[:25]]


# --- the command group -------------------------------------------------------------------


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class LimitsCog(
    commands.GroupCog,
    group_name="videolimit",
    group_description="Moderators: who may make how many videos, and what it costs.",
):
    """Moderators: who may make how many videos, and what it costs."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @property
    def limits(self) -> LimitService:
        return limit_service(self.bot)

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
            interaction.guild_id, user.id, count, period, actor_id=interaction.user.id
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
            interaction.guild_id, user.id, actor_id=interaction.user.id
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
            overview = await self.limits.overview(interaction.guild_id)
            await reply(interaction, embeds=render_overview(overview))
            return
        usage = await self.limits.member_usage(
            interaction.guild_id, user.id, _member_role_ids(user)
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
            interaction.guild_id, count, period, actor_id=interaction.user.id
        )
        await reply(interaction, render_change(change))

    @app_commands.command(
        name="cleardefault",
        description="Remove the server default: the bot's built-in default applies.",
    )
    @moderator_only
    async def clear_default(self, interaction: discord.Interaction) -> None:
        change = await self.limits.clear_server_default(
            interaction.guild_id, actor_id=interaction.user.id
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
            interaction.guild_id, role.id, count, period, actor_id=interaction.user.id
        )
        await reply(interaction, render_change(change))

    @app_commands.command(name="clearrole", description="Remove a role's limit.")
    @app_commands.describe(role="The role")
    @moderator_only
    async def clear_role(self, interaction: discord.Interaction, role: discord.Role) -> None:
        change = await self.limits.clear_role_limit(
            interaction.guild_id, role.id, actor_id=interaction.user.id
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
            interaction.guild_id, period=period, user_id=user.id if user else None
        )
        await reply(interaction, embeds=render_usage(report))

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
            status = await self.limits.budget_status(interaction.guild_id)
        else:
            status = await self.limits.set_budget(
                interaction.guild_id,
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
            interaction.guild_id, role.id if role else None, actor_id=interaction.user.id
        )
        text = (
            f"Members with <@&{role.id}> can now use `/videolimit`. Discord still hides "
            "it from members without Manage Server: allow the role for this command in "
            "Server Settings > Integrations as well."
            if role
            else "No moderator role: only Manage Server and Administrator can use `/videolimit`."
        )
        await reply(interaction, text)

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
            interaction.guild_id, channel.id if channel else None, actor_id=interaction.user.id
        )
        text = (
            "Moderator alerts (reached caps, a rejected Segmind key, exhausted credits) "
            f"now go to <#{channel.id}>."
            if channel
            else "Moderator alerts now go to the owner by DM, or to the system channel if DMs are closed."
        )
        await reply(interaction, text)

    @app_commands.command(
        name="history", description="The latest changes to limits and budgets: who, what, when."
    )
    @moderator_only
    async def history(self, interaction: discord.Interaction) -> None:
        entries = await self.limits.audit_log(interaction.guild_id, limit=50)
        await reply(interaction, embeds=render_history(entries))


# --- telling moderators --------------------------------------------------------------------


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(LimitsCog(bot))
