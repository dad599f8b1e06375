"""How jobs look in Discord: progress, result and failure messages.

Pure functions from services' dataclasses to discord objects, so the wording and
Discord's size limits are tested without a connection.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import discord

from cogs.words import CONTENT_MAX, discord_timestamp, format_usd
from services.models import Job, JobState, Progress, ProgressPhase, VideoRequest
from services.runner_config import SEGMIND_RETENTION_SECONDS

EMBED_DESCRIPTION_MAX = 4096
FIELD_VALUE_MAX = 1024
PROMPT_SHOWN_IN_PROGRESS = 300
PROMPT_SHOWN_IN_RESULT = 1500
BAR_CELLS = 10
FILENAME_WORDS_MAX = 40  # the prompt's part of a clip's file name
# The expected end is shown to this step: a smaller shift is not worth an edit (Discord's
# clients render the relative time live, so the text need not change as time passes).
END_STEP = 15.0

COLOUR_WORKING = discord.Colour.blurple()
COLOUR_DONE = discord.Colour.green()
COLOUR_FAILED = discord.Colour.red()
COLOUR_QUIET = discord.Colour.light_grey()


# Every progress edit shows its job's prompt again: escaping it each time cost CPU per edit.
@functools.lru_cache(maxsize=1024)
def shown_text(text: str, limit: int) -> str:
    """User text made literal (no markdown, no mention syntax) and cut to ``limit``.

    Escaping can lengthen the text, so cutting happens on the original characters
    until the escaped form fits; an escape is never split in half.
    """
    text = " ".join(text.split()) if "\n" not in text else text.strip()
    escaped = _escape(text)
    if len(escaped) <= limit:
        return escaped
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if len(_escape(text[:middle])) + 1 <= limit:
            low = middle
        else:
            high = middle - 1
    return _escape(text[:low]).rstrip() + "…"


def _escape(text: str) -> str:
    text = discord.utils.escape_markdown(text)
    # A zero-width space after "@" keeps @everyone, @here and <@id> as plain text,
    # even in places (embeds, old clients) where allowed_mentions does not apply.
    return discord.utils.escape_mentions(text)


def bar_cells(fraction: float) -> int:
    return int(min(1.0, max(0.0, fraction)) * BAR_CELLS)


def progress_bar(fraction: float) -> str:
    # The figure moves with the cells, so the bar changes (and is edited) only per cell.
    filled = bar_cells(fraction)
    return "▰" * filled + "▱" * (BAR_CELLS - filled) + f" {filled * 100 // BAR_CELLS}%"


ALMOST_DONE, LATE = "almost done", "taking longer than usual"


def outlook(progress: Progress) -> str | None:
    """Which end the message names, by the same forecast as the bar (it learns from clips).

    "Almost done" only when 4 in 5 such clips would be done within half a minute, so it
    does not stand for minutes on a slow one; past nearly every recent clip, it says so.
    Otherwise None: the expected end is shown as a time.
    """
    left = progress.expected - progress.elapsed
    likely_left = left if progress.likely_left is None else progress.likely_left
    if progress.late or left <= 0:
        return LATE
    if likely_left < 30:
        return ALMOST_DONE
    return None


def timing_line(job: Job, progress: Progress) -> str | None:
    """When it started and when it should end, as times Discord's clients count live.

    Showing times rather than durations ("Started 2 minutes ago") keeps the text the same
    as the seconds pass, so the message is edited only when the forecast moves.
    """
    if job.submitted_at is None or progress.elapsed <= 0:
        return None  # not at Segmind yet: nothing has started
    said = outlook(progress) if progress.expected > 0 else None
    line = f"Started {discord_timestamp(job.submitted_at)}"
    if said is None and progress.expected > 0:
        said = f"expected to finish {discord_timestamp(job.submitted_at + progress.expected)}"
    return line + (f", {said}" if said else "")


def status_line(progress: Progress) -> str:
    if progress.phase is ProgressPhase.QUEUED:
        if progress.behind_own_job:
            return "Waiting for your other video to finish"
        if progress.position is None:
            return "Waiting for a free slot"
        if progress.position > 1:
            return f"Waiting in line: {progress.position - 1} ahead of you"
        return "Waiting in line: you are next"
    return {
        ProgressPhase.SUBMITTING: "Sending to Segmind…",
        ProgressPhase.SEGMIND_QUEUED: "Queued at Segmind",
        ProgressPhase.PROCESSING: "Generating",
        ProgressPhase.DOWNLOADING: "Fetching the video",
    }[progress.phase]


def progress_key(progress: Progress) -> tuple[object, ...]:
    """What the progress message shows; an edit is needed only when this changes."""
    return (
        progress.phase,
        progress.position,
        progress.behind_own_job,
        bar_cells(progress.fraction),
        outlook(progress) or round(progress.expected / END_STEP),
    )


def footer(job: Job, spend: str | None) -> str:
    """Job number, seed, and (for the requester) what this clip spends and what is left."""
    parts = [f"Job #{job.id}", f"seed {job.request.seed}"]
    if spend:
        parts.append(spend)
    return " · ".join(parts)


def progress_embed(job: Job, progress: Progress, spend: str | None = None) -> discord.Embed:
    embed = discord.Embed(
        title="Making your video",
        description=shown_text(job.request.prompt, PROMPT_SHOWN_IN_PROGRESS),
        colour=COLOUR_WORKING,
    )
    lines = [f"**{status_line(progress)}**"]
    if progress.phase is not ProgressPhase.QUEUED:
        lines.append(progress_bar(progress.fraction))
    timing = timing_line(job, progress)
    if timing:
        lines.append(timing)
    embed.add_field(name="Progress", value="\n".join(lines), inline=False)
    embed.add_field(name="Requested by", value=requester(job))
    embed.set_footer(text=footer(job, spend))
    return embed


def requester(job: Job) -> str:
    """Whose video it is, for everyone in the channel; a mention in an embed never pings."""
    return f"<@{job.user_id}>"


def parameter_fields(embed: discord.Embed, request: VideoRequest) -> None:
    embed.add_field(name="Seed", value=f"`{request.seed}`")
    embed.add_field(name="Frames", value=f"{request.input_frames} at {request.frame_rate} fps")
    embed.add_field(name="Steps", value=str(request.steps))
    embed.add_field(name="Guidance", value=f"{request.guidance_scale:g}")
    embed.add_field(
        name="Negative prompt",
        value=shown_text(request.negative_prompt, 300) or "(none)",
        inline=False,
    )


def result_embed(job: Job, spend: str | None = None) -> discord.Embed:
    embed = discord.Embed(
        title="Your video is ready",
        description=shown_text(job.request.prompt, PROMPT_SHOWN_IN_RESULT),
        colour=COLOUR_DONE,
    )
    parameter_fields(embed, job.request)
    embed.set_footer(text=footer(job, spend))
    return embed


def result_content(job: Job, *, link: str | None = None) -> str:
    """The line above the clip: pings the requester (the only allowed mention)."""
    text = f"<@{job.user_id}>, your video is ready."
    if link:
        # Segmind keeps results one hour from the job's start; a relative time says exactly.
        expires = (
            discord_timestamp(job.submitted_at + SEGMIND_RETENTION_SECONDS)
            if job.submitted_at
            else "within an hour"
        )
        text += (
            "\nIt is too large to attach here, so here is a link instead. "
            f"**The link expires {expires}**: {link}"
        )
    return text[:CONTENT_MAX]


def failure_embed(job: Job, reason: str) -> discord.Embed:
    cancelled = job.state is JobState.CANCELLED
    embed = discord.Embed(
        title="Video cancelled" if cancelled else "This video could not be made",
        description=shown_text(job.request.prompt, PROMPT_SHOWN_IN_PROGRESS),
        colour=COLOUR_QUIET if cancelled else COLOUR_FAILED,
    )
    embed.add_field(name="Why", value=reason[:FIELD_VALUE_MAX], inline=False)
    if cancelled_by_moderator(job):
        embed.add_field(name="Cancelled by", value=f"<@{job.cancelled_by}>", inline=False)
    embed.add_field(name="Cost", value=cost_note(job), inline=False)
    embed.add_field(name="Requested by", value=requester(job))
    embed.set_footer(text=footer(job, None))
    return embed


def cancelled_by_moderator(job: Job) -> bool:
    """Someone other than the requester cancelled it: it does not count against them."""
    return (
        job.state is JobState.CANCELLED
        and job.cancelled_by is not None
        and job.cancelled_by != job.user_id
    )


WAITING_FOR_APPROVAL = "Waiting for a moderator's approval"


def waiting_embed(
    request: VideoRequest, user_id: int, *, request_no: int, expires_at: float
) -> discord.Embed:
    """A request held for approval: the member's progress message until a moderator answers."""
    embed = discord.Embed(
        title=WAITING_FOR_APPROVAL,
        description=shown_text(request.prompt, PROMPT_SHOWN_IN_PROGRESS),
        colour=COLOUR_QUIET,
    )
    embed.add_field(
        name="Progress",
        value=(
            f"**{WAITING_FOR_APPROVAL}**\nNothing is made or counted until a moderator "
            f"approves it. If nobody answers, it expires {discord_timestamp(expires_at)}."
        ),
        inline=False,
    )
    embed.add_field(name="Requested by", value=f"<@{user_id}>")
    embed.set_footer(text=f"Request #{request_no} · seed {request.seed}")
    return embed


def approval_ended_embed(
    request: VideoRequest,
    user_id: int,
    *,
    request_no: int,
    title: str,
    why: str,
    show_prompt: bool = True,
) -> discord.Embed:
    """A held request that ended without a job (denied, expired, withdrawn, refused).

    ``show_prompt=False`` for a public message whose specifics went to the member alone:
    a prompt a moderator turned down stays off the channel too.
    """
    embed = discord.Embed(
        title=title,
        description=shown_text(request.prompt, PROMPT_SHOWN_IN_PROGRESS) if show_prompt else None,
        colour=COLOUR_QUIET,
    )
    embed.add_field(name="Why", value=why[:FIELD_VALUE_MAX], inline=False)
    embed.add_field(name="Cost", value="Nothing was spent, and it does not count.", inline=False)
    embed.add_field(name="Requested by", value=f"<@{user_id}>")
    embed.set_footer(text=f"Request #{request_no} · seed {request.seed}")
    return embed


def cost_note(job: Job) -> str:
    """Whether an ended job still counts: before "try again" spends another clip."""
    if cancelled_by_moderator(job):
        return "A moderator cancelled it, so it does not count toward your limit."
    if not job.counts_toward_limit:
        return "Nothing was spent; it does not count toward your limit."
    price = f" ({format_usd(job.cost_usd)})" if job.cost_usd > 0 else ""
    if job.request_id is None:
        return f"It may have reached Segmind, so it counts toward your limit{price}."
    return f"Segmind had already started it, so it counts toward your limit{price}."


def finished_embed(job: Job, text: str) -> discord.Embed:
    """The progress message once the clip has been posted (it points to it)."""
    embed = discord.Embed(
        title="Video finished",
        description=shown_text(job.request.prompt, PROMPT_SHOWN_IN_PROGRESS),
        colour=COLOUR_QUIET,
    )
    embed.add_field(name="Status", value=text, inline=False)
    embed.set_footer(text=footer(job, None))
    return embed


def embed_as_text(embed: discord.Embed) -> str:
    """An embed's words as message text, for a channel where the bot may not embed.

    Discord silently drops a bot's embeds where it lacks Embed Links; the prompt, the
    seed and the reason must still reach the member.
    """
    lines = [f"**{embed.title}**"] if embed.title else []
    if embed.description:
        lines.append(embed.description)
    lines += [f"**{field.name}:** {field.value}" for field in embed.fields]
    if embed.footer.text:
        lines.append(f"-# {embed.footer.text}")
    return "\n".join(lines)


def cancelled(job: Job, *, by_moderator: bool = False) -> str:
    """The private answer to Cancel: whether the stopped job still counts, and for whom."""
    if by_moderator:
        text = (
            f"Cancelled <@{job.user_id}>'s video. They have been told who cancelled it, "
            "and it does not count toward their limit."
        )
        if job.request_id:
            text += " Segmind had already started it, so the server's spending still counts it."
        return text
    if job.request_id:
        return "Cancelled. Segmind had already started it, so it still counts toward the limit."
    return "Cancelled. Nothing was spent."


def where_posted(job: Job, result_message_id: int | None, *, by_dm: bool) -> str:
    """The finished progress message's pointer to the clip."""
    if by_dm:
        return "Sent to the requester by direct message (the bot cannot post here)."
    if job.private or not result_message_id:
        return "Posted below."
    link = f"https://discord.com/channels/{job.guild_id}/{job.channel_id}/{result_message_id}"
    return f"[Jump to the video]({link})"


def origin(job: Job, server_name: str | None) -> str:
    """For a clip sent by DM: a DM alone does not say where the request was made."""
    server = discord.utils.escape_markdown(server_name) if server_name else "a server"
    return f"You asked for it in **{server}**, <#{job.channel_id}>."


def clip_gone(job: Job) -> str:
    """A private clip asked for after it was swept from disk."""
    return (
        f"This clip is no longer stored. Make it again with `/video` and seed `{job.request.seed}`."
    )


def private_notice(job: Job) -> str:
    """In the channel, when no DM could carry a private clip: says nothing of the prompt."""
    return (
        f"<@{job.user_id}>, your private video is ready. I could not send it to you "
        "directly, so press the button below: only you will see it."
    )


def private_ready(job: Job) -> str:
    """The private ping after the progress message became the clip (an edit pings nobody)."""
    return f"<@{job.user_id}>, your video is ready: it is in the message above."


def clip_filename(job: Job) -> str:
    """The attached file's name, read from the prompt: `a-cat-surfing-at-dawn-17.mp4`.

    Everyone in the channel sees it and may save it, so it is only lower-case ASCII
    letters, digits and single hyphens: no mention, no markdown, no path, no leading dot.
    The job id at the end keeps it unique (the last hyphen always precedes it), makes a
    bare Windows device name like `con` impossible, and lets a restart recognise its
    own earlier post by the name (``earlier_posts``).
    """
    return f"{filename_words(job.request.prompt)}-{job.id}.mp4"


def filename_words(prompt: str) -> str:
    """The prompt's first words as a file name stem; `video` when nothing ASCII is left."""
    # NFKD splits accents off their letters (é → e) and unfolds full-width letters to
    # plain ones; the accents go, and anything else with no ASCII reading (an emoji, a
    # zero-width space, an RTL override) separates words, as punctuation does.
    unaccented = "".join(
        character
        for character in unicodedata.normalize("NFKD", prompt)
        if character.isascii() or unicodedata.category(character) != "Mn"
    )
    stem = re.sub(r"[^a-z0-9]+", "-", unaccented.lower()).strip("-")
    if len(stem) > FILENAME_WORDS_MAX:
        # Cut at the last word boundary that keeps at least half, else mid-word.
        head = stem[: FILENAME_WORDS_MAX + 1]
        boundary = head.rfind("-")
        stem = head[:boundary] if boundary >= FILENAME_WORDS_MAX // 2 else stem[:FILENAME_WORDS_MAX]
        stem = stem.strip("-")
    return stem or "video"
