"""How `/videoqueue` reads: one page of jobs, each with where it stands, and the limit left.

Pure functions from the queue service's snapshot to embeds, so the wording is tested
without a connection. Times are Discord timestamps: clients count them live, so a listing
stays right as the seconds pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import discord

from cogs.video import render
from cogs.words import describe_period, discord_timestamp, limit_words, plural
from services.job_queue import QueueEntry, QueueSnapshot
from services.jobs import BEHIND_OWN_JOB
from services.limits import MemberUsage
from services.models import Job, JobState, SegmindState

PAGE_SIZE = 5  # one Cancel per job in one row of five, Show in a second, paging in a third
PROMPT_SHOWN = 120
PRIVATE_PROMPT = "*private prompt*"
COLOUR = discord.Colour.blurple()


class Scope(str, Enum):
    """Whose jobs a listing shows (the values are the command's choices)."""

    MINE = "mine"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing: its entries, its number (1-based) and how many there are."""

    entries: tuple[QueueEntry, ...]
    number: int
    count: int


def page_of(snapshot: QueueSnapshot, number: int) -> Page:
    """Page ``number`` (clamped: jobs may have ended since the buttons were drawn)."""
    count = max(1, math.ceil(len(snapshot.entries) / PAGE_SIZE))
    number = max(1, min(number, count))
    start = (number - 1) * PAGE_SIZE
    return Page(snapshot.entries[start : start + PAGE_SIZE], number, count)


def where_it_stands(entry: QueueEntry, scope: Scope) -> str:
    """The bot's line while it waits, then Segmind's own state."""
    job = entry.job
    if job.state is JobState.QUEUED:
        if entry.started:
            return "Starting"
        if entry.place == BEHIND_OWN_JOB:
            whose = "your" if scope is Scope.MINE else "the member's"
            return f"Waiting for {whose} other video to finish"
        if entry.place is not None:
            ahead = entry.place - 1
            return f"In line, position {entry.place}" + (
                f" ({plural(ahead, 'video')} ahead)" if ahead else " (next)"
            )
        return "About to join the line"
    if job.state is JobState.SUBMITTING:
        return "Being sent to Segmind"
    if job.state is JobState.DOWNLOADED:
        return "Made; being posted"
    if job.segmind_state == SegmindState.COMPLETED.value:
        return "Made at Segmind; fetching the video"
    if job.state is JobState.PROCESSING:
        return "Generating at Segmind (`PROCESSING`)"
    return "Queued at Segmind (`QUEUED`)"


def timing(entry: QueueEntry) -> str:
    """Since when it waits or runs, and when it should finish (the progress bar's forecast)."""
    job = entry.job
    if entry.progress is not None:
        line = render.timing_line(job, entry.progress)
        if line:
            return line
    if job.submitted_at is not None:
        return f"Started {discord_timestamp(job.submitted_at)}"
    return f"Asked {discord_timestamp(job.created_at)}"


def prompt_of(entry: QueueEntry, scope: Scope) -> str:
    """The prompt, shortened; a private one is hidden from moderators until they press Show."""
    if entry.job.private and scope is Scope.SERVER:
        return PRIVATE_PROMPT
    shown = render.shown_text(entry.job.request.prompt, PROMPT_SHOWN)
    return shown + (" *(private)*" if entry.job.private else "")


def entry_lines(entry: QueueEntry, scope: Scope) -> str:
    job = entry.job
    head = f"**#{job.id}**"
    if scope is Scope.SERVER:
        head += f" · <@{job.user_id}>"
    head += f" · {prompt_of(entry, scope)}"
    return "\n".join([head, f"{where_it_stands(entry, scope)} · {timing(entry)}"])


def limit_line(usage: MemberUsage) -> str:
    """What the member has left of their limit, and when the next slot frees if none."""
    limit, window = usage.limit, usage.window
    if limit.blocked:
        return "**Your limit:** you are blocked from making videos here."
    text = (
        f"**Your limit:** {limit_words(limit.spec)}; {window.used} used in the last "
        f"{describe_period(limit.spec.period_seconds)}, {window.remaining} left"
    )
    if window.remaining == 0 and window.next_free_at is not None:
        text += f"; the next frees {discord_timestamp(window.next_free_at)}"
    return text


def render_page(
    snapshot: QueueSnapshot, page: Page, scope: Scope, usage: MemberUsage | None
) -> discord.Embed:
    """One page of the listing, its header on every page."""
    total = len(snapshot.entries)
    title = "Your videos in progress" if scope is Scope.MINE else "Videos in progress here"
    header = [
        f"{plural(total, 'video')} queued or running." if total else "Nothing queued or running."
    ]
    if usage is not None:
        header.append(limit_line(usage))
    header.append(f"As of {discord_timestamp(snapshot.at, 'T')}")
    blocks = [entry_lines(entry, scope) for entry in page.entries]
    embed = discord.Embed(
        title=title,
        description="\n\n".join(["\n".join(header), *blocks])[: render.EMBED_DESCRIPTION_MAX],
        colour=COLOUR,
    )
    if page.count > 1:
        embed.set_footer(text=f"Page {page.number} of {page.count}")
    return embed


def revealed_prompt(job: Job) -> str:
    """A private job's request, shown to the moderator who pressed Show."""
    negative = render.shown_text(job.request.negative_prompt, 300) or "(none)"
    return "\n".join(
        [
            f"**Job #{job.id}** by <@{job.user_id}>" + (" (private)" if job.private else ""),
            f"**Prompt:** {render.shown_text(job.request.prompt, 1500)}",
            f"**Negative prompt:** {negative}",
        ]
    )


NOT_MODERATOR_SCOPE = (
    "Only moderators can list every video on the server: you need Manage Server, "
    "Administrator, or this server's moderator role. `/videoqueue` alone lists yours."
)
NOT_MODERATOR_SHOW = "Only moderators can see a private prompt."
