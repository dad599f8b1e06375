"""`/videolimit usage`'s chart as an attachment: members named, drawn off the event loop.

The service draws the picture but cannot know Discord names, so this names the top members
from what discord.py already holds (no API call: a name is not worth a request, or a wait).
A chart that fails to draw is logged and left out: the text answer still goes.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import discord

from cogs.limits.wording import usage_chart_alt, usage_chart_title
from services.limits import UsageReport
from services.usage_chart import member_fallback, render_usage_chart

log = logging.getLogger(__name__)

FILENAME = "usage.png"


def known_names(
    interaction: discord.Interaction, report: UsageReport, chosen: Any
) -> dict[int, str]:
    """Display names of the report's members that Discord sent or discord.py has cached.

    The bot has no member list (no privileged intent) and a name is not worth an API call:
    members it does not know are left out, and the chart names them by their id's end.
    """
    wanted = {t.user_id for t in report.series.top}
    if report.user_id is not None:
        wanted.add(report.user_id)
    guild = interaction.guild
    # Discord sent these two with the command: the moderator, and the `user` option's member.
    sent = {getattr(p, "id", None): p for p in (interaction.user, chosen) if p is not None}
    names: dict[int, str] = {}
    for user_id in wanted:
        person = sent.get(user_id) or getattr(guild, "get_member", lambda _: None)(user_id)
        if person is None:
            person = getattr(interaction.client, "get_user", lambda _: None)(user_id)
        name = getattr(person, "display_name", None)
        if isinstance(name, str) and name.strip():
            names[user_id] = name
    return names


async def usage_chart_file(
    interaction: discord.Interaction, report: UsageReport, chosen: Any = None
) -> discord.File | None:
    """The chart as ``usage.png`` with its alt text, or None (logged) when it cannot be drawn."""
    try:
        names = known_names(interaction, report, chosen)
        server = getattr(interaction.guild, "name", None)
        member = (
            names.get(report.user_id, member_fallback(report.user_id))
            if report.user_id is not None
            else None
        )
        title = usage_chart_title(report, server, member)
        png = await render_usage_chart(report.series, names, title)
        alt = usage_chart_alt(report, names)
    except Exception:
        log.exception(
            "usage chart could not be drawn guild=%s interaction=%s; sending the text alone",
            report.guild_id,
            interaction.id,
        )
        return None
    return discord.File(io.BytesIO(png), filename=FILENAME, description=alt)
