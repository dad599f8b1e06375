"""Details: the whole story of one clip, privately, for whoever may read its prompt.

A result card cuts the prompt and the negative prompt to keep the channel calm; Details
shows both whole, with every parameter, the seed, how long each stage took and what it
cost. Pure functions build the embeds, so Discord's size limits are tested offline.
"""

from __future__ import annotations

import discord

from cogs.replies import reply
from cogs.video.render import COLOUR_QUIET, EMBED_DESCRIPTION_MAX, requester, shown_text
from cogs.words import discord_timestamp, format_usd
from services.errors import BotError
from services.models import Job, JobState

# Discord's limits on one message: all its embeds' text together, and how many it carries.
MESSAGE_EMBED_TOTAL = 6000
MESSAGE_EMBEDS_MAX = 10

NOT_YOURS = "This video is private: only the person who asked for it can see its details."


def check_may_read(job: Job, user_id: int) -> None:
    """Refuse anyone but the requester for a private clip, shared or not.

    A shared post shows the prompt cut short and no cost: the requester chose to show
    that much, not the rest. A public clip's card is open to the whole channel already.
    """
    if job.private and user_id != job.user_id:
        raise BotError(NOT_YOURS)


async def send_details(interaction: discord.Interaction, job: Job) -> None:
    """The details card, ephemeral; after a defer, the first part replaces the "thinking"."""
    check_may_read(job, interaction.user.id)
    for embeds in pack(details_embeds(job)):
        await reply(
            interaction,
            embeds=embeds,
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )


def details_embeds(job: Job) -> list[discord.Embed]:
    """The prompt card (with the numbers) and the negative prompt card, each text whole.

    Each text gets an embed's description (4096) to itself: escaped, a 2000-character
    text is at most 4000 characters, so it is never cut.
    """
    request = job.request
    card = discord.Embed(
        title=f"Details of video #{job.id}",
        description=literal(request.prompt),
        colour=COLOUR_QUIET,
    )
    card.add_field(name="Seed", value=f"`{request.seed}`")
    card.add_field(name="Input frames", value=str(request.input_frames))
    card.add_field(name="Frame rate", value=f"{request.frame_rate} fps")
    card.add_field(name="Steps", value=str(request.steps))
    card.add_field(name="Guidance scale", value=f"{request.guidance_scale:g}")
    card.add_field(name="Requested by", value=requester(job))
    card.add_field(name="Asked", value=discord_timestamp(job.created_at, "f"))
    for name, value in stage_times(job):
        card.add_field(name=name, value=value)
    card.add_field(name="Cost", value=cost(job))
    negative = discord.Embed(
        title="Negative prompt",
        description=literal(request.negative_prompt) or "(none)",
        colour=COLOUR_QUIET,
    )
    negative.set_footer(text=f"Job #{job.id} · seed {request.seed}")
    return [card, negative]


def literal(text: str) -> str:
    """User text shown as typed, markdown and mentions inert, never cut (see above)."""
    return shown_text(text, EMBED_DESCRIPTION_MAX)


def stage_times(job: Job) -> list[tuple[str, str]]:
    """How long it waited here, at Segmind, and to be posted; stages not reached say so.

    The job keeps when it was asked for, accepted by Segmind, last started posting and
    ended (for a clip: delivered). So "generation" runs to the start of posting and
    includes Segmind's own queue and the download; "delivery" is the posting itself.
    """
    ended = job.state.is_terminal
    generated = job.posting_started_at or (job.finished_at if ended else None)
    if job.submitted_at is None:
        waiting = "never sent to Segmind" if ended else "still waiting"
        return [("Queue", waiting), ("Generation", "not started"), ("Delivery", "not started")]
    return [
        ("Queue", duration(job.submitted_at - job.created_at)),
        (
            "Generation",
            "in progress" if generated is None else duration(generated - job.submitted_at),
        ),
        ("Delivery", delivery_time(job)),
    ]


def delivery_time(job: Job) -> str:
    delivered = job.state is JobState.DELIVERED
    if job.posting_started_at is None:
        # Delivered before posting was timed (an older job), or not posted yet.
        return "not recorded" if delivered else "not started"
    if delivered and job.finished_at is not None:
        return duration(job.finished_at - job.posting_started_at)
    return "being posted"


def duration(seconds: float) -> str:
    """`under a second`, `42 s`, `4 min 05 s`, `1 h 02 min`."""
    if seconds < 1:
        return "under a second"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def cost(job: Job) -> str:
    """What the clip cost, and whose figure that is: Segmind's own, or the bot's estimate."""
    if job.cost_reported:
        return f"{format_usd(job.cost_usd)}, as Segmind reported it"
    if job.cost_usd <= 0:
        return "Nothing was spent"
    if job.state.is_terminal:
        return f"{format_usd(job.cost_usd)}, estimated: Segmind reported no figure"
    return f"{format_usd(job.cost_usd)}, estimated until Segmind reports its figure"


def embed_size(embed: discord.Embed) -> int:
    """An embed's characters as Discord counts them toward a message's 6000."""
    total = len(embed.title or "") + len(embed.description or "")
    total += len(embed.footer.text or "") + len(embed.author.name or "")
    return total + sum(len(field.name or "") + len(field.value or "") for field in embed.fields)


def pack(embeds: list[discord.Embed]) -> list[list[discord.Embed]]:
    """Embeds in as few messages as Discord's per-message limits allow, in order.

    Two whole, heavily escaped texts (up to 4000 characters each) can outgrow one
    message's 6000; they then come as two private messages rather than cut.
    """
    messages: list[list[discord.Embed]] = []
    size = 0
    for embed in embeds:
        grows = embed_size(embed)
        if (
            not messages
            or size + grows > MESSAGE_EMBED_TOTAL
            or (len(messages[-1]) >= MESSAGE_EMBEDS_MAX)
        ):
            messages.append([])
            size = 0
        messages[-1].append(embed)
        size += grows
    return messages
