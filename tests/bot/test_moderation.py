"""Limits as moderators set them and members meet them: private answers, nothing submitted."""

from __future__ import annotations

import re
import time
from typing import Any

from services.simulator import SegmindSimulator
from tests.bot.helpers import answer, title, video, wait_for_clip
from tests.fakediscord import FakeDiscord, FakeMember, InteractionRecord, StoredMessage

DAY = 86400
TIMESTAMP = re.compile(r"<t:(\d+):R>")


async def videolimit(
    fake: FakeDiscord, subcommand: str, options: dict[str, Any], user: FakeMember, **dispatch: Any
) -> StoredMessage:
    """``/videolimit <subcommand>`` as ``user``; returns the bot's answer once it is shown."""
    record = await fake.dispatch_slash_command(
        f"videolimit {subcommand}", options, user=user, **dispatch
    )
    await fake.wait_for_ack(record)
    return await settled_answer(fake, record)


async def settled_answer(fake: FakeDiscord, record: InteractionRecord) -> StoredMessage:
    """The interaction's answer once it says something (past any "thinking..." state)."""
    message = answer(fake, record)
    await fake.wait_until(lambda: not message.loading)
    return message


def only_for(message: StoredMessage, member: FakeMember) -> bool:
    """Whether the message is ephemeral and shown to ``member`` alone."""
    return message.ephemeral and message.visible_to == {member.id}


async def test_a_member_is_refused_videolimit_even_when_a_server_shows_it_to_them(
    bot, fake_discord: FakeDiscord
):
    # An admin can allow the command for everyone in Server Settings; the bot checks again.
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    refusal = await videolimit(
        fake_discord, "set", {"user": alice, "count": 50, "period": "1d"}, alice,
        bypass_permissions=True,
    )  # fmt: skip

    assert only_for(refusal, alice)
    assert "Only moderators can use `/videolimit`" in refusal.content
    shown = await videolimit(fake_discord, "show", {"user": alice}, mod)
    assert "Override set by" not in shown.embeds[0]["description"]
    assert "5 clips per day" in shown.embeds[0]["description"]


async def test_a_limit_set_by_a_moderator_refuses_the_next_video_privately_with_the_next_slot(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    confirmation = await videolimit(
        fake_discord, "set", {"user": alice, "count": 1, "period": "1d"}, mod
    )
    assert only_for(confirmation, mod)
    assert f"<@{alice.id}>'s own limit is now 1 clip per day" in confirmation.content

    first = await video(fake_discord, alice, {"prompt": "the one clip today"})
    await wait_for_clip(fake_discord, first.channel_id)
    before = [m.id for m in fake_discord.channel_messages(first.channel_id)]
    started = time.time()
    second = await video(fake_discord, alice, {"prompt": "one too many"})
    refusal = await settled_answer(fake_discord, second)

    assert only_for(refusal, alice)
    assert "your personal limit: 1 clip per day" in refusal.content
    slot = TIMESTAMP.search(refusal.content)
    assert slot is not None, refusal.content
    assert started + DAY - 30 <= int(slot.group(1)) <= started + DAY + 1
    assert [m.id for m in fake_discord.channel_messages(first.channel_id)] == before
    assert [s["prompt"] for s in simulator.submits] == ["the one clip today"]


async def test_a_blocked_member_is_refused_privately_before_anything_is_submitted(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    blocked = await videolimit(
        fake_discord, "set", {"user": alice, "count": 0, "period": "1w"}, mod
    )
    assert "is now blocked from making videos here" in blocked.content

    record = await video(fake_discord, alice, {"prompt": "let me in"})
    refusal = await settled_answer(fake_discord, record)

    assert only_for(refusal, alice)
    assert "You are blocked from making videos here" in refusal.content
    assert title(refusal) is None and not refusal.components  # no progress, no buttons
    assert fake_discord.channel_messages(record.channel_id) == []
    assert simulator.submit_attempts == 0


async def test_history_tells_moderators_each_change_in_words_and_skips_what_changed_nothing(
    bot, fake_discord: FakeDiscord
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    nothing = await videolimit(fake_discord, "clear", {"user": alice}, mod)
    assert only_for(nothing, mod)
    assert nothing.content == f"<@{alice.id}> had no own limit; nothing changed."
    await videolimit(fake_discord, "set", {"user": alice, "count": 1, "period": "1d"}, mod)

    history = await videolimit(fake_discord, "history", {}, mod)

    assert only_for(history, mod)
    [line] = history.embeds[0]["description"].splitlines()
    assert TIMESTAMP.match(line), line
    assert line.endswith(f"<@{mod.id}> set <@{alice.id}>'s limit to 1 clip per day (was: not set)")
