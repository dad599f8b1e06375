"""/video's schema is the wire contract: names, types, ranges, required flags."""

from __future__ import annotations

import discord
from discord import app_commands

from cogs.video import VideoCog

STRING, INTEGER, BOOLEAN, NUMBER = 3, 4, 5, 10


def video_schema() -> dict:
    client = discord.Client(intents=discord.Intents.none())
    tree = app_commands.CommandTree(client)
    return VideoCog.video.to_dict(tree)


def test_video_options_match_the_contract():
    schema = video_schema()
    assert schema["name"] == "video"
    assert schema["contexts"] == [0]  # guild only
    options = {o["name"]: o for o in schema["options"]}
    assert list(options) == [
        "prompt",
        "negative_prompt",
        "input_frames",
        "steps",
        "guidance_scale",
        "seed",
        "frame_rate",
        "private",
    ]
    expected = {
        "prompt": (STRING, True, "min_length", 1, "max_length", 2000),
        "negative_prompt": (STRING, False, "min_length", 0, "max_length", 2000),
        "input_frames": (INTEGER, False, "min_value", 16, "max_value", 60),
        "steps": (INTEGER, False, "min_value", 25, "max_value", 50),
        "guidance_scale": (NUMBER, False, "min_value", 5, "max_value", 10),
        "seed": (INTEGER, False, "min_value", 0, "max_value", 2**53 - 1),
        "frame_rate": (INTEGER, False, "min_value", 8, "max_value", 10),
    }
    for name, (kind, required, low_key, low, high_key, high) in expected.items():
        option = options[name]
        assert option["type"] == kind, name
        assert option.get("required", False) is required, name
        assert option[low_key] == low and option[high_key] == high, name
        assert 1 <= len(option["description"]) <= 100, name
    assert options["private"]["type"] == BOOLEAN
    assert not options["private"].get("required", False)


def test_command_description_fits_discord():
    schema = video_schema()
    assert 1 <= len(schema["description"]) <= 100
