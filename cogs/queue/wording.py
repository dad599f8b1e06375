"""How `/videoqueue` reads: one page of jobs, each with where it stands, and the limit left.

Pure functions from the queue service's snapshot to embeds, so the wording is tested
without a connection. Times are Discord timestamps: clients count them live, so a listing
stays right as the seconds pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import discord

from cogs.video import render
from cogs.words import describe_period, discord_timestamp, limit_words, plural
from services.approval_models import HeldRequest
from services.job_queue import QueueEntry, QueueSnapshot
from services.jobs import BEHIND_OWN_JOB
from services.limits import MemberUsage
from services.models import Job, JobState, Progress, ProgressPhase, SegmindState

PAGE_SIZE = 5  # one Cancel per job in one row of five, Show in a second, paging in a third
PROMPT_SHOWN = 120
PRIVATE_PROMPT = "*private prompt*"
HELD_SHOWN = 5  # one Withdraw button each, in a row of their own
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
    """Where the job stands, in the progress message's words (``render.status_line``).

    A member reading `/videoqueue` next to their progress message sees one sentence for one
    state. Only a moderator's view of someone else's wait is put in the third person.
    """
    job = entry.job
    if job.state is JobState.DOWNLOADED:
        return "Made; being posted"  # the progress message is replaced by the clip here
    progress = _progress_of(entry)
    if scope is Scope.SERVER and progress.phase is ProgressPhase.QUEUED:
        return _their_wait(progress)
    return render.status_line(progress)


def _progress_of(entry: QueueEntry) -> Progress:
    """The progress the runner would report for this entry now (its phase and its place)."""
    job = entry.job
    if job.state is JobState.QUEUED and not entry.started:
        behind = entry.place == BEHIND_OWN_JOB
        position = None if behind else entry.place
        return Progress(job.id, ProgressPhase.QUEUED, position=position, behind_own_job=behind)
    if job.state in (JobState.QUEUED, JobState.SUBMITTING):
        # Taken from the line by the runner: its submit is under way.
        return Progress(job.id, ProgressPhase.SUBMITTING)
    if job.segmind_state == SegmindState.COMPLETED.value:
        return Progress(job.id, ProgressPhase.DOWNLOADING)
    if entry.progress is not None:
        return entry.progress
    processing = job.state is JobState.PROCESSING
    return Progress(
        job.id, ProgressPhase.PROCESSING if processing else ProgressPhase.SEGMIND_QUEUED
    )


def _their_wait(progress: Progress) -> str:
    """``render.status_line`` for a wait, said of the member to a moderator."""
    if progress.behind_own_job:
        return "Waiting for the member's other video to finish"
    if progress.position is None:
        return "Waiting for a free slot"
    if progress.position > 1:
        return f"Waiting in line: {progress.position - 1} ahead"
    return "Waiting in line: next"


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


def held_lines(held: Sequence[HeldRequest], scope: Scope) -> str:
    """Requests waiting for a moderator: not jobs yet, so nothing counts until approved."""
    lines = [f"**Waiting for a moderator's approval** ({len(held)})"]
    for request in held[:HELD_SHOWN]:
        prompt = (
            PRIVATE_PROMPT
            if scope is Scope.SERVER and request.private
            else render.shown_text(request.request.prompt, PROMPT_SHOWN)
        )
        who = f" · <@{request.user_id}>" if scope is Scope.SERVER else ""
        lines.append(
            f"Request #{request.id}{who} · {prompt} · expires "
            f"{discord_timestamp(request.expires_at)}"
        )
    if len(held) > HELD_SHOWN:
        lines.append(f"…and {plural(len(held) - HELD_SHOWN, 'more request')}")
    lines.append("Nothing is made or counted until a moderator approves.")
    return "\n".join(lines)


def render_page(
    snapshot: QueueSnapshot,
    page: Page,
    scope: Scope,
    usage: MemberUsage | None,
    held: Sequence[HeldRequest] = (),
) -> discord.Embed:
    """One page of the listing, its header on every page (requests held for approval too)."""
    total = len(snapshot.entries)
    title = "Your videos in progress" if scope is Scope.MINE else "Videos in progress here"
    header = [
        f"{plural(total, 'video')} queued or running." if total else "Nothing queued or running."
    ]
    if usage is not None:
        header.append(limit_line(usage))
    header.append(f"As of {discord_timestamp(snapshot.at, 'T')}")
    blocks = [entry_lines(entry, scope) for entry in page.entries]
    if held:
        header.append(held_lines(held, scope))
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
