"""The commands as Discord stored them at start: the wire contract of PRODUCT.md, synced on purpose.

The fake validates every command body the way Discord does (names, descriptions, ranges,
nesting), so a schema Discord would reject fails the bot's start here too.
"""

from __future__ import annotations

from typing import Any

import pytest

from cogs.videobot import create_bot
from services.app import open_services
from services.settings import load_settings
from tests.fakediscord import FakeDiscord, InvalidInteraction, Perm, running_client

SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, NUMBER = (
    1, 2, 3, 4, 5, 6, 7, 8, 10
)  # fmt: skip
# PRODUCT.md's subcommand groups of /videolimit and their subcommands.
VIDEOLIMIT_GROUPS = {
    "blocklist": {"add", "remove", "show"},
    "channels": {"add", "remove", "show"},
}
GUILD_CONTEXT = 0
SYNC_ROUTE = "PUT /applications/*/guilds/*/commands"

# PRODUCT.md's table: option -> (type, required, minimum, maximum).
VIDEO_OPTIONS: dict[str, tuple[int, bool, float | None, float | None]] = {
    "prompt": (STRING, True, 1, 2000),
    "negative_prompt": (STRING, False, None, None),
    "input_frames": (INTEGER, False, 16, 60),
    "steps": (INTEGER, False, 25, 50),
    "guidance_scale": (NUMBER, False, 5, 10),
    "seed": (INTEGER, False, 0, 2**53 - 1),
    "frame_rate": (INTEGER, False, 8, 10),
}


def synced(fake: FakeDiscord, name: str) -> dict[str, Any]:
    """The command called ``name`` as registered in the test guild."""
    commands = {c["name"]: c for c in fake.commands(fake.world.guild.id)}
    assert name in commands, f"{name} not synced; have {sorted(commands)}"
    return commands[name]


def options_of(command: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {option["name"]: option for option in command.get("options", [])}


def bounds(option: dict[str, Any]) -> tuple[float | None, float | None]:
    """(min, max) of an option: lengths for strings, values for numbers."""
    if option["type"] == STRING:
        return option.get("min_length"), option.get("max_length")
    return option.get("min_value"), option.get("max_value")


async def test_video_is_synced_with_the_contracts_options_types_and_ranges(
    bot, fake_discord: FakeDiscord
):
    video = synced(fake_discord, "video")
    assert video["contexts"] == [GUILD_CONTEXT]  # guild only
    assert video["default_member_permissions"] is None  # every member sees it
    options = options_of(video)
    assert list(options)[: len(VIDEO_OPTIONS)] == list(VIDEO_OPTIONS)
    for name, (kind, required, low, high) in VIDEO_OPTIONS.items():
        option = options[name]
        assert (option["type"], option.get("required", False)) == (kind, required), name
        if low is not None:
            assert bounds(option) == (low, high), name
    # What may follow the contract's options is optional, like `private`.
    extra = list(options)[len(VIDEO_OPTIONS) :]
    assert extra == ["private"] and options["private"]["type"] == BOOLEAN
    assert not any(options[name].get("required") for name in extra)


async def test_videolimit_is_synced_for_moderators_with_the_contracts_subcommands(
    bot, fake_discord: FakeDiscord
):
    videolimit = synced(fake_discord, "videolimit")
    assert videolimit["contexts"] == [GUILD_CONTEXT]
    assert int(videolimit["default_member_permissions"]) == Perm.MANAGE_GUILD
    subcommands = options_of(videolimit)
    groups = {name for name, sub in subcommands.items() if sub["type"] == SUB_COMMAND_GROUP}
    assert groups <= set(VIDEOLIMIT_GROUPS)
    assert all(
        sub["type"] == SUB_COMMAND for name, sub in subcommands.items() if name not in groups
    )
    for group in groups:
        assert set(options_of(subcommands[group])) == VIDEOLIMIT_GROUPS[group], group
    expected = {
        "set": {"user": (USER, True), "count": (INTEGER, True), "period": (STRING, True)},
        "clear": {"user": (USER, True)},
        "show": {"user": (USER, False)},
        "default": {"count": (INTEGER, True), "period": (STRING, True)},
        "role": {"role": (ROLE, True), "count": (INTEGER, True), "period": (STRING, True)},
    }
    for name, wanted in expected.items():
        options = options_of(subcommands[name])
        got = {key: (o["type"], o.get("required", False)) for key, o in options.items()}
        assert got == wanted, name
        if "count" in options:
            assert options["count"]["min_value"] == 0, name  # 0 blocks


async def test_videolimit_channels_takes_a_channel_members_can_type_video_in(
    bot, fake_discord: FakeDiscord
):
    channels = options_of(options_of(synced(fake_discord, "videolimit"))["channels"])
    for name in ("add", "remove"):
        [option] = channels[name]["options"]
        assert (option["name"], option["type"], option["required"]) == ("channel", CHANNEL, True)
        # Text, announcement, voice and stage chat, forum and media: no categories or threads.
        assert sorted(option["channel_types"]) == [0, 2, 5, 13, 15, 16], name
    assert not channels["show"].get("options")


async def test_a_member_is_not_offered_videolimit(bot, fake_discord: FakeDiscord):
    alice = fake_discord.world.member_named("alice")
    # Discord would not even show /videolimit to a member.
    with pytest.raises(InvalidInteraction, match=r"(?i)permission"):
        await fake_discord.dispatch_slash_command("videolimit show", {}, user=alice)


async def test_commands_are_synced_once_and_not_again_on_an_unchanged_restart(
    fake_discord: FakeDiscord, bot_env: dict[str, str], simulator
):
    settings = load_settings(bot_env)
    alice = fake_discord.world.member_named("alice")
    for _ in range(2):  # start, stop, start again on the same database: the hash is remembered
        async with (
            open_services(settings, segmind_base_url=simulator.base_url) as services,
            running_client(create_bot(services, guild_ready_timeout=0.05), fake_discord),
        ):
            record = await fake_discord.dispatch_slash_command(
                "video", {"prompt": "hi"}, user=alice
            )
            await fake_discord.wait_for_ack(record)
    assert [call.status for call in fake_discord.calls_to(SYNC_ROUTE)] == [200]
