"""One click, one clip: a double-clicked Re-roll or a command sent twice makes one job.

The second of two identical requests moments apart is answered privately with a pointer
to the first; nothing more reaches Segmind, and nothing more counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from services.simulator import SegmindSimulator
from tests.bot.helpers import (
    MAKING,
    has_button,
    title,
    video,
    wait_for_clip,
    wait_for_reply,
    wait_idle,
)
from tests.fakediscord import FakeDiscord, FakeMember, InteractionRecord, StoredMessage

POINTER = "You just asked for this same video"


async def first_clip(fake: FakeDiscord, member: FakeMember, prompt: str) -> StoredMessage:
    record = await video(fake, member, {"prompt": prompt, "seed": 7})
    return await wait_for_clip(fake, record.channel_id)


async def at_once(
    fake: FakeDiscord, *dispatches: Awaitable[InteractionRecord]
) -> list[InteractionRecord]:
    """Interactions dispatched together, each returned once the bot acknowledged it."""
    records = await asyncio.gather(*dispatches)
    return list(await asyncio.gather(*(fake.wait_for_ack(r) for r in records)))


def pointer_or_progress(fake: FakeDiscord, record: InteractionRecord) -> StoredMessage | None:
    """The settled answer to ``record``: a progress message or a pointer, else None."""
    ids = [record.original_message_id, *record.followup_ids]
    messages = [fake.message(i) for i in ids if i is not None]
    return next(
        (m for m in messages if not m.loading and (POINTER in m.content or title(m) == MAKING)),
        None,
    )


async def answers(fake: FakeDiscord, records: list[InteractionRecord]) -> list[StoredMessage]:
    """Each interaction's settled answer: its progress message or the pointer to another."""

    def settled() -> list[StoredMessage] | None:
        shown = [pointer_or_progress(fake, r) for r in records]
        return [m for m in shown if m is not None] if all(shown) else None

    return await fake.wait_until(settled, 10)


async def test_a_double_clicked_reroll_makes_one_job_and_the_second_click_hears_of_it(
    bot, fake_discord: FakeDiscord, services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    clip = await first_clip(fake_discord, alice, "a paper boat on a river")
    reroll = has_button(clip, "reroll")
    assert reroll is not None

    clicks = await at_once(
        fake_discord,
        fake_discord.dispatch_component(clip, reroll, user=alice),
        fake_discord.dispatch_component(clip, reroll, user=alice),
    )
    shown = await answers(fake_discord, clicks)

    [progress] = [m for m in shown if title(m) == MAKING]
    [pointer] = [m for m in shown if POINTER in m.content]
    assert not progress.ephemeral  # the one new job's public progress message
    assert pointer.ephemeral and pointer.visible_to == {alice.id}
    assert "nothing more is spent" in pointer.content
    await wait_for_clip(fake_discord, clip.channel_id, after=clip.id)
    await wait_idle(services.runner)
    assert len(simulator.submits) == 2  # the first clip and one re-roll
    jobs = await services.storage.jobs.recent(fake_discord.world.guild.id)
    assert len(jobs) == 2


async def test_a_second_click_after_the_first_is_shown_links_to_its_progress(
    bot, fake_discord: FakeDiscord, services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    clip = await first_clip(fake_discord, alice, "a kite over the dunes")
    reroll = has_button(clip, "reroll")
    assert reroll is not None

    [first] = await at_once(fake_discord, fake_discord.dispatch_component(clip, reroll, user=alice))
    [progress] = await answers(fake_discord, [first])
    [second] = await at_once(
        fake_discord, fake_discord.dispatch_component(clip, reroll, user=alice)
    )
    pointer = await wait_for_reply(fake_discord, second, lambda m: POINTER in m.content)

    guild_id = fake_discord.world.guild.id
    link = f"https://discord.com/channels/{guild_id}/{clip.channel_id}/{progress.id}"
    assert pointer.ephemeral and pointer.visible_to == {alice.id}
    assert link in pointer.content
    await wait_idle(services.runner)
    assert len(simulator.submits) == 2


async def test_the_same_video_command_sent_twice_at_once_makes_one_job(
    bot, fake_discord: FakeDiscord, services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    options = {"prompt": "a lantern in the fog", "steps": 30}  # no seed: each draws its own

    commands = await at_once(
        fake_discord,
        fake_discord.dispatch_slash_command("video", options, user=alice),
        fake_discord.dispatch_slash_command("video", options, user=alice),
    )
    shown = await answers(fake_discord, commands)

    assert sorted(title(m) == MAKING for m in shown) == [False, True]
    [pointer] = [m for m in shown if POINTER in m.content]
    assert pointer.ephemeral and pointer.visible_to == {alice.id}
    await wait_for_clip(fake_discord, commands[0].channel_id)
    await wait_idle(services.runner)
    assert len(simulator.submits) == 1


async def test_two_different_requests_at_once_are_both_made(
    bot, fake_discord: FakeDiscord, services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    commands = await at_once(
        fake_discord,
        fake_discord.dispatch_slash_command("video", {"prompt": "a red kite"}, user=alice),
        fake_discord.dispatch_slash_command("video", {"prompt": "a blue kite"}, user=alice),
    )
    shown = await answers(fake_discord, commands)

    assert [title(m) for m in shown] == [MAKING, MAKING]
    first = await wait_for_clip(fake_discord, commands[0].channel_id)
    await wait_for_clip(fake_discord, commands[0].channel_id, after=first.id)
    await wait_idle(services.runner)
    assert sorted(s["prompt"] for s in simulator.submits) == ["a blue kite", "a red kite"]
