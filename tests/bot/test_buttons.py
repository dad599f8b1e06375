"""The buttons under a clip, clicked by members and moderators through Discord."""

from __future__ import annotations

import re

from services.simulator import SegmindSimulator
from tests.bot.conftest import SAMPLE
from tests.bot.helpers import (
    DEFERRED_UPDATE,
    READY,
    TIMEOUT,
    answer,
    click,
    field,
    has_button,
    title,
    video,
    wait_for_clip,
    wait_for_reply,
    wait_idle,
)
from tests.fakediscord import FakeDiscord, FakeMember, Fault, StoredMessage


async def first_clip(fake: FakeDiscord, member: FakeMember, prompt: str) -> StoredMessage:
    """``member`` asks for ``prompt`` and gets the clip in #general."""
    record = await video(fake, member, {"prompt": prompt, "seed": 7})
    return await wait_for_clip(fake, record.channel_id)


async def test_reroll_makes_a_second_clip_with_the_same_prompt_and_a_new_seed(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    clip = await first_clip(fake_discord, alice, "a paper boat on a river")

    reroll = await click(fake_discord, clip, "reroll", alice)
    rerolled = await wait_for_clip(fake_discord, clip.channel_id, after=clip.id)

    assert not answer(fake_discord, reroll).ephemeral  # its own public progress message
    assert [s["prompt"] for s in simulator.submits] == ["a paper boat on a river"] * 2
    first_seed, second_seed = (s["seed"] for s in simulator.submits)
    assert first_seed == 7 and second_seed != 7
    assert title(rerolled) == READY
    assert "a paper boat on a river" in rerolled.embeds[0]["description"]
    assert field(rerolled, "Seed") == f"`{second_seed}`"
    assert [a.data for a in rerolled.attachments] == [SAMPLE]
    assert rerolled.pinged_user_ids == {alice.id}
    assert not clip.deleted  # the first clip stays


async def test_reroll_past_the_members_limit_is_refused_privately_with_the_next_slot(
    bot, fake_discord: FakeDiscord, services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    limit = await fake_discord.dispatch_slash_command(
        "videolimit set", {"user": alice, "count": 1, "period": "6h"}, user=mod
    )
    await fake_discord.wait_for_ack(limit)
    clip = await first_clip(fake_discord, alice, "only one today")

    reroll = await click(fake_discord, clip, "reroll", alice)
    refusal = await wait_for_reply(fake_discord, reroll, lambda m: bool(m.content))

    assert refusal.ephemeral and refusal.visible_to == {alice.id}
    assert "your personal limit: 1 clip per 6 hours" in refusal.content
    assert re.search(r"<t:\d+:R>", refusal.content), refusal.content
    await wait_idle(services.runner)
    assert len(simulator.submits) == 1
    public = fake_discord.channel_messages(clip.channel_id)
    assert [m.id for m in public if title(m) == READY] == [clip.id]


async def test_the_requester_deletes_their_clip_for_everyone(bot, fake_discord: FakeDiscord):
    alice = fake_discord.world.member_named("alice")
    clip = await first_clip(fake_discord, alice, "a clip to regret")

    record = await click(fake_discord, clip, "delete", alice)

    assert record.response_type == DEFERRED_UPDATE
    await fake_discord.wait_until(lambda: clip.deleted, TIMEOUT)
    assert clip.id not in [m.id for m in fake_discord.channel_messages(clip.channel_id)]


async def test_another_member_may_not_delete_a_clip_but_a_moderator_may(
    bot, fake_discord: FakeDiscord
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.guild.add_member("bob")
    mod = fake_discord.world.member_named("mod")
    clip = await first_clip(fake_discord, alice, "mine, not yours")

    refused = await click(fake_discord, clip, "delete", bob)
    # The click is acknowledged invisibly first, so the refusal is a private follow-up.
    note = await wait_for_reply(fake_discord, refused, lambda m: m.id != clip.id and m.content)

    assert note.ephemeral and note.visible_to == {bob.id}
    assert "Only the person who asked for this video, or a moderator" in note.content
    assert not clip.deleted and has_button(clip, "delete")
    assert note.id not in [
        m.id for m in fake_discord.channel_messages(clip.channel_id, viewer=alice)
    ]

    await click(fake_discord, clip, "delete", mod)
    await fake_discord.wait_until(lambda: clip.deleted, TIMEOUT)


async def test_delete_still_works_when_the_click_token_cannot_reach_the_clip(
    bot, fake_discord: FakeDiscord
):
    """A clip posted as a plain channel message (after 15 minutes) is not the click's."""
    alice = fake_discord.world.member_named("alice")
    clip = await first_clip(fake_discord, alice, "posted late")
    fake_discord.inject(
        Fault.custom("DELETE /webhooks/*/*/messages/*", 404, 10008, "Unknown Message")
    )

    await click(fake_discord, clip, "delete", alice)

    await fake_discord.wait_until(lambda: clip.deleted, TIMEOUT)
    assert fake_discord.calls_to(f"DELETE /channels/{clip.channel_id}/messages/{clip.id}")
