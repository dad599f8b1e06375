"""Remix: the form under a clip, opened and submitted by members through Discord.

A submitted form is a new request like `/video`: through the limits, with its own progress
message. The form is answered from its signed custom id, so it works across a restart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from services.simulator import SegmindSimulator
from tests.bot.helpers import (
    CHANNEL_MESSAGE,
    MAKING,
    READY,
    answer,
    click,
    field,
    has_button,
    running_bot,
    title,
    video,
    wait_for_clip,
    wait_for_reply,
    wait_idle,
)
from tests.fakediscord import FakeDiscord, FakeMember, InteractionRecord, StoredMessage

MODAL = 9  # the interaction response that opens a form


async def clip_for(fake: FakeDiscord, member: FakeMember, options: dict[str, Any]) -> StoredMessage:
    record = await video(fake, member, options)
    return await wait_for_clip(fake, record.channel_id, viewer=member)


def form_values(opener: InteractionRecord) -> dict[str, str]:
    """What the form shows in each input, by the input's custom id."""
    assert opener.modal is not None, "the click was not answered with a form"
    values: dict[str, str] = {}
    for row in opener.modal["components"]:
        for item in row.get("components") or [row.get("component") or {}]:
            values[item["custom_id"]] = item.get("value", "")
    return values


def form_labels(opener: InteractionRecord) -> list[str]:
    assert opener.modal is not None
    return [
        item["label"]
        for row in opener.modal["components"]
        for item in row.get("components") or [row.get("component") or {}]
    ]


async def submit(
    fake: FakeDiscord, opener: InteractionRecord, values: dict[str, str]
) -> InteractionRecord:
    """Submit the form ``opener`` opened, inputs not named left as the bot filled them."""
    record = await fake.dispatch_modal_submit(opener, values)
    return await fake.wait_for_ack(record)


async def private_reply(fake: FakeDiscord, record: InteractionRecord) -> StoredMessage:
    return await wait_for_reply(fake, record, lambda m: bool(m.content))


async def test_remix_opens_a_form_prefilled_with_the_clips_request(bot, fake_discord: FakeDiscord):
    alice = fake_discord.world.member_named("alice")
    options = {
        "prompt": "a lighthouse in a storm",
        "negative_prompt": "people, text",
        "input_frames": 33,
        "frame_rate": 9,
        "steps": 30,
        "guidance_scale": 7.25,
        "seed": 4242,
    }
    clip = await clip_for(fake_discord, alice, options)

    opener = await click(fake_discord, clip, "remix", alice)

    assert opener.response_type == MODAL
    assert opener.modal is not None and opener.modal["title"] == "Remix this video"
    assert form_values(opener) == {
        "prompt": "a lighthouse in a storm",
        "negative": "people, text",
        "frames": "33 at 9",
        "tuning": "30, 7.25",
        "seed": "4242",
    }
    assert form_labels(opener)[2:] == [
        "Frames and frame rate (16-60 at 8-10)",
        "Steps and guidance (25-50, 5-10)",
        "Seed (empty for a random one)",
    ]


async def test_the_form_holds_a_full_length_hostile_prompt_uncut(bot, fake_discord: FakeDiscord):
    alice = fake_discord.world.member_named("alice")
    prompt = ("@everyone <@&1> **bold** `x` \u202e\U0001f98a " * 70)[:1999] + "!"
    clip = await clip_for(fake_discord, alice, {"prompt": prompt, "negative_prompt": ""})

    opener = await click(fake_discord, clip, "remix", alice)

    assert len(prompt) == 2000
    assert form_values(opener)["prompt"] == prompt
    assert form_values(opener)["negative"] == ""  # "avoid nothing" stays nothing


async def test_a_submitted_remix_is_a_new_job_with_its_own_progress_message(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, services
):
    alice = fake_discord.world.member_named("alice")
    clip = await clip_for(fake_discord, alice, {"prompt": "a paper boat", "seed": 7})
    opener = await click(fake_discord, clip, "remix", alice)

    record = await submit(
        fake_discord,
        opener,
        {
            "prompt": "a paper boat in the rain",
            "negative": "",
            "frames": "40 at 10",
            "tuning": "28, 5.5",
            "seed": "",
        },
    )

    progress = answer(fake_discord, record)
    assert record.response_type == CHANNEL_MESSAGE
    assert not progress.ephemeral and progress.id != clip.id
    assert title(progress) == MAKING
    remixed = await wait_for_clip(fake_discord, clip.channel_id, after=clip.id)
    assert title(remixed) == READY and remixed.pinged_user_ids == {alice.id}
    await wait_idle(services.runner)
    _, second = simulator.submits
    assert {k: second[k] for k in ("prompt", "negative_prompt", "input_frames", "frame_rate")} == {
        "prompt": "a paper boat in the rain",
        "negative_prompt": "",
        "input_frames": 40,
        "frame_rate": 10,
    }
    assert second["steps"] == 28 and second["guidance_scale"] == 5.5
    assert second["seed"] != 7  # left empty: a random seed, shown on the clip
    assert field(remixed, "Seed") == f"`{second['seed']}`"
    job = await services.storage.jobs.get(2)
    assert job is not None and job.parent_job_id == 1 and job.user_id == alice.id


async def test_an_unchanged_form_keeps_the_seed(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, services
):
    alice = fake_discord.world.member_named("alice")
    clip = await clip_for(fake_discord, alice, {"prompt": "a kite", "seed": 99, "steps": 31})
    opener = await click(fake_discord, clip, "remix", alice)

    await submit(fake_discord, opener, {"prompt": "a red kite"})

    await wait_for_clip(fake_discord, clip.channel_id, after=clip.id)
    await wait_idle(services.runner)
    assert simulator.submits[1]["seed"] == 99 and simulator.submits[1]["steps"] == 31


async def test_a_form_sent_back_unchanged_offers_the_clip_and_spends_nothing(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, services
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.guild.add_member("bob")
    clip = await clip_for(fake_discord, alice, {"prompt": "a lantern", "seed": 5})
    opener = await click(fake_discord, clip, "remix", bob)

    record = await submit(fake_discord, opener, {})
    offer = await wait_for_reply(fake_discord, record, lambda m: has_button(m, "anew") is not None)

    assert offer.ephemeral and offer.visible_to == {bob.id}
    link = f"https://discord.com/channels/{fake_discord.world.guild.id}/{clip.channel_id}/{clip.id}"
    assert link in offer.content and "nothing was spent" in offer.content
    await wait_idle(services.runner)
    assert len(simulator.submits) == 1

    await click(fake_discord, offer, "anew", bob)  # and a fresh one, when bob insists
    anew = await wait_for_clip(fake_discord, clip.channel_id, after=clip.id)
    assert anew.pinged_user_ids == {bob.id}
    await wait_idle(services.runner)
    assert [s["seed"] for s in simulator.submits] == [5, 5]


BAD_FIELDS = [
    ({"frames": "70 at 8"}, "**Frames and frame rate**: frames must be 16 to 60 (got 70)"),
    ({"frames": "49 at 12"}, "**Frames and frame rate**: the frame rate must be 8 to 10"),
    ({"frames": "forty-nine"}, "**Frames and frame rate**: write it like `49 at 8`"),
    ({"frames": "\u0664\u0669 at 8"}, "**Frames and frame rate**: write it like"),  # ٤٩
    ({"tuning": "20, 6"}, "**Steps and guidance**: steps must be 25 to 50 (got 20)"),
    ({"tuning": "45, 10.5"}, "**Steps and guidance**: guidance must be 5 to 10 (got 10.5)"),
    ({"tuning": "45, nan"}, "**Steps and guidance**: write it like `45, 6`"),
    ({"seed": "-1"}, "**Seed**: a whole number from 0 to 9007199254740991"),
    ({"seed": "9007199254740992"}, "**Seed**: a whole number from 0"),
    ({"seed": "1e5"}, "**Seed**"),
    ({"prompt": "\u200b\u200b\u3164"}, "The prompt has no visible text"),
    ({"negative": "\u200b"}, "The negative prompt has no visible text"),
]


async def test_a_bad_field_is_refused_privately_naming_it_and_nothing_is_made(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, services
):
    alice = fake_discord.world.member_named("alice")
    clip = await clip_for(fake_discord, alice, {"prompt": "a quiet harbour"})

    for values, wanted in BAD_FIELDS:
        opener = await click(fake_discord, clip, "remix", alice)
        record = await submit(fake_discord, opener, values)
        refusal = await private_reply(fake_discord, record)
        assert refusal.ephemeral and refusal.visible_to == {alice.id}, values
        assert wanted in refusal.content, (values, refusal.content)

    await wait_idle(services.runner)
    assert len(simulator.submits) == 1
    assert await services.storage.jobs.get(2) is None  # nothing stored, nothing counted
    public = fake_discord.channel_messages(clip.channel_id)
    assert [m.id for m in public if m.embeds and m.id > clip.id] == []


async def test_a_double_submit_of_one_form_makes_one_job(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, services
):
    alice = fake_discord.world.member_named("alice")
    clip = await clip_for(fake_discord, alice, {"prompt": "a windmill"})
    opener = await click(fake_discord, clip, "remix", alice)
    values = {"prompt": "a windmill at dusk", "seed": ""}

    first = await fake_discord.dispatch_modal_submit(opener, values)
    second = await fake_discord.dispatch_modal_submit(opener, values)
    await fake_discord.wait_for_ack(first)
    await fake_discord.wait_for_ack(second)

    answers = [await wait_for_reply(fake_discord, r, lambda m: True) for r in (first, second)]
    assert sorted(title(m) or m.content[:14] for m in answers) == [MAKING, "You just asked"]
    repeat = next(m for m in answers if "same video" in m.content)
    assert repeat.ephemeral and "nothing more is spent" in repeat.content
    await wait_for_clip(fake_discord, clip.channel_id, after=clip.id)
    await wait_idle(services.runner)
    assert [s["prompt"] for s in simulator.submits] == ["a windmill", "a windmill at dusk"]


async def test_another_member_remixes_a_public_clip_against_their_own_limit(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, services
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.guild.add_member("bob")
    mod = fake_discord.world.member_named("mod")
    limit = await fake_discord.dispatch_slash_command(
        "videolimit set", {"user": bob, "count": 1, "period": "6h"}, user=mod
    )
    await fake_discord.wait_for_ack(limit)
    clip = await clip_for(fake_discord, alice, {"prompt": "alice's fox"})

    opener = await click(fake_discord, clip, "remix", bob)
    admitted = await submit(fake_discord, opener, {"prompt": "bob's fox"})
    bobs = await wait_for_clip(fake_discord, clip.channel_id, after=clip.id)
    again = await click(fake_discord, clip, "remix", bob)
    refused = await submit(fake_discord, again, {"prompt": "bob's second fox"})
    refusal = await private_reply(fake_discord, refused)

    assert not answer(fake_discord, admitted).ephemeral
    assert bobs.pinged_user_ids == {bob.id}  # the remix is bob's clip
    job = await services.storage.jobs.get(2)
    assert job is not None and job.user_id == bob.id and job.parent_job_id == 1
    assert refusal.ephemeral and refusal.visible_to == {bob.id}
    assert "your personal limit: 1 clip per 6 hours" in refusal.content
    assert re.search(r"<t:\d+:R>", refusal.content), refusal.content
    await wait_idle(services.runner)
    assert [s["prompt"] for s in simulator.submits] == ["alice's fox", "bob's fox"]


async def test_a_member_at_their_limit_is_refused_like_video(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, services
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    limit = await fake_discord.dispatch_slash_command(
        "videolimit set", {"user": alice, "count": 1, "period": "1d"}, user=mod
    )
    await fake_discord.wait_for_ack(limit)
    clip = await clip_for(fake_discord, alice, {"prompt": "only one today"})

    opener = await click(fake_discord, clip, "remix", alice)
    record = await submit(fake_discord, opener, {"prompt": "one more, please"})
    refusal = await private_reply(fake_discord, record)

    assert refusal.ephemeral and refusal.visible_to == {alice.id}
    assert "your personal limit: 1 clip per day" in refusal.content
    await wait_idle(services.runner)
    assert len(simulator.submits) == 1


async def test_only_the_requester_may_remix_a_private_clip(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, services
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.guild.add_member("bob")
    private = await clip_for(fake_discord, alice, {"prompt": "a diary entry", "private": True})
    share = await click(fake_discord, private, "share", alice)
    shared = await wait_for_reply(fake_discord, share, lambda m: bool(m.attachments))

    refused = await click(fake_discord, shared, "remix", bob)
    refusal = await private_reply(fake_discord, refused)
    assert refused.response_type == CHANNEL_MESSAGE and refused.modal is None
    assert refusal.ephemeral and refusal.visible_to == {bob.id}
    assert "only the person who made it can remix it" in refusal.content
    assert "diary" not in refusal.content

    opener = await click(fake_discord, private, "remix", alice)
    record = await submit(fake_discord, opener, {"prompt": "a diary entry, later"})
    progress = answer(fake_discord, record)
    assert progress.ephemeral and progress.visible_to == {alice.id}  # stays private
    await wait_for_clip(fake_discord, private.channel_id, viewer=alice, after=shared.id)
    await wait_idle(services.runner)
    assert [s["prompt"] for s in simulator.submits] == ["a diary entry", "a diary entry, later"]


async def test_a_form_opened_before_a_restart_is_answered_after_it(
    fake_discord: FakeDiscord, bot_env, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    async with running_bot(bot_env, simulator, fake_discord):
        clip = await clip_for(fake_discord, alice, {"prompt": "before the restart"})
        opener = await click(fake_discord, clip, "remix", alice)

    async with running_bot(bot_env, simulator, fake_discord):
        record = await submit(fake_discord, opener, {"prompt": "after the restart"})
        assert title(answer(fake_discord, record)) == MAKING
        await wait_for_clip(fake_discord, clip.channel_id, after=clip.id)

    assert [s["prompt"] for s in simulator.submits] == ["before the restart", "after the restart"]


async def test_a_form_from_another_database_makes_nothing(
    fake_discord: FakeDiscord, bot_env, simulator: SegmindSimulator, tmp_path: Path
):
    alice = fake_discord.world.member_named("alice")
    async with running_bot(bot_env, simulator, fake_discord):
        clip = await clip_for(fake_discord, alice, {"prompt": "an old clip"})
        opener = await click(fake_discord, clip, "remix", alice)

    fresh = {**bot_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh' / 'bot.db'}"}
    async with running_bot(fresh, simulator, fake_discord):
        await video(fake_discord, alice, {"prompt": "job one of the new database"})
        # Its job #1 is at Segmind: the old form names a job #1 of the other database.
        await fake_discord.wait_until(lambda: len(simulator.submits) == 2, timeout=10)
        record = await submit(fake_discord, opener, {"prompt": "a forged remix"})
        refusal = await private_reply(fake_discord, record)

    assert refusal.ephemeral and "no longer known" in refusal.content
    assert [s["prompt"] for s in simulator.submits] == [
        "an old clip",
        "job one of the new database",
    ]
