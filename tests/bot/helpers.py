"""Small helpers for whole-bot scenarios: drive /video like a member, read what members see.

Everything here goes through the fake Discord (dispatch, then read channels and messages),
so a scenario states what a member or moderator would see, never what a cog did.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from cogs.videobot import VideoBot, create_bot
from services.app import open_services
from services.jobs import JobRunner
from services.models import JobState
from services.settings import load_settings
from services.simulator import SegmindSimulator
from tests.bot.conftest import SAMPLE
from tests.conftest import SimulatorFactory
from tests.fakeclock import FakeClock
from tests.fakediscord import (
    FakeDiscord,
    FakeMember,
    InteractionRecord,
    StoredMessage,
    running_client,
)

# Segmind's real pace (PRODUCT.md: about four minutes a clip), on a clock only tests move.
SEGMIND_QUEUE_SECONDS = 60.0
SEGMIND_PROCESSING_SECONDS = 240.0
# Generous: a loaded 2-core CI box; every wait returns as soon as its condition holds.
TIMEOUT = 10.0

# Interaction response types (Discord's numbering).
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE = 6

# Titles of the job messages (cogs/video/render.py), as members read them.
MAKING = "Making your video"
READY = "Your video is ready"
FINISHED = "Video finished"
FAILED = "This video could not be made"
CANCELLED = "Video cancelled"


async def start_held_simulator(
    simulator_factory: SimulatorFactory, clock: FakeClock, **config: Any
) -> SegmindSimulator:
    """A simulator on ``clock``: a job stays QUEUED, then PROCESSING, until a test advances it."""
    return await simulator_factory(
        clock=clock,
        queue_seconds=SEGMIND_QUEUE_SECONDS,
        processing_seconds=SEGMIND_PROCESSING_SECONDS,
        **config,
    )


def finish_segmind_jobs(clock: FakeClock) -> None:
    """Let every job already at the held simulator complete (new jobs are held again)."""
    clock.advance(SEGMIND_QUEUE_SECONDS + SEGMIND_PROCESSING_SECONDS)


# --- reading messages -------------------------------------------------------------------


def title(message: StoredMessage) -> str | None:
    """The title of the message's first embed, if it has one."""
    return message.embeds[0].get("title") if message.embeds else None


def field(message: StoredMessage, name: str) -> str | None:
    """The value of the first embed's field called ``name``."""
    if not message.embeds:
        return None
    for item in message.embeds[0].get("fields", []):
        if item.get("name") == name:
            return item.get("value")
    return None


def embed_text(message: StoredMessage) -> str:
    """Everything a member reads in the message's embeds, one string."""
    parts: list[str] = []
    for embed in message.embeds:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        for item in embed.get("fields", []):
            parts += [item.get("name") or "", item.get("value") or ""]
        parts.append((embed.get("footer") or {}).get("text") or "")
    return "\n".join(parts)


def progress_of(fake: FakeDiscord, record: InteractionRecord) -> str:
    """The Progress field of the job message that answered ``record``, as shown now."""
    return field(fake.message(record.original_message_id or 0), "Progress") or ""


def has_button(message: StoredMessage, action: str) -> str | None:
    """The custom id of the message's ``action`` button (``reroll``, ``delete``...), if any."""
    return next((cid for cid in message.custom_ids() if cid.startswith(f"vjob:{action}:")), None)


def revision_statuses(message: StoredMessage) -> list[str]:
    """The bold status line of each revision's Progress field, consecutive repeats collapsed."""
    statuses: list[str] = []
    for revision in message.revisions:
        fields = revision.embeds[0].get("fields", []) if revision.embeds else []
        progress = next((f["value"] for f in fields if f.get("name") == "Progress"), "")
        line = progress.split("\n", 1)[0].strip("*")
        if line and (not statuses or statuses[-1] != line):
            statuses.append(line)
    return statuses


# --- driving the bot --------------------------------------------------------------------


async def video(
    fake: FakeDiscord, user: FakeMember, options: dict[str, Any], **dispatch: Any
) -> InteractionRecord:
    """``/video`` as ``user`` types it; returns once Discord has the bot's acknowledgement."""
    record = await fake.dispatch_slash_command("video", options, user=user, **dispatch)
    return await fake.wait_for_ack(record)


async def click(
    fake: FakeDiscord, message: StoredMessage, action: str, user: FakeMember
) -> InteractionRecord:
    """``user`` clicks the message's ``action`` button; returns once the bot acknowledged it."""
    custom_id = has_button(message, action)
    assert custom_id is not None, f"no {action} button on {message.custom_ids()}"
    record = await fake.dispatch_component(message, custom_id, user=user)
    return await fake.wait_for_ack(record)


def answer(fake: FakeDiscord, record: InteractionRecord) -> StoredMessage:
    """The message the bot answered the interaction with (its original response)."""
    assert record.original_message_id is not None, "the interaction has no message answer"
    return fake.message(record.original_message_id)


async def wait_for_reply(
    fake: FakeDiscord, record: InteractionRecord, predicate: Callable[[StoredMessage], bool]
) -> StoredMessage:
    """The first of the interaction's answer and follow-ups that matches ``predicate``."""

    def found() -> StoredMessage | None:
        ids = [record.original_message_id, *record.followup_ids]
        messages = [fake.message(i) for i in ids if i is not None]
        return next((m for m in messages if not m.loading and predicate(m)), None)

    return await fake.wait_until(found, TIMEOUT)


async def wait_for_title(fake: FakeDiscord, message_id: int, wanted: str) -> StoredMessage:
    """The message, once its embed title reads ``wanted`` (an edit in place)."""
    message = fake.message(message_id)
    await fake.wait_until(lambda: title(message) == wanted, TIMEOUT)
    return message


async def wait_for_status(fake: FakeDiscord, message_id: int, status: str) -> StoredMessage:
    """The progress message, once its Progress field shows ``status``."""
    message = fake.message(message_id)
    await fake.wait_until(lambda: status in (field(message, "Progress") or ""), TIMEOUT)
    return message


async def wait_for_clip(
    fake: FakeDiscord, channel_id: int, *, viewer: FakeMember | None = None, after: int = 0
) -> StoredMessage:
    """The first message with an attachment that ``viewer`` sees, newer than message ``after``."""
    return await fake.wait_for_message(
        channel_id, lambda m: bool(m.attachments) and m.id > after, viewer=viewer, timeout=TIMEOUT
    )


async def wait_for_message_text(
    fake: FakeDiscord, channel_id: int, text: str, *, viewer: FakeMember | None = None
) -> StoredMessage:
    """The first message ``viewer`` sees whose content contains ``text``."""
    return await fake.wait_for_message(
        channel_id, lambda m: text in m.content, viewer=viewer, timeout=TIMEOUT
    )


async def wait_idle(runner: JobRunner) -> None:
    """Until the bot's job runner has nothing running or waiting (a sync point, not an assert)."""
    await asyncio.wait_for(runner.wait_idle(), TIMEOUT)


@asynccontextmanager
async def running_bot(
    env: dict[str, str], simulator: SegmindSimulator, fake: FakeDiscord, *, idle: bool = True
) -> AsyncIterator[VideoBot]:
    """The bot as bot.py starts it, on the database ``env`` names; stopped on exit, once
    its jobs are done (``idle``) or as they stand (a stop mid-job, as a restart has it)."""
    async with open_services(load_settings(env), segmind_base_url=simulator.base_url) as services:
        client = create_bot(services, guild_ready_timeout=0.05)
        async with running_client(client, fake):
            yield client
            if idle:
                await wait_idle(services.runner)


async def crash_after_post(bot: VideoBot, job_id: int = 1) -> None:
    """Rewind a delivered job to how the database stood had the process died right after
    Discord stored its clip: downloaded, marked as being posted, its post not recorded,
    its file still on disk."""
    services = bot.services
    job = await services.storage.jobs.get(job_id)
    assert job is not None and job.state is JobState.DELIVERED
    assert job.posting_started_at is not None
    services.clips.path_for(job.id).write_bytes(SAMPLE)
    await services.storage.jobs.update(
        job.id,
        now=services.clock.time(),
        state=JobState.DOWNLOADED,
        result_message_id=None,
        finished_at=None,
        clip_path=str(services.clips.path_for(job.id)),
    )
