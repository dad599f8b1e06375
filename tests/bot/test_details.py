"""Details and file names over the wire: what a member reads, and what the file is called."""

from __future__ import annotations

import re

from services.simulator import SegmindSimulator
from tests.bot.helpers import (
    DEFERRED_CHANNEL_MESSAGE,
    TIMEOUT,
    click,
    embed_text,
    video,
    wait_for_clip,
    wait_for_reply,
)
from tests.fakediscord import FakeDiscord, FakeMember, InteractionRecord, StoredMessage


async def clip_for(fake: FakeDiscord, member: FakeMember, options: dict) -> StoredMessage:
    record = await video(fake, member, options)
    return await wait_for_clip(fake, record.channel_id, viewer=member)


async def details_for(fake: FakeDiscord, record: InteractionRecord) -> list[StoredMessage]:
    """Every message of the Details answer, once the negative prompt's card has arrived."""

    def parts() -> list[StoredMessage] | None:
        # After a defer, the first follow-up is the original answer itself: listed once.
        ids = dict.fromkeys([record.original_message_id, *record.followup_ids])
        messages = [fake.message(i) for i in ids if i is not None]
        done = [m for m in messages if not m.loading and m.embeds]
        titles = [embed.get("title") for m in done for embed in m.embeds]
        return done if "Negative prompt" in titles else None

    return await fake.wait_until(parts, TIMEOUT)


def unescaped(text: str) -> str:
    """What a member reads: Discord shows ``\\*`` as ``*``; the zero-width space is invisible."""
    return re.sub(r"\\(.)", r"\1", text).replace("\u200b", "")


async def test_any_member_reads_a_public_clips_details_privately(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.guild.add_member("bob")
    prompt = "a **bold** lighthouse for @everyone and <@123456789012345678>"
    clip = await clip_for(
        fake_discord,
        alice,
        {"prompt": prompt, "negative_prompt": "fog, _rain_", "seed": 11, "steps": 30},
    )

    record = await click(fake_discord, clip, "details", bob)
    parts = await details_for(fake_discord, record)

    assert record.response_type == DEFERRED_CHANNEL_MESSAGE
    assert all(m.ephemeral and m.visible_to == {bob.id} for m in parts)
    assert all(m.pinged_user_ids == frozenset() for m in parts)
    card = embed_text(parts[0])
    assert unescaped(parts[0].embeds[0]["description"]) == prompt
    assert "@everyone" not in card and "<@123456789012345678>" not in card
    assert unescaped(parts[-1].embeds[-1]["description"]) == "fog, _rain_"
    fields = {f["name"]: f["value"] for f in parts[0].embeds[0]["fields"]}
    assert fields["Seed"] == "`11`" and fields["Steps"] == "30"
    assert fields["Input frames"] == "49" and fields["Frame rate"] == "8 fps"
    assert fields["Guidance scale"] == "6"
    assert fields["Cost"] == "$0.36, as Segmind reported it"  # the simulator's figure
    assert {"Queue", "Generation", "Delivery"} <= fields.keys()
    assert fields["Delivery"] not in ("not started", "being posted")
    assert len(simulator.submits) == 1  # reading details spends nothing


async def test_a_2000_character_prompt_and_negative_prompt_both_arrive_whole(
    bot, fake_discord: FakeDiscord
):
    """Every character escaped doubles both texts past one message's 6000: none is cut."""
    alice = fake_discord.world.member_named("alice")
    prompt = "*_" * 1000
    negative = "~|" * 1000
    clip = await clip_for(fake_discord, alice, {"prompt": prompt, "negative_prompt": negative})

    record = await click(fake_discord, clip, "details", alice)
    parts = await details_for(fake_discord, record)

    descriptions = [embed["description"] for m in parts for embed in m.embeds]
    assert [unescaped(d) for d in descriptions] == [prompt, negative]
    assert all(m.ephemeral and m.visible_to == {alice.id} for m in parts)


async def test_details_of_a_private_clip_are_for_its_requester_alone_even_once_shared(
    bot, fake_discord: FakeDiscord
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.guild.add_member("bob")
    mod = fake_discord.world.member_named("mod")
    prompt = "a secret garden " + "with a hidden gate " * 100
    private = await clip_for(fake_discord, alice, {"prompt": prompt, "private": True})
    share = await click(fake_discord, private, "share", alice)
    shared = await wait_for_reply(fake_discord, share, lambda m: bool(m.attachments))

    for outsider in (bob, mod):
        record = await click(fake_discord, shared, "details", outsider)
        refusal = await wait_for_reply(fake_discord, record, lambda m: "private" in m.content)
        assert refusal.ephemeral and refusal.visible_to == {outsider.id}
        assert not refusal.embeds and "garden" not in refusal.content

    own = await click(fake_discord, private, "details", alice)
    parts = await details_for(fake_discord, own)
    assert unescaped(parts[0].embeds[0]["description"]) == prompt.strip()
    assert all(m.visible_to == {alice.id} for m in parts)


async def test_the_clip_is_named_from_its_prompt_whatever_the_prompt_holds(
    bot, fake_discord: FakeDiscord
):
    alice = fake_discord.world.member_named("alice")
    hostile = "../../<@123456789012345678> **CON** \u202egnp.exe\u200b 🐱 “Crème brûlée” at dawn"

    clip = await clip_for(fake_discord, alice, {"prompt": hostile})
    again = await video(fake_discord, alice, {"prompt": "🐱🌊"})
    plain = await wait_for_clip(fake_discord, again.channel_id, after=clip.id)

    assert [a.filename for a in clip.attachments] == [
        "123456789012345678-con-gnp-exe-creme-1.mp4"  # cut to 40, at a word
    ]
    assert [a.filename for a in plain.attachments] == ["video-2.mp4"]
