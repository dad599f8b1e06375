"""Threads in the fake: interactions from them reach discord.py as a Thread with its parent."""

from __future__ import annotations

import asyncio
from typing import Any

import discord
import pytest

from tests.fakediscord import FakeDiscord, running_client
from tests.fakediscord.botkit import make_bot, on_command, resolved, sync_to_guild
from tests.fakediscord.permissions import Perm
from tests.fakediscord.world import GUILD_FORUM, GUILD_VOICE, PRIVATE_THREAD, PUBLIC_THREAD


async def channel_seen_by_the_bot(fake: FakeDiscord, channel: Any) -> Any:
    """Run a bot whose one command reports the type of ``interaction.channel`` and its parent."""
    bot = make_bot()
    seen: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def report(interaction: discord.Interaction) -> None:
        seen.set_result(
            (type(interaction.channel), getattr(interaction.channel, "parent_id", None))
        )
        await interaction.response.send_message("ok", ephemeral=True)

    on_command(bot, fake, "where", report)
    async with running_client(bot, fake):
        await sync_to_guild(bot, fake)
        await fake.dispatch_slash_command(
            "where", user=fake.world.member_named("alice"), channel=channel
        )
        return await resolved(seen)


@pytest.mark.parametrize("private", [False, True])
async def test_a_thread_known_at_login_is_the_cached_thread_with_its_parent(
    fake_discord: FakeDiscord, private: bool
) -> None:
    general = fake_discord.world.guild.channels[0]
    thread = fake_discord.world.guild.add_thread(general, "ideas", private=private)
    assert thread.type == (PRIVATE_THREAD if private else PUBLIC_THREAD)

    kind, parent_id = await channel_seen_by_the_bot(fake_discord, thread)

    assert kind is discord.Thread and parent_id == general.id


async def test_a_thread_started_after_login_is_built_from_the_interaction(
    fake_discord: FakeDiscord,
) -> None:
    guild = fake_discord.world.guild
    forum = guild.add_channel("showcase", GUILD_FORUM)
    bot = make_bot()
    seen: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def report(interaction: discord.Interaction) -> None:
        seen.set_result(interaction.channel)
        await interaction.response.send_message("ok", ephemeral=True)

    on_command(bot, fake_discord, "where", report)
    async with running_client(bot, fake_discord):
        await sync_to_guild(bot, fake_discord)
        post = guild.add_thread(forum, "my post")  # no THREAD_CREATE: the bot never heard
        assert bot.get_channel(post.id) is None
        await fake_discord.dispatch_slash_command(
            "where", user=fake_discord.world.member_named("alice"), channel=post
        )
        channel = await resolved(seen)
    assert isinstance(channel, discord.Thread)
    assert (channel.id, channel.parent_id) == (post.id, forum.id)


async def test_a_thread_takes_its_parents_overwrites_and_needs_send_in_threads(
    fake_discord: FakeDiscord,
) -> None:
    guild = fake_discord.world.guild
    general = guild.channels[0]
    thread = guild.add_thread(general, "ideas")
    bot_member = guild.member(fake_discord.world.bot.id)
    assert bot_member is not None
    general.deny(bot_member, Perm.SEND_MESSAGES_IN_THREADS)

    bot = make_bot()
    async with running_client(bot, fake_discord):
        in_general = bot.get_channel(general.id)
        in_thread = bot.get_channel(thread.id)
        assert isinstance(in_general, discord.TextChannel)
        assert isinstance(in_thread, discord.Thread)
        await in_general.send("fine in the channel")
        with pytest.raises(discord.Forbidden):
            await in_thread.send("not in its threads")


async def test_a_voice_channels_text_chat_is_where_its_interactions_come_from(
    fake_discord: FakeDiscord,
) -> None:
    lounge = fake_discord.world.guild.add_channel("lounge", GUILD_VOICE)

    kind, parent_id = await channel_seen_by_the_bot(fake_discord, lounge)

    assert kind is discord.VoiceChannel and parent_id is None
