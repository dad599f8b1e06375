"""How `/videolimit` reads: changes, limits, usage, budgets and history in moderators' words.

Pure functions from the limit service's dataclasses to text and embeds, so the wording
is tested without a connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import discord

from cogs.approval.wording import approval_history_words
from cogs.limits.blocklist_wording import blocklist_history_words
from cogs.limits.channels_wording import channel_history_words
from cogs.pages import COLOUR, paginate
from cogs.words import (
    describe_period,
    discord_timestamp,
    format_usd,
    limit_source_label,
    limit_words,
    plural,
)
from services.approval_models import ApprovalRule
from services.limits import (
    BudgetStatus,
    LimitChange,
    LimitsOverview,
    MemberUsage,
    RecentJob,
    UsageReport,
)
from services.models import (
    AuditChange,
    AuditEntry,
    AuditValue,
    Gallery,
    GalleryMode,
    JobState,
    LimitOverride,
)
from services.periods import LimitSpec, format_period
from services.usage_chart import day_words, member_fallback

PROMPT_PREVIEW = 80
ERROR_PREVIEW = 60


def _oneline(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return discord.utils.escape_markdown(flat.replace("`", "'"))


def _spec_text(spec: LimitSpec | None) -> str:
    return "unset" if spec is None else f"{limit_words(spec)} (`{spec}`)"


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
        # The operator's estimate: a clip is reserved at more when Segmind recently charged
        # more for its size, and counted at Segmind's own figure once it reports one.
        lines.append(
            f"**Price per clip:** about {format_usd(budget.clip_cost_usd)} (the estimate; "
            "spend counts what Segmind reports)"
        )
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
        f"**Limit:** {_spec_text(limit.spec)}, from {limit_source_label(limit)}",
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


# Channels named in the overview's header before "and N more": the header repeats on every
# page, so it stays a few lines however many channels a server lists.
OVERVIEW_CHANNELS = 3


def _blocklist_line(term_count: int) -> str:
    # A count only: the overview may be screenshotted, and the terms are the server's secret.
    if term_count == 0:
        return "**Blocklist:** none"
    return f"**Blocklist:** {plural(term_count, 'term')} (see `/videolimit blocklist show`)"


def _channels_line(channel_ids: Sequence[int]) -> str:
    if not channel_ids:
        return "**Where /video works:** everywhere"
    mentions = [f"<#{c}>" for c in channel_ids]
    if len(mentions) > OVERVIEW_CHANNELS:
        more = len(mentions) - OVERVIEW_CHANNELS
        where = f"{', '.join(mentions[:OVERVIEW_CHANNELS])} and {more} more"
        return f"**Where /video works:** {where} (see `/videolimit channels show`)"
    where = mentions[0] if len(mentions) == 1 else f"{', '.join(mentions[:-1])} and {mentions[-1]}"
    return f"**Where /video works:** {where}, and their threads"


def _approval_line(rule: ApprovalRule | None) -> str:
    if rule is None:
        return "**Approval:** off"
    who = "every member" if rule.role_id is None else f"members without <@&{rule.role_id}>"
    return (
        f"**Approval:** required for {who}, requests wait up to "
        f"{format_period(rule.expiry_seconds)}"
    )


def render_overview(
    overview: LimitsOverview,
    gallery: Gallery | None,
    *,
    blocklist_terms: int,
    channel_ids: Sequence[int],
    approval: ApprovalRule | None,
) -> list[discord.Embed]:
    """`/videolimit show`: default, caps, gallery, blocklist, channels, approval, every limit."""
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
        "**Gallery:** "
        + (f"<#{gallery.channel_id}>, {gallery.mode.value}" if gallery is not None else "off"),
        _blocklist_line(blocklist_terms),
        _channels_line(channel_ids),
        _approval_line(approval),
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


CHART_ALT_MAX = 1024  # Discord's limit on an attachment's description (its alt text)


def usage_chart_title(report: UsageReport, server: str | None, member: str | None) -> str:
    """The chart's heading: `Video usage on Cosy Corner, last week (Alice)`."""
    where = f" on {server}" if server else ""
    who = f" ({member})" if member else ""
    return f"Video usage{where}, last {describe_period(report.period_seconds)}{who}"


def usage_chart_alt(report: UsageReport, names: Mapping[int, str]) -> str:
    """The chart in words, as its alt text: screen readers read this instead of the bars."""
    series = report.series
    first, last = series.days[0].day_start, series.days[-1].day_start
    span = day_words(first) if first == last else f"{day_words(first)} to {day_words(last)}"
    whose = ""
    if report.user_id is not None:
        whose = f" for {names.get(report.user_id, member_fallback(report.user_id))}"
    parts = [
        f"Bar charts of clips and spend per UTC day{whose}, {span}: "
        f"{plural(series.total_clips, 'clip')}, {format_usd(series.total_cost_usd)}."
    ]
    if (busiest := series.busiest) is not None:
        parts.append(
            f"Busiest day {day_words(busiest.day_start)}: {plural(busiest.clips, 'clip')}."
        )
    if series.top:
        leaders = "; ".join(
            f"{names.get(t.user_id, member_fallback(t.user_id))} {plural(t.clips, 'clip')}"
            f" ({format_usd(t.cost_usd)})"
            for t in series.top
        )
        parts.append(f"Top members: {leaders}.")
    text = " ".join(parts)
    return text if len(text) <= CHART_ALT_MAX else text[: CHART_ALT_MAX - 1] + "…"


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
    return limit_words(spec)


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


def _gallery_words(stored: str) -> str:
    """`<#5>, auto` from the stored `5 auto`; `off` from `off`."""
    channel, _, mode = stored.strip().partition(" ")
    if not channel.isdigit():
        return "off"
    return f"<#{channel}>, {_oneline(mode, 20)}"


def _gallery_change(detail: str) -> str:
    """`set the gallery to <#5> (auto) (was: off)` from the stored `5 auto; was off`.

    Entries from before the gallery's earlier setting was stored have no `was`.
    """
    after, _, before = detail.partition("; was ")
    was = f" (was: {_gallery_words(before)})" if before else ""
    channel, _, mode = after.partition(" ")
    if not channel.isdigit():
        return f"turned the gallery off{was}"
    return f"set the gallery to <#{channel}> ({_oneline(mode, 20)}){was}"


def _history_line(entry: AuditEntry) -> str:
    changes = entry.changes
    channel_words = channel_history_words(entry)
    blocklist_words = blocklist_history_words(entry)
    approval_words = approval_history_words(entry)
    if channel_words is not None:
        what = channel_words
    elif blocklist_words is not None:
        what = blocklist_words
    elif approval_words is not None:
        what = approval_words
    elif entry.action == "set_gallery":
        what = _gallery_change(entry.detail)
    elif changes:
        real = [c for c in changes if c.before != c.after] or list(changes[:1])
        what = " and ".join(_change_words(c, entry.target) for c in real)
    else:  # a row this version cannot read: show it as stored
        what = (
            f"{entry.action.replace('_', ' ')} {_audit_target(entry.target)}: "
            f"{_oneline(entry.detail, 200)}"
        )
    return f"{discord_timestamp(entry.at)} <@{entry.actor_id}> {what}"


# The history holds every change moderators make here: limits and settings, the blocklist,
# the channel allow-list and approval, so the title names no one kind.
HISTORY_TITLE = "Changes moderators made on this server"


def render_history(entries: Sequence[AuditEntry]) -> list[discord.Embed]:
    """`/videolimit history`: one line in words per change, newest first."""
    lines = [_history_line(e) for e in entries] or ["No changes recorded yet."]
    return paginate(HISTORY_TITLE, [], lines)


def render_moderator_role(role_id: int | None) -> str:
    """`/videolimit modrole`: who may now use the command, and Discord's own visibility step."""
    if role_id is None:
        return "No moderator role: only Manage Server and Administrator can use `/videolimit`."
    return (
        f"Members with <@&{role_id}> can now use `/videolimit`. Discord still hides "
        "it from members without Manage Server: allow the role for this command in "
        "Server Settings > Integrations as well."
    )


def render_alert_channel(channel_id: int | None) -> str:
    """`/videolimit alerts`: where moderator alerts go from now on."""
    if channel_id is None:
        return (
            "Moderator alerts now go to the owner by DM, or to the system channel "
            "if DMs are closed."
        )
    return (
        "Moderator alerts (reached caps, a rejected Segmind key, exhausted credits) "
        f"now go to <#{channel_id}>."
    )


def render_gallery(gallery: Gallery | None) -> str:
    """`/videolimit gallery`: where published clips now go, and how they get there."""
    if gallery is None:
        return "The gallery is off: no clip is published, and result cards carry no Publish."
    if gallery.mode is GalleryMode.AUTO:
        how = "every public clip is published there once it is delivered"
    else:
        how = (
            "public clips (and private ones once shared) carry a Publish button for the "
            "person who asked for them and for moderators"
        )
    return f"The gallery is now <#{gallery.channel_id}>, in {gallery.mode.value} mode: {how}."
