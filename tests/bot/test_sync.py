"""Commands sync at start only when their schema changed, or when asked (bot.py sync)."""

from __future__ import annotations

from cogs.videobot import create_bot
from tests.fakediscord import running_client


def syncs(fake) -> int:
    return len(fake.calls_to("PUT /applications/*/guilds/*/commands"))


async def start_and_stop(fake, services, **options) -> None:
    async with running_client(create_bot(services, guild_ready_timeout=0.05, **options), fake):
        pass


async def test_first_start_syncs_to_the_development_guild(fake_discord, services):
    await start_and_stop(fake_discord, services)
    assert syncs(fake_discord) == 1
    assert fake_discord.calls_to("PUT /applications/*/commands") == []  # not global
    names = {command["name"] for command in fake_discord.commands(fake_discord.world.guild.id)}
    assert names == {"video", "videolimit", "videoqueue"}


async def test_an_unchanged_schema_is_not_synced_again(fake_discord, services):
    await start_and_stop(fake_discord, services)
    await start_and_stop(fake_discord, services)
    assert syncs(fake_discord) == 1


async def test_a_changed_schema_or_an_explicit_sync_syncs(fake_discord, services):
    await start_and_stop(fake_discord, services)
    world = fake_discord.world
    await services.storage.meta.set(
        f"command_schema:{world.application_id}:{world.guild.id}", "an older schema"
    )
    await start_and_stop(fake_discord, services)
    assert syncs(fake_discord) == 2
    await start_and_stop(fake_discord, services, force_sync=True)
    assert syncs(fake_discord) == 3
