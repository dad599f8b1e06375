"""How the clip reaches members: after the interaction token expired, and for private videos.

Segmind is held on its own clock, so a scenario can let Discord's 15 minutes pass (the
fake's clock) while the job is still at Segmind, then let it finish.
"""

from __future__ import annotations

import asyncio

import pytest

from cogs.videobot import Timings
from services.models import JobState
from services.settings import load_settings
from services.simulator import SegmindSimulator
from services.storage import Storage
from tests.bot.conftest import SAMPLE
from tests.bot.helpers import (
    DEFERRED_CHANNEL_MESSAGE,
    FINISHED,
    READY,
    SEGMIND_QUEUE_SECONDS,
    answer,
    click,
    finish_segmind_jobs,
    has_button,
    running_bot,
    start_held_simulator,
    title,
    video,
    wait_for_clip,
    wait_for_reply,
    wait_for_status,
    wait_for_title,
)
from tests.conftest import SimulatorFactory
from tests.fakeclock import FakeClock
from tests.fakediscord import FakeDiscord, Fault, StoredMessage

TOKEN_LIFETIME = 15 * 60
WEBHOOK_CALLS = "/webhooks/*/**"


@pytest.fixture
def bot_timings() -> Timings:
    """Progress edits paced at 0.2 s instead of 5 s, so scenarios can wait for Segmind's state."""
    return Timings(progress_edit_interval=0.2)


@pytest.fixture
async def simulator(
    simulator_factory: SimulatorFactory, segmind_clock: FakeClock
) -> SegmindSimulator:
    """Segmind holding each job in each state until the scenario advances ``segmind_clock``."""
    return await start_held_simulator(simulator_factory, segmind_clock)


async def test_after_the_token_expires_progress_and_clip_go_by_channel_messages(
    bot, fake_discord: FakeDiscord, segmind_clock: FakeClock
):
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": "a very slow sunrise"})
    progress_id = record.original_message_id
    await wait_for_status(fake_discord, progress_id, "Queued at Segmind")

    fake_discord.advance(TOKEN_LIFETIME + 1)  # Segmind took longer than Discord's 15 minutes
    segmind_clock.advance(SEGMIND_QUEUE_SECONDS)
    await wait_for_status(fake_discord, progress_id, "Generating")
    finish_segmind_jobs(segmind_clock)
    clip = await wait_for_clip(fake_discord, record.channel_id)
    await wait_for_title(fake_discord, progress_id, FINISHED)

    assert clip.interaction_id is None and clip.webhook_id is None  # a plain channel message
    assert [a.data for a in clip.attachments] == [SAMPLE]
    assert clip.content == f"<@{alice.id}>, your video is ready."
    assert clip.pinged_user_ids == {alice.id}
    assert has_button(clip, "reroll") and has_button(clip, "delete")
    # The expired token was tried once, then left alone: no retry loop against Discord.
    refused = [c for c in fake_discord.calls_to(WEBHOOK_CALLS) if c.status == 401]
    assert len(refused) == 1 and refused[0].error_code == 50027
    assert [m.id for m in fake_discord.channel_messages(record.channel_id)] == [
        progress_id,
        clip.id,
    ]


async def test_a_private_video_is_seen_only_by_its_requester_until_she_shares_it(
    bot, fake_discord: FakeDiscord, segmind_clock: FakeClock
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    record = await video(fake_discord, alice, {"prompt": "a secret garden", "private": True})
    progress = answer(fake_discord, record)
    assert progress.ephemeral and progress.visible_to == {alice.id}
    await wait_for_status(fake_discord, progress.id, "Queued at Segmind")

    finish_segmind_jobs(segmind_clock)
    clip = await wait_for_clip(fake_discord, record.channel_id, viewer=alice)

    # The private progress message becomes the clip: an edit, which a retry or a restart
    # repeats harmlessly, where a second follow-up would show the clip twice.
    assert clip.id == progress.id and title(clip) == READY
    assert clip.ephemeral and clip.visible_to == {alice.id}
    # An edit pings nobody, and she has usually looked away: a private line pings her.
    ping = await fake_discord.wait_for_message(
        record.channel_id, lambda m: "in the message above" in m.content, viewer=alice, timeout=10
    )
    assert ping.ephemeral and ping.pinged_user_ids == {alice.id} and not ping.attachments
    assert [a.data for a in clip.attachments] == [SAMPLE]
    assert has_button(clip, "share") and has_button(clip, "reroll")
    assert fake_discord.channel_messages(record.channel_id) == []
    assert fake_discord.channel_messages(record.channel_id, viewer=mod) == []

    share = await click(fake_discord, clip, "share", alice)
    assert share.response_type == DEFERRED_CHANNEL_MESSAGE
    shared = await wait_for_reply(fake_discord, share, lambda m: bool(m.attachments))

    assert not shared.ephemeral
    assert [m.id for m in fake_discord.channel_messages(record.channel_id, viewer=mod)] == [
        shared.id
    ]
    assert [a.data for a in shared.attachments] == [SAMPLE]
    assert shared.content == f"<@{alice.id}> shared a video."
    assert title(shared) == "A video, shared"
    assert "a secret garden" in shared.embeds[0]["description"]
    assert shared.pinged_user_ids == frozenset()
    assert has_button(shared, "delete") and not has_button(shared, "share")
    note = answer(fake_discord, share)
    await fake_discord.wait_until(lambda: note.content == "Shared in the channel.")

    again = await click(fake_discord, clip, "share", alice)  # a second click posts nothing
    refusal = await wait_for_reply(fake_discord, again, lambda m: "already shared" in m.content)
    assert refusal.ephemeral
    public = fake_discord.channel_messages(record.channel_id, viewer=mod)
    assert [m.id for m in public] == [shared.id]


async def test_a_posted_clip_is_recorded_before_the_progress_message_is_tidied(
    bot, fake_discord: FakeDiscord, services, segmind_clock: FakeClock
):
    """A stop between posting and recording would post the clip (and ping) twice on restart."""
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": "a quick bird"})
    progress_id = record.original_message_id
    await wait_for_status(fake_discord, progress_id, "Queued at Segmind")
    segmind_clock.advance(SEGMIND_QUEUE_SECONDS)
    await wait_for_status(fake_discord, progress_id, "Generating")
    # The "finished" edit of the progress message is held up by Discord for two seconds.
    fake_discord.inject(Fault.rate_limited("PATCH /webhooks/*/*/messages/*", retry_after=2.0))
    finish_segmind_jobs(segmind_clock)
    await wait_for_clip(fake_discord, record.channel_id)

    [job] = await services.storage.jobs.recent(fake_discord.world.guild.id)
    while job.state is not JobState.DELIVERED:
        assert title(fake_discord.message(progress_id)) != FINISHED, "recorded only after tidying"
        await asyncio.sleep(0.01)
        [job] = await services.storage.jobs.recent(fake_discord.world.guild.id)
    assert title(fake_discord.message(progress_id)) != FINISHED
    await wait_for_title(fake_discord, progress_id, FINISHED)  # and it is tidied after all


async def test_a_private_clip_with_no_token_and_closed_dms_is_opened_from_a_notice(
    bot, fake_discord: FakeDiscord, services, segmind_clock: FakeClock
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.guild.add_member("bob")
    alice.user.accepts_dms = False
    record = await video(fake_discord, alice, {"prompt": "a very private sky", "private": True})
    await wait_for_status(fake_discord, record.original_message_id, "Queued at Segmind")
    fake_discord.advance(TOKEN_LIFETIME + 1)  # queue time counts: the token is gone

    finish_segmind_jobs(segmind_clock)
    notice = await fake_discord.wait_for_message(
        record.channel_id, lambda m: has_button(m, "open") is not None, timeout=10
    )
    assert not notice.ephemeral and notice.pinged_user_ids == {alice.id}
    assert "private sky" not in notice.content and notice.attachments == []

    stranger = await click(fake_discord, notice, "open", bob)
    refusal = await wait_for_reply(fake_discord, stranger, lambda m: "private" in m.content)
    assert refusal.ephemeral and refusal.visible_to == {bob.id}

    opened = await click(fake_discord, notice, "open", alice)
    clip = await wait_for_reply(fake_discord, opened, lambda m: bool(m.attachments))
    assert clip.ephemeral and clip.visible_to == {alice.id}
    assert [a.data for a in clip.attachments] == [SAMPLE]
    job = await services.storage.jobs.get(1)
    assert job is not None and job.state is JobState.DELIVERED
    assert job.result_message_id == notice.id


async def crash_before_the_progress_was_recorded(
    fake_discord: FakeDiscord, bot_env: dict[str, str], simulator: SegmindSimulator
) -> tuple[int, int]:
    """Alice's second request waits behind her first; the bot dies between Discord storing
    the second's progress message and the bot recording its id. Returns (job, message)."""
    alice = fake_discord.world.member_named("alice")
    async with running_bot(bot_env, simulator, fake_discord, idle=False):
        await video(fake_discord, alice, {"prompt": "the first one"})
        second = await video(fake_discord, alice, {"prompt": "the second one"})
        await wait_for_status(fake_discord, second.original_message_id, "your other video")
    storage = await Storage.open(load_settings(bot_env).database_path)
    try:
        await storage.jobs.update(2, now=0.0, message_id=None)  # as the crash left it
    finally:
        await storage.close()
    assert second.original_message_id is not None
    return 2, second.original_message_id


def clips_of(fake: FakeDiscord, prompt: str) -> list[StoredMessage]:
    channel = fake.world.guild.channels[0]
    return [
        m
        for m in fake.channel_messages(channel)
        if m.attachments and m.embeds and prompt in m.embeds[0]["description"]
    ]


async def test_a_crash_before_the_progress_was_recorded_resumes_on_that_message(
    fake_discord: FakeDiscord, bot_env, simulator: SegmindSimulator, segmind_clock: FakeClock
):
    job_id, message_id = await crash_before_the_progress_was_recorded(
        fake_discord, bot_env, simulator
    )
    async with running_bot(bot_env, simulator, fake_discord) as bot:
        resumed = await bot.services.storage.jobs.get(job_id)
        assert resumed is not None and resumed.message_id == message_id
        assert resumed.state is not JobState.CANCELLED
        finish_segmind_jobs(segmind_clock)  # the first job
        await fake_discord.wait_until(lambda: clips_of(fake_discord, "the first one"), 10)
        await wait_for_status(fake_discord, message_id, "Queued at Segmind")
        finish_segmind_jobs(segmind_clock)  # the second, resumed on its own message
        await fake_discord.wait_until(lambda: clips_of(fake_discord, "the second one"), 10)
        await wait_for_title(fake_discord, message_id, FINISHED)

    assert len(clips_of(fake_discord, "the second one")) == 1
    assert [s["prompt"] for s in simulator.submits].count("the second one") == 1


async def test_an_unrecorded_acknowledgement_past_15_minutes_ends_at_no_cost_and_says_so(
    fake_discord: FakeDiscord, bot_env, simulator: SegmindSimulator
):
    job_id, _ = await crash_before_the_progress_was_recorded(fake_discord, bot_env, simulator)
    fake_discord.advance(TOKEN_LIFETIME + 1)  # the token can no longer read the message
    alice = fake_discord.world.member_named("alice")
    channel = fake_discord.world.guild.channels[0]
    async with running_bot(bot_env, simulator, fake_discord, idle=False) as bot:
        ended = await bot.services.storage.jobs.get(job_id)
        told = await fake_discord.wait_for_message(
            channel, lambda m: "nothing was spent" in m.content, timeout=10
        )
    assert ended is not None and ended.state is JobState.CANCELLED
    assert not ended.counts_toward_limit
    assert told.pinged_user_ids == {alice.id}
    assert [s["prompt"] for s in simulator.submits].count("the second one") == 0


async def test_a_discord_outage_at_start_does_not_hold_the_bot_back_while_it_tells_members(
    fake_discord: FakeDiscord, bot_env, simulator: SegmindSimulator
):
    _, _ = await crash_before_the_progress_was_recorded(fake_discord, bot_env, simulator)
    fake_discord.advance(TOKEN_LIFETIME + 1)  # the job ends unsent; its member is told
    # discord.py retries a 502 for about 25 s: told in the foreground, the bot would not
    # connect (and answer anyone) meanwhile.
    fake_discord.inject(Fault.server_error("POST /channels/*/messages", status=502, times=3))
    channel = fake_discord.world.guild.channels[0]

    def told() -> bool:
        return any("nothing was spent" in m.content for m in fake_discord.channel_messages(channel))

    async with running_bot(bot_env, simulator, fake_discord, idle=False) as bot:
        assert bot.is_ready() and not told()  # connected while the notice was still retried
        await fake_discord.wait_until(told, 15)  # and the member is told all the same
