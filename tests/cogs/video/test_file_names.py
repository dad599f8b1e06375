"""The clip's file name: read from the prompt, and safe whatever the prompt holds."""

from __future__ import annotations

import re

import pytest

from cogs.video import render
from tests.cogs.video.test_render import make_job

# What every name must look like: lower-case ASCII words joined by single hyphens, the job
# id last, the MP4 extension.
SAFE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*-7\.mp4")
WINDOWS_DEVICES = {"con", "prn", "aux", "nul"} | {
    f"{d}{n}" for d in ("com", "lpt") for n in range(10)
}


def name_for(prompt: str) -> str:
    return render.clip_filename(make_job(prompt, id=7))


def test_a_plain_prompt_gives_its_words_and_the_job_id():
    assert name_for("A cat surfing at dawn") == "a-cat-surfing-at-dawn-7.mp4"


def test_accents_and_wide_letters_keep_their_ascii_reading():
    full_width = "\uff46\uff55\uff4c\uff4c"  # "full", as wide letters
    assert name_for(f"Crème brûlée in {full_width} width") == "creme-brulee-in-full-width-7.mp4"


def test_a_long_prompt_is_cut_at_a_word_boundary():
    name = name_for("the quick brown fox jumps over the lazy dog and then again")
    assert name == "the-quick-brown-fox-jumps-over-the-lazy-7.mp4"


def test_a_single_long_word_is_cut_mid_word():
    assert name_for("x" * 2000) == "x" * render.FILENAME_WORDS_MAX + "-7.mp4"


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("../../etc/passwd", "etc-passwd-7.mp4"),
        ("..\\..\\windows\\system32", "windows-system32-7.mp4"),
        (".hidden", "hidden-7.mp4"),
        ("CON", "con-7.mp4"),
        ("nul.txt", "nul-txt-7.mp4"),
        ("<@123456789012345678> and @everyone", "123456789012345678-and-everyone-7.mp4"),
        ("**bold** _it_ `code` ||spoiler||", "bold-it-code-spoiler-7.mp4"),
        ("say \"hi\"\nand 'bye'\ttoo", "say-hi-and-bye-too-7.mp4"),
        ("zero\u200bwidth\u200djoin", "zero-width-join-7.mp4"),
        ("\u202egnp.exe", "gnp-exe-7.mp4"),
        ("🐱🌊🌅", "video-7.mp4"),
        ("?!?!... ---", "video-7.mp4"),
        ("東京の夜", "video-7.mp4"),
    ],
)
def test_hostile_prompts_give_a_safe_name(prompt, expected):
    assert name_for(prompt) == expected


@pytest.mark.parametrize(
    "prompt",
    [
        "../../etc/passwd",
        "CON",
        "🐱",
        "@here " * 300,
        "a-" * 1000,
        "\u202e\u200b\u2066" + "é" * 1997,
        "C:\\Windows\\..\\AUX",
        " - . _ ",
    ],
)
def test_every_name_is_short_ascii_words_and_never_a_reserved_name(prompt):
    name = name_for(prompt)
    assert SAFE.fullmatch(name), name
    assert len(name) <= render.FILENAME_WORDS_MAX + len("-7.mp4")
    assert name.split(".")[0] not in WINDOWS_DEVICES


def test_two_jobs_never_share_a_name():
    """The id follows the last hyphen, so no prompt can make one job's name another's."""
    assert render.clip_filename(make_job("x 1", id=7)) != render.clip_filename(make_job("x", id=17))
    assert render.clip_filename(make_job("x", id=17)) == "x-17.mp4"
