"""The "Fetching the video" step is shown only while a download takes a while, not as a flash.

Most downloads take a moment and the clip replaces the progress at once: an edit saying
"Fetching" just before it would be a flicker for the member and a request for nothing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from cogs.videobot import Timings
from services.simulator import SegmindSimulator
from tests.bot.helpers import (
    FINISHED,
    SEGMIND_QUEUE_SECONDS,
    finish_segmind_jobs,
    start_held_simulator,
    video,
    wait_for_clip,
    wait_for_status,
    wait_for_title,
)
from tests.conftest import SimulatorFactory
from tests.fakeclock import FakeClock
from tests.fakediscord import FakeDiscord, Fault

FETCH_HOLD = 2.0  # generous against a loaded CI box: the quick download must beat it
EDIT_INTERVAL = 0.2
FETCHING = "Fetching the video"


@pytest.fixture
def bot_timings() -> Timings:
    return Timings(progress_edit_interval=EDIT_INTERVAL, fetch_hold=FETCH_HOLD)


@pytest.fixture
async def simulator(
    simulator_factory: SimulatorFactory, segmind_clock: FakeClock
) -> SegmindSimulator:
    return await start_held_simulator(simulator_factory, segmind_clock)


def edits_showing(fake: FakeDiscord, text: str) -> int:
    return sum(
        1
        for call in fake.calls_to("/webhooks/*/**")
        if call.method == "PATCH" and text in json.dumps(call.json)
    )


async def generating(fake: FakeDiscord, segmind_clock: FakeClock, prompt: str) -> Any:
    """Alice's request, once its progress says "Generating" and the edit interval is over,
    so nothing but the hold keeps a "Fetching" edit from going out at once."""
    alice = fake.world.member_named("alice")
    record = await video(fake, alice, {"prompt": prompt})
    await wait_for_status(fake, record.original_message_id, "Queued at Segmind")
    segmind_clock.advance(SEGMIND_QUEUE_SECONDS)
    await wait_for_status(fake, record.original_message_id, "Generating")
    await asyncio.sleep(EDIT_INTERVAL * 2)
    return record


async def test_fetching_shows_only_when_the_download_outlasts_the_hold(
    bot, fake_discord: FakeDiscord, segmind_clock: FakeClock, simulator: SegmindSimulator
):
    quick = await generating(fake_discord, segmind_clock, "a quick download")
    finish_segmind_jobs(segmind_clock)
    first_clip = await wait_for_clip(fake_discord, quick.channel_id)
    await wait_for_title(fake_discord, quick.original_message_id, FINISHED)
    assert edits_showing(fake_discord, FETCHING) == 0

    simulator.slow("download", seconds=FETCH_HOLD * 2)
    slow = await generating(fake_discord, segmind_clock, "a slow download")
    finish_segmind_jobs(segmind_clock)
    # Still downloading past the hold: the member is told what the wait is for.
    await wait_for_status(fake_discord, slow.original_message_id, FETCHING)
    await wait_for_clip(fake_discord, slow.channel_id, after=first_clip.id)
    await wait_for_title(fake_discord, slow.original_message_id, FINISHED)
    assert edits_showing(fake_discord, FETCHING) == 1


async def test_fetching_is_not_shown_while_a_downloaded_clip_waits_to_be_posted(
    bot, fake_discord: FakeDiscord, segmind_clock: FakeClock, simulator: SegmindSimulator
):
    record = await generating(fake_discord, segmind_clock, "a clip Discord makes wait")
    # The download is quick, but Discord holds the clip's post back past the hold.
    fake_discord.inject(
        Fault.rate_limited("POST /channels/*/messages", retry_after=FETCH_HOLD * 1.5)
    )
    finish_segmind_jobs(segmind_clock)
    await wait_for_clip(fake_discord, record.channel_id)
    await wait_for_title(fake_discord, record.original_message_id, FINISHED)
    assert edits_showing(fake_discord, FETCHING) == 0
