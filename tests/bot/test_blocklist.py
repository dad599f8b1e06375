"""`/videolimit blocklist` as moderators use it and members meet it, over the wire."""

from __future__ import annotations

import logging
import re

import pytest

from services.simulator import SegmindSimulator
from tests.bot.helpers import (
    click,
    title,
    video,
    wait_for_clip,
    wait_for_reply,
    wait_idle,
)
from tests.bot.test_moderation import only_for, settled_answer, videolimit
from tests.fakediscord import FakeDiscord, FakeMember, StoredMessage

# "dragon" as an evader types it: a Cyrillic a, a fullwidth O and a zero-width space.
EVASION = "DR\N{CYRILLIC SMALL LETTER A}G\uff2f\u200bN"


def embed_descriptions(message: StoredMessage) -> str:
    return "\n".join(e.get("description") or "" for e in message.embeds)


async def block(fake: FakeDiscord, term: str) -> StoredMessage:
    mod = fake.world.member_named("mod")
    return await videolimit(fake, "blocklist add", {"term": term}, mod)


async def refused_video(fake: FakeDiscord, member: FakeMember, prompt: str) -> StoredMessage:
    record = await video(fake, member, {"prompt": prompt})
    return await settled_answer(fake, record)


async def test_a_look_alike_evasion_is_refused_privately_without_the_term_and_nothing_is_sent(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    added = await block(fake_discord, "dragon")
    assert only_for(added, mod)
    assert "`dragon`" in added.content and "1 of 200 terms" in added.content

    refusal = await refused_video(fake_discord, alice, f"a {EVASION} over the hills")

    assert only_for(refusal, alice)
    assert "uses a word or pattern this server does not allow" in refusal.content
    assert "nothing was spent" in refusal.content
    assert "dragon" not in refusal.content.lower()
    assert title(refusal) is None and not refusal.components
    assert fake_discord.channel_messages(refusal.channel_id) == []
    assert simulator.submit_attempts == 0


async def test_a_blocked_negative_prompt_is_refused_too(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    await block(fake_discord, "/dr[a4]g[o0]n/")
    record = await video(fake_discord, alice, {"prompt": "a castle", "negative_prompt": "dr4gon"})
    refusal = await settled_answer(fake_discord, record)
    assert only_for(refusal, alice)
    assert refusal.content.startswith("Your negative prompt uses a word or pattern"), (
        refusal.content
    )
    assert simulator.submit_attempts == 0


async def test_a_term_in_the_default_negative_prompt_warns_the_moderator_and_tells_the_member(
    bot, fake_discord: FakeDiscord, services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    default = services.settings.default_negative_prompt
    word = default.replace(",", " ").split()[-1]  # "blurry" in "low quality, blurry"
    added = await block(fake_discord, word)
    assert "in their prompt or negative prompt are now refused" in added.content
    assert "default negative prompt has this term too" in added.content

    refusal = await refused_video(fake_discord, alice, "a castle at dawn")

    assert only_for(refusal, alice)
    assert refusal.content.startswith("This server's default negative prompt"), refusal.content
    assert "tell a moderator" in refusal.content and word not in refusal.content.lower()
    assert simulator.submit_attempts == 0
    quiet = await block(fake_discord, "dragon")
    assert "Warning" not in quiet.content


async def test_rerolling_a_clip_whose_prompt_is_now_blocked_is_refused_privately(
    bot, fake_discord: FakeDiscord, services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": "a dragon castle", "seed": 7})
    clip = await wait_for_clip(fake_discord, record.channel_id)
    await block(fake_discord, "dragon")

    reroll = await click(fake_discord, clip, "reroll", alice)
    refusal = await wait_for_reply(fake_discord, reroll, lambda m: bool(m.content))

    assert only_for(refusal, alice)
    assert "does not allow" in refusal.content and "dragon" not in refusal.content
    await wait_idle(services.runner)
    assert [s["prompt"] for s in simulator.submits] == ["a dragon castle"]


async def test_the_same_seeded_request_once_blocked_is_refused_not_answered_with_the_old_clip(
    bot, fake_discord: FakeDiscord, services, simulator: SegmindSimulator
):
    # The same seed and settings would be answered with the clip already made: not once
    # its prompt is blocked (nor outside the allowed channels).
    alice = fake_discord.world.member_named("alice")
    asked = {"prompt": "a dragon castle", "seed": 7}
    await wait_for_clip(fake_discord, (await video(fake_discord, alice, asked)).channel_id)
    await block(fake_discord, "dragon")

    again = await video(fake_discord, alice, asked)
    refusal = await wait_for_reply(fake_discord, again, lambda m: bool(m.content))

    assert only_for(refusal, alice)
    assert "does not allow" in refusal.content and "dragon" not in refusal.content
    assert not refusal.attachments and "/channels/" not in refusal.content
    assert len(simulator.submits) == 1


async def test_a_member_cannot_add_a_term_even_when_the_server_shows_them_the_command(
    bot, fake_discord: FakeDiscord
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    refusal = await videolimit(
        fake_discord, "blocklist add", {"term": "castle"}, alice, bypass_permissions=True
    )
    assert only_for(refusal, alice)
    assert "Only moderators can use `/videolimit`" in refusal.content
    shown = await videolimit(fake_discord, "blocklist show", {}, mod)
    assert "`castle`" not in embed_descriptions(shown)
    assert "0 terms" in embed_descriptions(shown)


async def test_show_lists_the_terms_and_the_latest_refusals_with_who_where_and_when(
    bot, fake_discord: FakeDiscord
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await block(fake_discord, "dragon")
    await block(fake_discord, "/b[a4]d idea/")
    refusal = await refused_video(fake_discord, alice, f"the {EVASION}")

    shown = await videolimit(fake_discord, "blocklist show", {}, mod)

    assert only_for(shown, mod)
    text = embed_descriptions(shown)
    assert "2 terms of at most 200" in text
    assert re.search(rf"`dragon` · added by <@{mod.id}> <t:\d+:R>", text), text
    assert "`/b[a4]d idea/`" in text
    assert re.search(rf"<t:\d+:R> <@{alice.id}> in <#{refusal.channel_id}>: `dragon`", text), text
    assert not shown.pinged_user_ids


async def test_removing_a_term_lets_the_prompt_through_and_history_tells_both_changes(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await block(fake_discord, "dragon")
    await refused_video(fake_discord, alice, "a dragon")

    removed = await videolimit(fake_discord, "blocklist remove", {"term": "Dragon"}, mod)
    assert only_for(removed, mod)
    assert "Removed `dragon` from the blocklist" in removed.content
    record = await video(fake_discord, alice, {"prompt": "a dragon"})
    await wait_for_clip(fake_discord, record.channel_id)
    assert [s["prompt"] for s in simulator.submits] == ["a dragon"]

    history = await videolimit(fake_discord, "history", {}, mod)
    lines = embed_descriptions(history).splitlines()
    assert lines[0].endswith(f"<@{mod.id}> removed `dragon` from the blocklist"), lines
    assert lines[1].endswith(f"<@{mod.id}> added `dragon` to the blocklist"), lines


async def test_a_duplicate_a_bad_pattern_and_a_term_not_listed_get_clear_private_answers(
    bot, fake_discord: FakeDiscord
):
    mod = fake_discord.world.member_named("mod")
    await block(fake_discord, "dragon")

    duplicate = await block(fake_discord, EVASION)
    invalid = await block(fake_discord, "/(unclosed/")
    unsupported = await block(fake_discord, "/(dr)agon\\1/")
    huge = await block(fake_discord, "/x{1000000000}/")
    missing = await videolimit(fake_discord, "blocklist remove", {"term": "castle"}, mod)

    for answer in (duplicate, invalid, unsupported, huge, missing):
        assert only_for(answer, mod)
        assert "othing was changed" in answer.content, answer.content
    assert "`dragon` is already on the blocklist" in duplicate.content
    assert "not a valid regular expression" in invalid.content
    assert "Backreferences (`\\1`) are not supported" in unsupported.content
    assert "at most 1000" in huge.content
    assert "`castle` is not on the blocklist" in missing.content


async def test_terms_in_a_moderators_refused_change_stay_out_of_the_log(
    bot, fake_discord: FakeDiscord, caplog: pytest.LogCaptureFixture
):
    mod = fake_discord.world.member_named("mod")
    # INFO and up: what an operator keeps (DEBUG has discord.py's raw gateway events).
    caplog.set_level(logging.INFO)
    await block(fake_discord, "zanzibar")

    answers = [
        await block(fake_discord, "Zanzibar"),
        await block(fake_discord, "/(zanzibar/"),
        await videolimit(fake_discord, "blocklist remove", {"term": "quixotic"}, mod),
    ]

    assert ["othing was changed" in a.content for a in answers] == [True] * 3
    assert "`zanzibar` is already" in answers[0].content and "quixotic" in answers[2].content
    logged = "\n".join(r.getMessage() for r in caplog.records).casefold()
    assert "refused" in logged  # the refusals were logged, without their terms
    assert "zanzibar" not in logged and "quixotic" not in logged
