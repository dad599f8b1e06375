"""Bad input over the wire: a member or moderator gets a private answer Discord accepts.

An invisible prompt is refused before anything reaches Segmind; a moderator's pasted wall
of text gets an answer within Discord's 2,000 characters instead of "thinking…" for ever.
"""

from __future__ import annotations

import pytest

from services.simulator import SegmindSimulator
from tests.bot.helpers import answer, video
from tests.fakediscord import FakeDiscord, FakeMember, InteractionRecord, StoredMessage

DISCORD_CONTENT_MAX = 2000


async def settled(fake: FakeDiscord, record: InteractionRecord) -> StoredMessage:
    """The interaction's answer once it says something (past any "thinking…" state)."""
    await fake.wait_for_ack(record)
    message = answer(fake, record)
    await fake.wait_until(lambda: not message.loading)
    return message


def only_for(message: StoredMessage, member: FakeMember) -> bool:
    return message.ephemeral and message.visible_to == {member.id}


@pytest.mark.parametrize(
    "options",
    [
        {"prompt": "\u200b\u200c\u200d\u2060\ufeff"},
        {"prompt": "\u3164\u2800 \u115f\u1160\uffa0"},
        {"prompt": "\u202e\u2066\u2069\x00"},
        {"prompt": "a lighthouse", "negative_prompt": "\u200b\u3164"},
    ],
    ids=["zero-width", "fillers-and-braille-blank", "bidi-and-nul", "invisible-negative"],
)
async def test_an_invisible_prompt_is_refused_privately_and_nothing_reaches_segmind(
    options, bot, fake_discord: FakeDiscord, services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, options)

    refusal = await settled(fake_discord, record)
    assert only_for(refusal, alice)
    assert "no visible text" in refusal.content
    assert fake_discord.channel_messages(record.channel_id) == []  # nobody else sees a thing
    assert simulator.submit_attempts == 0
    assert await services.storage.jobs.recent(fake_discord.world.guild.id) == []


async def test_an_empty_negative_prompt_is_still_a_request(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": "a lighthouse", "negative_prompt": ""})

    progress = answer(fake_discord, record)
    assert not progress.ephemeral and progress.embeds  # the public progress message
    await fake_discord.wait_until(lambda: simulator.submits, timeout=10)
    assert simulator.submits[0]["negative_prompt"] == ""


@pytest.mark.parametrize("subcommand", ["set", "usage"])
async def test_a_2500_character_period_gets_a_private_answer_within_discords_limits(
    subcommand, bot, fake_discord: FakeDiscord
):
    mod = fake_discord.world.member_named("mod")
    alice = fake_discord.world.member_named("alice")
    period = "9" * 2500
    options = {"user": alice, "period": period}
    if subcommand == "set":
        options["count"] = 3
    record = await fake_discord.dispatch_slash_command(
        f"videolimit {subcommand}", options, user=mod
    )

    answered = await settled(fake_discord, record)  # the fake refuses > 2000 characters
    assert only_for(answered, mod)
    assert "is not a period" in answered.content
    assert len(answered.content) <= DISCORD_CONTENT_MAX
    assert record.ack_latency is not None and record.ack_latency < 3.0
    assert fake_discord.unanswered_interactions() == []
