"""The channel allow-list over the wire: `/video` works only where moderators say, and says so."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cogs.videobot import VideoBot, create_bot
from services.app import Services
from services.simulator import SegmindSimulator
from tests.bot.helpers import title, video, wait_for_clip
from tests.bot.test_moderation import TIMESTAMP, only_for, settled_answer, videolimit
from tests.fakediscord import FakeDiscord, payloads, running_client
from tests.fakediscord.world import GUILD_FORUM, FakeChannel, FakeWorld


@pytest.fixture
def fake_world() -> FakeWorld:
    """The default world plus #art with a thread known at login, and a forum."""
    world = FakeWorld.default()
    art = world.guild.add_text_channel("art")
    world.guild.add_thread(art, "art ideas")
    world.guild.add_channel("showcase", GUILD_FORUM)
    return world


def channel(fake: FakeDiscord, name: str) -> FakeChannel:
    guild = fake.world.guild
    return next(c for c in [*guild.channels, *guild.threads] if c.name == name)


async def allow(fake: FakeDiscord, name: str) -> Any:
    mod = fake.world.member_named("mod")
    return await videolimit(fake, "channels add", {"channel": channel(fake, name)}, mod)


async def test_outside_the_allowed_channels_video_is_refused_privately_saying_where(
    bot: VideoBot, fake_discord: FakeDiscord, simulator: SegmindSimulator
) -> None:
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    art, showcase = channel(fake_discord, "art"), channel(fake_discord, "showcase")
    added = await allow(fake_discord, "art")
    assert only_for(added, mod)
    assert f"`/video` now works in <#{art.id}> and its threads" in added.content
    await allow(fake_discord, "showcase")

    record = await video(fake_discord, alice, {"prompt": "in the wrong place"})
    refusal = await settled_answer(fake_discord, record)

    assert only_for(refusal, alice)
    assert f"<#{art.id}> or <#{showcase.id}>" in refusal.content
    assert "threads in them count too" in refusal.content
    assert title(refusal) is None and not refusal.components  # no progress, no buttons
    assert fake_discord.channel_messages(record.channel_id) == []
    assert not refusal.pinged_user_ids
    assert simulator.submit_attempts == 0


async def test_in_an_allowed_channel_and_in_its_threads_video_works(
    bot: VideoBot, fake_discord: FakeDiscord, simulator: SegmindSimulator
) -> None:
    alice = fake_discord.world.member_named("alice")
    guild = fake_discord.world.guild
    art, thread = channel(fake_discord, "art"), channel(fake_discord, "art ideas")
    await allow(fake_discord, "art")

    await video(fake_discord, alice, {"prompt": "a fox in art"}, channel=art)
    await wait_for_clip(fake_discord, art.id)
    await video(fake_discord, alice, {"prompt": "a fox in a thread"}, channel=thread)
    await wait_for_clip(fake_discord, thread.id)
    # Started after the bot logged in: discord.py knows it only from the interaction.
    late = guild.add_thread(art, "started later")
    await video(fake_discord, alice, {"prompt": "a fox in a new thread"}, channel=late)
    await wait_for_clip(fake_discord, late.id)
    # A thread of a channel that is not listed is refused like its channel.
    elsewhere = guild.add_thread(guild.channels[0], "general chat")
    record = await video(fake_discord, alice, {"prompt": "not here"}, channel=elsewhere)
    refusal = await settled_answer(fake_discord, record)

    assert only_for(refusal, alice) and f"<#{art.id}>" in refusal.content
    assert [s["prompt"] for s in simulator.submits] == [
        "a fox in art",
        "a fox in a thread",
        "a fox in a new thread",
    ]


async def test_a_post_in_an_allowed_forum_counts_as_the_forum(
    bot: VideoBot, fake_discord: FakeDiscord
) -> None:
    alice = fake_discord.world.member_named("alice")
    forum = channel(fake_discord, "showcase")
    await allow(fake_discord, "showcase")
    post = fake_discord.world.guild.add_thread(forum, "my best fox")

    await video(fake_discord, alice, {"prompt": "a fox for the showcase"}, channel=post)

    await wait_for_clip(fake_discord, post.id)


async def test_removing_the_last_channel_lets_video_work_everywhere_again(
    bot: VideoBot, fake_discord: FakeDiscord
) -> None:
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    art, general = channel(fake_discord, "art"), fake_discord.world.guild.channels[0]
    await allow(fake_discord, "art")
    refused = await settled_answer(
        fake_discord, await video(fake_discord, alice, {"prompt": "not yet"})
    )
    assert f"<#{art.id}>" in refused.content

    removed = await videolimit(fake_discord, "channels remove", {"channel": art}, mod)
    assert only_for(removed, mod)
    assert "was the last listed channel: `/video` works in every channel again" in removed.content
    await video(fake_discord, alice, {"prompt": "now anywhere"})

    await wait_for_clip(fake_discord, general.id)


async def test_a_member_cannot_list_a_channel_even_when_a_server_shows_them_the_command(
    bot: VideoBot, fake_discord: FakeDiscord
) -> None:
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    art = channel(fake_discord, "art")

    refusal = await videolimit(
        fake_discord, "channels add", {"channel": art}, alice, bypass_permissions=True
    )

    assert only_for(refusal, alice)
    assert "Only moderators can use `/videolimit`" in refusal.content
    shown = await videolimit(fake_discord, "channels show", {}, mod)
    assert "No channel is listed" in shown.embeds[0]["description"]
    with pytest.raises(AssertionError, match="hidden"):  # and Discord hides it from them
        await fake_discord.dispatch_slash_command(
            "videolimit channels add", {"channel": art}, user=alice
        )


async def test_show_lists_each_channel_with_who_added_it_and_history_says_it_in_words(
    bot: VideoBot, fake_discord: FakeDiscord
) -> None:
    mod = fake_discord.world.member_named("mod")
    art, showcase = channel(fake_discord, "art"), channel(fake_discord, "showcase")
    await allow(fake_discord, "art")
    await allow(fake_discord, "showcase")
    again = await allow(fake_discord, "art")
    assert again.content == f"<#{art.id}> is already listed; nothing was changed."
    await videolimit(fake_discord, "channels remove", {"channel": showcase}, mod)

    shown = await videolimit(fake_discord, "channels show", {}, mod)
    history = await videolimit(fake_discord, "history", {}, mod)

    assert only_for(shown, mod)
    description = shown.embeds[0]["description"]
    assert description.startswith("`/video` works only in this channel and its threads:")
    assert f"<#{art.id}> · added by <@{mod.id}>" in description
    assert f"<#{showcase.id}>" not in description
    lines = history.embeds[0]["description"].splitlines()
    assert [TIMESTAMP.sub("T", line) for line in lines] == [
        f"T <@{mod.id}> stopped `/video` working in <#{showcase.id}>",
        f"T <@{mod.id}> let `/video` work in <#{showcase.id}>",
        f"T <@{mod.id}> let `/video` work in <#{art.id}>",
    ]


async def test_a_deleted_channel_leaves_the_list_so_video_is_not_shut_out_for_good(
    bot: VideoBot, fake_discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    art, general = channel(fake_discord, "art"), fake_discord.world.guild.channels[0]
    await allow(fake_discord, "art")
    channels = bot.services.channels
    real_remove = channels.remove
    removed = asyncio.Event()

    async def remove(*args: Any, **kwargs: Any) -> Any:
        try:
            return await real_remove(*args, **kwargs)
        finally:
            removed.set()

    monkeypatch.setattr(channels, "remove", remove)
    fake_discord.world.guild.channels.remove(art)
    await fake_discord.dispatch_event("CHANNEL_DELETE", payloads.channel(art))
    await asyncio.wait_for(removed.wait(), 5)

    await video(fake_discord, alice, {"prompt": "anywhere again"})
    await wait_for_clip(fake_discord, general.id)
    history = await videolimit(fake_discord, "history", {}, mod)
    latest = history.embeds[0]["description"].splitlines()[0]
    assert latest.endswith(
        f"stopped `/video` working in <#{art.id}> (the channel was deleted): "
        "`/video` works everywhere again"
    )


async def test_a_channel_deleted_while_the_bot_was_away_leaves_the_list_when_it_is_back(
    fake_discord: FakeDiscord, services: Services
) -> None:
    guild = fake_discord.world.guild
    mod = fake_discord.world.member_named("mod")
    art = channel(fake_discord, "art")
    await services.channels.add(guild.id, art.id, actor_id=mod.id)
    await services.channels.add(guild.id, 4242, actor_id=mod.id)  # deleted meanwhile
    removed = asyncio.Event()
    real_remove = services.channels.remove

    async def remove(*args: Any, **kwargs: Any) -> Any:
        try:
            return await real_remove(*args, **kwargs)
        finally:
            removed.set()

    services.channels.remove = remove  # type: ignore[method-assign]
    client = create_bot(services, guild_ready_timeout=0.05)
    async with running_client(client, fake_discord):
        await asyncio.wait_for(removed.wait(), 5)
        listed = await services.channels.listed(guild.id)

    assert [c.channel_id for c in listed] == [art.id]
