"""/video as members live it: acknowledged at once, calm progress in place, then the clip or why.

Segmind is held on its own clock here, so each scenario decides when a job leaves Segmind's
queue and when it completes; the bot's progress edits are paced at PROGRESS_INTERVAL
instead of production's 5 s so the scenarios see them without waiting.
"""

from __future__ import annotations

import itertools

import pytest

from cogs.videobot import Timings
from services.simulator import FAIL_MARKER_ERROR, SegmindSimulator
from tests.bot.conftest import SAMPLE
from tests.bot.helpers import (
    CANCELLED,
    CHANNEL_MESSAGE,
    FAILED,
    FINISHED,
    MAKING,
    READY,
    SEGMIND_QUEUE_SECONDS,
    TIMEOUT,
    answer,
    click,
    embed_text,
    field,
    finish_segmind_jobs,
    has_button,
    revision_statuses,
    start_held_simulator,
    title,
    video,
    wait_for_clip,
    wait_for_reply,
    wait_for_status,
    wait_for_title,
    wait_idle,
)
from tests.conftest import SimulatorFactory
from tests.fakeclock import FakeClock
from tests.fakediscord import FakeDiscord, Perm

PROGRESS_INTERVAL = 0.3


@pytest.fixture
def bot_timings() -> Timings:
    """Progress edits paced at PROGRESS_INTERVAL, so scenarios see them without waiting 5 s."""
    return Timings(progress_edit_interval=PROGRESS_INTERVAL)


@pytest.fixture
async def simulator(
    simulator_factory: SimulatorFactory, segmind_clock: FakeClock
) -> SegmindSimulator:
    """Segmind holding each job in each state until the scenario advances ``segmind_clock``."""
    return await start_held_simulator(simulator_factory, segmind_clock)


async def test_video_is_acknowledged_within_three_seconds_with_a_public_progress_message(
    bot, fake_discord: FakeDiscord
):
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": "a lighthouse in a storm", "seed": 11})

    assert record.response_type == CHANNEL_MESSAGE
    assert record.ack_latency is not None and record.ack_latency < 3.0
    assert fake_discord.unanswered_interactions() == []
    progress = answer(fake_discord, record)
    everyone_sees = fake_discord.channel_messages(record.channel_id)
    assert [m.id for m in everyone_sees] == [progress.id]
    assert title(progress) == MAKING
    assert "a lighthouse in a storm" in progress.embeds[0]["description"]
    assert "seed 11" in progress.embeds[0]["footer"]["text"]
    assert has_button(progress, "cancel")
    assert progress.pinged_user_ids == frozenset()


async def test_progress_is_edited_in_place_then_the_clip_is_attached_with_prompt_and_seed(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, segmind_clock: FakeClock
):
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": "a red fox in the snow", "steps": 30})
    progress_id = record.original_message_id
    assert progress_id is not None

    await wait_for_status(fake_discord, progress_id, "Queued at Segmind")
    segmind_clock.advance(SEGMIND_QUEUE_SECONDS)
    progress = await wait_for_status(fake_discord, progress_id, "Generating")
    assert "▰" in field(progress, "Progress") or "▱" in field(progress, "Progress")
    finish_segmind_jobs(segmind_clock)
    clip = await wait_for_clip(fake_discord, record.channel_id)
    finished = await wait_for_title(fake_discord, progress_id, FINISHED)
    guild_id = fake_discord.world.guild.id
    jump = f"https://discord.com/channels/{guild_id}/{record.channel_id}/{clip.id}"
    assert f"[Jump to the video]({jump})" in field(finished, "Status")

    # The clip: the simulator's exact bytes, the prompt, the seed Segmind was given, one ping.
    seed = simulator.submits[0]["seed"]
    assert [a.data for a in clip.attachments] == [SAMPLE]
    assert title(clip) == READY
    assert "a red fox in the snow" in clip.embeds[0]["description"]
    assert field(clip, "Seed") == f"`{seed}`"
    assert field(clip, "Steps") == "30"
    assert clip.pinged_user_ids == {alice.id}
    assert has_button(clip, "reroll") and has_button(clip, "delete")
    # One progress message, edited in place through Segmind's states, calmly, pinging no one.
    progress = fake_discord.message(progress_id)
    statuses = revision_statuses(progress)
    assert statuses.index("Queued at Segmind") < statuses.index("Generating"), statuses
    progress_edits = [r.at for r in progress.revisions if r.embeds[0]["title"] == MAKING]
    gaps = [later - earlier for earlier, later in itertools.pairwise(progress_edits)]
    # Half the interval allows for network jitter; an unpaced bot edits milliseconds apart.
    assert gaps and min(gaps) >= PROGRESS_INTERVAL / 2, gaps
    assert progress.pinged_user_ids == frozenset()
    assert [m.id for m in fake_discord.channel_messages(record.channel_id)] == [
        progress_id,
        clip.id,
    ]
    assert len(simulator.submits) == 1


async def test_segmind_failure_text_that_echoes_markdown_is_shown_literally(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, segmind_clock: FakeClock
):
    simulator.fail_prompts_containing["[echo]"] = "Refused: **[click me](https://evil.example)**"
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": "an [echo] of a prompt"})
    await wait_for_status(fake_discord, record.original_message_id, "Queued at Segmind")

    segmind_clock.advance(SEGMIND_QUEUE_SECONDS)
    failed = await wait_for_title(fake_discord, record.original_message_id, FAILED)

    why = field(failed, "Why") or ""
    # Escaped as Discord reads it: no masked link, no bold.
    assert "\\[click me]" in why and "\\*\\*" in why
    assert "**" not in why.replace("\\*", "")


async def test_segmind_failure_is_shown_with_segminds_own_error_text(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, segmind_clock: FakeClock
):
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": "something [fail] worthy"})
    await wait_for_status(fake_discord, record.original_message_id, "Queued at Segmind")

    segmind_clock.advance(SEGMIND_QUEUE_SECONDS)
    failed = await wait_for_title(fake_discord, record.original_message_id, FAILED)

    assert FAIL_MARKER_ERROR in (field(failed, "Why") or "").replace("\\", "")
    # Markdown escapes (the prompt is shown literally) disappear when Discord renders it.
    assert "something [fail] worthy" in failed.embeds[0]["description"].replace("\\", "")
    assert not has_button(failed, "cancel")
    assert "counts toward your limit" in (field(failed, "Cost") or "")  # Segmind had started it
    # An edit does not notify, so one short line pings the requester, and only them.
    ping = await fake_discord.wait_for_message(
        record.channel_id, lambda m: "could not be made" in m.content, timeout=TIMEOUT
    )
    assert ping.pinged_user_ids == {alice.id}
    visible = fake_discord.channel_messages(record.channel_id)
    assert [m.id for m in visible] == [failed.id, ping.id]
    assert not any(m.attachments for m in visible)


async def test_mentions_in_a_prompt_ping_nobody_and_the_clip_pings_only_the_requester(
    bot, fake_discord: FakeDiscord, segmind_clock: FakeClock
):
    guild = fake_discord.world.guild
    artists = guild.add_role("Artists", mentionable=True)
    bob = guild.add_member("bob", roles=[artists])
    bot_role = next(r for r in guild.roles if r.bot_id == fake_discord.world.bot.id)
    bot_role.permissions |= Perm.MENTION_EVERYONE  # so a careless bot really could ping all
    alice = fake_discord.world.member_named("alice")
    prompt = f"@everyone @here look {artists.mention} and {bob.mention}"

    record = await video(fake_discord, alice, {"prompt": prompt})
    await wait_for_status(fake_discord, record.original_message_id, "Queued at Segmind")
    finish_segmind_jobs(segmind_clock)
    clip = await wait_for_clip(fake_discord, record.channel_id)
    await wait_for_title(fake_discord, record.original_message_id, FINISHED)

    assert fake_discord.pinged() == {clip.id: frozenset({alice.id})}
    assert not clip.mentions.everyone and clip.mentions.roles == frozenset()
    # The prompt is shown as text; the posts said "parse nothing, ping only the requester".
    assert "everyone" in embed_text(clip) and str(artists.id) in embed_text(clip)
    posts = (
        fake_discord.calls_to("POST /webhooks/*/*")
        + fake_discord.calls_to("POST /interactions/*/*/callback")
        + fake_discord.calls_to("POST /channels/*/messages")
    )
    for call in posts:
        body = call.json.get("data", call.json) if call.route.endswith("callback") else call.json
        assert body["allowed_mentions"]["parse"] == [], call
    clip_call = next(c for c in posts if c.files)
    assert [int(u) for u in clip_call.json["allowed_mentions"]["users"]] == [alice.id]


async def test_cancel_while_queued_submits_nothing_and_the_line_moves_up(
    bot,
    fake_discord: FakeDiscord,
    services,
    simulator: SegmindSimulator,
    segmind_clock: FakeClock,
):
    alice = fake_discord.world.member_named("alice")
    first = await video(fake_discord, alice, {"prompt": "the first clip"})
    await wait_for_status(fake_discord, first.original_message_id, "Queued at Segmind")
    ahead = await video(fake_discord, alice, {"prompt": "the second clip"})
    behind = await video(fake_discord, alice, {"prompt": "the third clip"})
    for waiting in (ahead, behind):  # one video per member at a time: not "in line"
        await wait_for_status(
            fake_discord, waiting.original_message_id, "Waiting for your other video to finish"
        )

    cancel = await click(fake_discord, answer(fake_discord, ahead), "cancel", alice)
    note = await wait_for_reply(fake_discord, cancel, lambda m: "Cancelled" in m.content)
    assert note.ephemeral and note.visible_to == {alice.id}
    assert "Nothing was spent" in note.content
    cancelled = await wait_for_title(fake_discord, ahead.original_message_id, CANCELLED)
    assert "cancelled" in (field(cancelled, "Why") or "")

    finish_segmind_jobs(segmind_clock)
    first_clip = await wait_for_clip(fake_discord, first.channel_id)
    await wait_for_status(fake_discord, behind.original_message_id, "Queued at Segmind")
    finish_segmind_jobs(segmind_clock)
    await wait_for_clip(fake_discord, first.channel_id, after=first_clip.id)
    await wait_idle(services.runner)
    behind_prompt = answer(fake_discord, behind).embeds[0]["description"]
    assert [s["prompt"] for s in simulator.submits] == ["the first clip", behind_prompt]
    assert behind_prompt == "the third clip"
    assert title(fake_discord.message(ahead.original_message_id)) == CANCELLED


async def test_cancel_clicked_the_moment_the_progress_appears_submits_nothing(
    bot,
    fake_discord: FakeDiscord,
    services,
    simulator: SegmindSimulator,
    segmind_clock: FakeClock,
):
    # The click can reach the bot before it has handed the job to its runner.
    alice = fake_discord.world.member_named("alice")
    first = await video(fake_discord, alice, {"prompt": "the first clip"})
    await wait_for_status(fake_discord, first.original_message_id, "Queued at Segmind")
    second = await video(fake_discord, alice, {"prompt": "the second clip"})

    cancel = await click(fake_discord, answer(fake_discord, second), "cancel", alice)
    note = await wait_for_reply(fake_discord, cancel, lambda m: bool(m.content))
    assert note.content.startswith("Cancelled.") and note.visible_to == {alice.id}
    await wait_for_title(fake_discord, second.original_message_id, CANCELLED)

    finish_segmind_jobs(segmind_clock)
    await wait_for_clip(fake_discord, first.channel_id)
    await wait_idle(services.runner)
    assert [s["prompt"] for s in simulator.submits] == ["the first clip"]
    clips = [m for m in fake_discord.channel_messages(first.channel_id) if m.attachments]
    assert len(clips) == 1


async def test_a_request_while_the_bot_stops_is_refused_privately_and_costs_nothing(
    bot, fake_discord: FakeDiscord, services, simulator: SegmindSimulator
):
    await services.runner.shutdown(timeout=1)  # SIGTERM arrived; Discord still delivers commands
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": "just too late"})
    note = answer(fake_discord, record)
    assert note.ephemeral and "restarting" in note.content
    assert await services.storage.jobs.recent(fake_discord.world.guild.id) == []
    assert simulator.submit_attempts == 0
