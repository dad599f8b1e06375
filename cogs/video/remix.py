"""Remix: a form prefilled with a clip's request; submitting it makes a new request of its own.

The form's custom id names the job and is signed like the buttons' (``custom_ids``).
Submissions are handled from ``on_interaction``, never by a ``discord.ui.Modal`` kept in
memory: discord.py forgets its modals on restart and then drops their submissions with no
answer ("interaction failed"), and a member may keep a form open across a restart.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, cast

import discord

from cogs import words
from cogs.replies import reply
from cogs.tree import describe_error, enter_log_context
from cogs.video import reuse
from services import logcontext
from services.errors import BotError, ValidationError
from services.models import (
    FRAME_RATE,
    GUIDANCE_SCALE,
    INPUT_FRAMES,
    NEGATIVE_PROMPT_MAX,
    PROMPT_MAX,
    SEED,
    STEPS,
    Job,
    VideoRequest,
    random_seed,
    request_fingerprint,
)

if TYPE_CHECKING:
    from cogs.video.custom_ids import CustomIds
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

FORM_ACTION = "remixform"
_FORM_ID = re.compile(rf"vjob:{FORM_ACTION}:(?P<job>\d{{1,20}}):(?P<sig>[A-Za-z0-9_-]{{1,40}})")

# The form's text inputs (Discord allows five): what a member edits, and what comes back.
PROMPT, NEGATIVE, FRAMES, TUNING, SEED_FIELD = "prompt", "negative", "frames", "tuning", "seed"
_FRAMES_RANGE = f"{INPUT_FRAMES[0]}-{INPUT_FRAMES[1]} at {FRAME_RATE[0]}-{FRAME_RATE[1]}"
FRAMES_LABEL = f"Frames and frame rate ({_FRAMES_RANGE})"
TUNING_LABEL = (
    f"Steps and guidance ({STEPS[0]}-{STEPS[1]}, {GUIDANCE_SCALE[0]:g}-{GUIDANCE_SCALE[1]:g})"
)
SEED_LABEL = "Seed (empty for a random one)"

# "49 at 8", "49 @ 8", "49, 8", "49 8"; "45, 6", "45 6.5". ASCII digits only: int() would
# take other scripts' digits too, and a form is no place for surprises.
_FRAMES_TEXT = re.compile(r"\s*([0-9]{1,4})\s*(?:at|@|,|/|\s)\s*([0-9]{1,4})\s*", re.IGNORECASE)
# Up to 17 decimals: the form is prefilled with the guidance's exact repr (17 significant
# digits at most), and a form sent back unchanged must read as the clip it came from.
_TUNING_TEXT = re.compile(r"\s*([0-9]{1,4})\s*(?:,|;|/|\s)\s*([0-9]{1,4}(?:\.[0-9]{1,17})?)\s*")
_SEED_TEXT = re.compile(r"\s*([0-9]{1,16})\s*")


def _bot(interaction: discord.Interaction) -> VideoBot:
    return cast("VideoBot", interaction.client)


def _number(value: float) -> str:
    """A parameter as the member would type it: ``6``, not ``6.0``; exact, never rounded."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class RemixForm(discord.ui.Modal):
    """The form itself: only its inputs; ``on_submit_form`` handles what comes back."""

    def __init__(self, job: Job, ids: CustomIds) -> None:
        super().__init__(title="Remix this video", custom_id=ids.make(FORM_ACTION, job.id))
        request = job.request
        self.add_item(
            discord.ui.TextInput(
                label="Prompt",
                custom_id=PROMPT,
                style=discord.TextStyle.paragraph,
                default=request.prompt,
                min_length=1,
                max_length=PROMPT_MAX,
            )
        )
        self.add_item(
            discord.ui.TextInput(
                label="Negative prompt (what to avoid)",
                custom_id=NEGATIVE,
                style=discord.TextStyle.paragraph,
                # Discord shows an empty value as an empty field; sending "" is pointless.
                default=request.negative_prompt or None,
                placeholder="Empty to avoid nothing in particular",
                required=False,
                max_length=NEGATIVE_PROMPT_MAX,
            )
        )
        self.add_item(
            discord.ui.TextInput(
                label=FRAMES_LABEL,
                custom_id=FRAMES,
                default=f"{request.input_frames} at {request.frame_rate}",
                placeholder="Like 49 at 8",
                max_length=20,
            )
        )
        self.add_item(
            discord.ui.TextInput(
                label=TUNING_LABEL,
                custom_id=TUNING,
                default=f"{request.steps}, {_number(request.guidance_scale)}",
                placeholder="Like 45, 6",
                max_length=40,
            )
        )
        self.add_item(
            discord.ui.TextInput(
                label=SEED_LABEL,
                custom_id=SEED_FIELD,
                default=str(request.seed),
                placeholder=f"{SEED[0]} to {SEED[1]}, or empty for a random seed",
                required=False,
                max_length=len(str(SEED[1])),
            )
        )


def _may_remix(interaction: discord.Interaction, job: Job) -> None:
    if job.private and interaction.user.id != job.user_id:
        # The form would show the private prompt to whoever asked for it.
        raise BotError("This video is private: only the person who made it can remix it.")


async def open_form(interaction: discord.Interaction, lookup: Awaitable[Job]) -> None:
    """Answer a Remix click with the form; ``lookup`` finds the clicked button's own job.

    A form can only be the click's first answer, so nothing but the lookup comes before it.
    """
    bot = _bot(interaction)
    job = await bot.starter.in_time(interaction, asyncio.ensure_future(lookup))
    if interaction.response.is_done():
        # The lookup outlasted Discord's 3 s and the click was answered to keep it alive:
        # a form can no longer follow.
        raise BotError("I was too slow to open the form. Please press Remix again.")
    _may_remix(interaction, job)
    form = RemixForm(job, bot.custom_ids)
    # Never kept in discord.py's memory: every submission goes through on_submit_form, the
    # same way before and after a restart.
    form.stop()
    await interaction.response.send_modal(form)


def submitted_values(components: Any) -> dict[str, str]:
    """The text inputs of a form submission by custom id (in action rows or in labels)."""
    found: dict[str, str] = {}
    stack = list(components) if isinstance(components, list) else []
    while stack:
        component = stack.pop()
        if not isinstance(component, dict):
            continue
        if component.get("type") == discord.ComponentType.text_input.value:
            custom_id, value = component.get("custom_id"), component.get("value")
            if isinstance(custom_id, str) and isinstance(value, str):
                found[custom_id] = value
        stack.extend(component.get("components") or [])
        if isinstance(component.get("component"), dict):
            stack.append(component["component"])
    return found


def _out_of_range(value: float, bounds: tuple[float, float]) -> bool:
    return not bounds[0] <= value <= bounds[1]


def request_from_form(values: Mapping[str, str]) -> tuple[VideoRequest, bool]:
    """The request a submitted form asks for, and whether its seed was chosen.

    Each field is checked on its own so that a refusal names the field and its range.
    """
    frames = _FRAMES_TEXT.fullmatch(values.get(FRAMES, ""))
    if frames is None:
        raise ValidationError(
            f"**Frames and frame rate**: write it like `49 at 8` (frames {INPUT_FRAMES[0]}-"
            f"{INPUT_FRAMES[1]}, frame rate {FRAME_RATE[0]}-{FRAME_RATE[1]})."
        )
    input_frames, frame_rate = int(frames[1]), int(frames[2])
    if _out_of_range(input_frames, INPUT_FRAMES):
        raise ValidationError(
            f"**Frames and frame rate**: frames must be {INPUT_FRAMES[0]} to {INPUT_FRAMES[1]} "
            f"(got {input_frames})."
        )
    if _out_of_range(frame_rate, FRAME_RATE):
        raise ValidationError(
            f"**Frames and frame rate**: the frame rate must be {FRAME_RATE[0]} to "
            f"{FRAME_RATE[1]} (got {frame_rate})."
        )
    tuning = _TUNING_TEXT.fullmatch(values.get(TUNING, ""))
    low, high = (f"{bound:g}" for bound in GUIDANCE_SCALE)
    if tuning is None:
        raise ValidationError(
            f"**Steps and guidance**: write it like `45, 6` (steps {STEPS[0]}-{STEPS[1]}, "
            f"guidance {low}-{high})."
        )
    steps, guidance = int(tuning[1]), float(tuning[2])
    if _out_of_range(steps, STEPS):
        raise ValidationError(
            f"**Steps and guidance**: steps must be {STEPS[0]} to {STEPS[1]} (got {steps})."
        )
    if _out_of_range(guidance, GUIDANCE_SCALE):
        raise ValidationError(
            f"**Steps and guidance**: guidance must be {low} to {high} (got {tuning[2]})."
        )
    seed_text = values.get(SEED_FIELD, "")
    seed: int | None = None
    if seed_text.strip():
        chosen = _SEED_TEXT.fullmatch(seed_text)
        if chosen is None or _out_of_range(int(chosen[1]), SEED):
            raise ValidationError(
                f"**Seed**: a whole number from {SEED[0]} to {SEED[1]}, or empty for a random one."
            )
        seed = int(chosen[1])
    # The prompts are checked by the request itself (empty, invisible, too long), with words
    # that already name them.
    request = VideoRequest(
        prompt=values.get(PROMPT, ""),
        seed=random_seed() if seed is None else seed,
        negative_prompt=values.get(NEGATIVE, ""),
        input_frames=input_frames,
        steps=steps,
        guidance_scale=guidance,
        frame_rate=frame_rate,
    )
    return request, seed is not None


def remix_fingerprint(
    job_id: int, request: VideoRequest, *, private: bool, seed_given: bool
) -> str:
    """The same form submitted twice in a moment (a double click on Submit) is one request."""
    same = request_fingerprint(request, private=private, seed_given=seed_given)
    return f"remix:{job_id}:{same.removeprefix('video:')}"


async def _form_job(bot: VideoBot, interaction: discord.Interaction, job_id: int, sig: str) -> Job:
    """The form's job, if the form is truly this database's and this server's."""
    job = await bot.services.storage.jobs.get(job_id)
    if (
        job is None
        or job.guild_id != interaction.guild_id
        or not bot.custom_ids.verify(FORM_ACTION, job_id, sig)
    ):
        log.info("remix form for job=%s refused: not this database's or server's", job_id)
        raise BotError("That video is no longer known to me.")
    return job


async def on_submit_form(interaction: discord.Interaction) -> None:
    """Listener for every interaction; acts on submitted remix forms only."""
    if interaction.type is not discord.InteractionType.modal_submit:
        return
    data = cast("dict[str, Any]", interaction.data or {})
    form = _FORM_ID.fullmatch(str(data.get("custom_id", "")))
    if form is None:
        return
    job_id = int(form["job"])
    try:
        enter_log_context(interaction)
        logcontext.bind(job_id=job_id)
        await _submit(interaction, job_id, form["sig"], submitted_values(data.get("components")))
    except Exception as error:
        text, unexpected = describe_error(error)
        if unexpected:
            log.exception("remix form for job=%s failed", job_id)
            text = text or "Something went wrong on my side. Please try again."
        await reply(interaction, text, ephemeral=True)


async def _submit(
    interaction: discord.Interaction, job_id: int, sig: str, values: Mapping[str, str]
) -> None:
    bot = _bot(interaction)
    if not bot.services.settings.allows_guild(interaction.guild_id):
        raise BotError(words.NOT_SERVED)
    # The lookup shares admission's time budget: acknowledged (privately) first if slow.
    job = await bot.starter.in_time(
        interaction, asyncio.ensure_future(_form_job(bot, interaction, job_id, sig))
    )
    _may_remix(interaction, job)
    request, seed_given = request_from_form(values)
    # A form sent back unchanged (its seed kept) asks for a clip made already: that one is
    # shown instead of paying for a copy, as for `/video`.
    if seed_given and await reuse.offer_earlier_clip(
        bot, interaction, request, private=job.private
    ):
        return
    log.info("job=%s remixed by user=%s", job.id, interaction.user.id)
    await bot.starter.start(
        interaction,
        request,
        private=job.private,
        parent_job_id=job.id,
        fingerprint=remix_fingerprint(job.id, request, private=job.private, seed_given=seed_given),
    )
