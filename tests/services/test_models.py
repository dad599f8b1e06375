"""The request model validates the command contract's ranges itself (re-rolls and restarts too)."""

from __future__ import annotations

import pytest

from services.errors import ValidationError
from services.models import SEED, VideoRequest, request_fingerprint, reroll_fingerprint


def test_defaults_and_random_seed_fill_the_payload():
    request = VideoRequest.create("a cat surfing")
    payload = request.to_payload()
    assert payload == {
        "prompt": "a cat surfing",
        "seed": request.seed,
        "negative_prompt": "low quality, blurry",
        "input_frames": 49,
        "steps": 45,
        "guidance_scale": 6,
        "frame_rate": 8,
    }
    assert 0 <= request.seed <= SEED[1]


def test_seeds_differ_between_requests():
    assert len({VideoRequest.create("x").seed for _ in range(20)}) > 1


def test_a_given_seed_is_kept():
    assert VideoRequest.create("x", seed=0).seed == 0
    assert VideoRequest.create("x", seed=2**53 - 1).seed == 2**53 - 1


@pytest.mark.parametrize(
    "changes",
    [
        {"prompt": ""},
        {"prompt": "   "},
        {"prompt": "x" * 2001},
        {"input_frames": 15},
        {"input_frames": 61},
        {"steps": 24},
        {"steps": 51},
        {"guidance_scale": 4.99},
        {"guidance_scale": 10.01},
        {"guidance_scale": float("nan")},
        {"seed": -1},
        {"seed": 2**53},
        {"frame_rate": 7},
        {"frame_rate": 11},
        {"steps": 30.5},
        {"steps": True},
        {"negative_prompt": "n" * 2001},
    ],
)
def test_out_of_range_values_are_refused(changes):
    prompt = changes.pop("prompt", "a cat")
    with pytest.raises(ValidationError) as caught:
        VideoRequest.create(prompt, **changes)
    assert caught.value.user_message


def test_payload_round_trip_validates_again():
    request = VideoRequest.create("a dog", seed=7, guidance_scale=7.5)
    assert VideoRequest.from_payload(request.to_payload()) == request
    with pytest.raises(ValidationError):
        VideoRequest.from_payload({**request.to_payload(), "steps": 99})
    with pytest.raises(ValidationError):
        VideoRequest.from_payload({"prompt": "a dog"})


def test_with_seed_changes_only_the_seed():
    request = VideoRequest.create("a dog", seed=1, steps=30)
    other = request.with_seed(2)
    assert other.seed == 2 and other.steps == 30 and other.prompt == "a dog"


INVISIBLE = {
    "zero-width space": "\u200b",
    "zero-width joiners": "\u200c\u200d",
    "word joiner and BOM": "\u2060\ufeff",
    "braille blank": "\u2800",
    "hangul fillers": "\u3164\u115f\u1160\uffa0",
    "NUL and controls": "\x00\x07\x1b",
    "bidi controls": "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
    "no-break and ideographic spaces": "\u00a0\u3000\u2003",
    "line and paragraph separators": "\u2028\u2029",
    "variation selectors": "\ufe0f\U000e0100",
    "a mix of them": " \u200b\u3164 \u2800\u202e\ufeff ",
}


@pytest.mark.parametrize("text", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_a_prompt_of_only_invisible_characters_is_refused(text):
    with pytest.raises(ValidationError, match=r"prompt (is empty|has no visible text)"):
        VideoRequest.create(text)


@pytest.mark.parametrize("text", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_a_negative_prompt_of_only_invisible_characters_is_refused(text):
    with pytest.raises(ValidationError, match="negative prompt has no visible text"):
        VideoRequest.create("a cat", negative_prompt=text)


def test_an_empty_negative_prompt_still_means_avoid_nothing():
    assert VideoRequest.create("a cat", negative_prompt="").negative_prompt == ""


@pytest.mark.parametrize("prompt", ["a\u200bcat", "\u3164 a cat \u2800", "猫", "🐈", "é"])
def test_visible_text_among_invisible_characters_is_a_prompt(prompt):
    assert VideoRequest.create(prompt).prompt == prompt.strip()


def test_a_stored_invisible_request_stays_readable_but_cannot_be_rerolled():
    # Admitted (and billed) before the rule existed: history and restarts must still read it.
    payload = {**VideoRequest.create("a cat", seed=3).to_payload(), "prompt": "\u200b"}
    stored = VideoRequest.from_payload(payload)
    assert stored.prompt == "\u200b"
    with pytest.raises(ValidationError, match="no visible text"):
        stored.with_seed(4)


def test_a_repeated_request_without_a_seed_has_the_same_fingerprint():
    # Each request draws its own seed; the member asked for the same thing twice.
    first, second = VideoRequest.create("a cat"), VideoRequest.create("a cat")
    assert first.seed != second.seed
    assert request_fingerprint(first, private=False, seed_given=False) == request_fingerprint(
        second, private=False, seed_given=False
    )


@pytest.mark.parametrize(
    "changes",
    [{"prompt": "a dog"}, {"steps": 30}, {"negative_prompt": ""}, {"guidance_scale": 7.5}],
)
def test_any_other_parameter_makes_another_request(changes):
    prompt = changes.pop("prompt", "a cat")
    base = request_fingerprint(VideoRequest.create("a cat"), private=False, seed_given=False)
    other = VideoRequest.create(prompt, **changes)
    assert request_fingerprint(other, private=False, seed_given=False) != base


def test_a_chosen_seed_and_privacy_are_part_of_the_request():
    request = VideoRequest.create("a cat", seed=1)
    chosen = request_fingerprint(request, private=False, seed_given=True)
    assert chosen != request_fingerprint(request.with_seed(2), private=False, seed_given=True)
    assert chosen != request_fingerprint(request, private=True, seed_given=True)


def test_rerolls_of_one_job_are_one_request():
    assert reroll_fingerprint(41) == reroll_fingerprint(41) != reroll_fingerprint(42)


@pytest.mark.parametrize(
    "blank",
    [
        "\u0301" * 3,  # combining marks with no letter to sit on
        "\U000e0000\U000e0002",  # tag characters
        "\u2065",  # unassigned
        "\U0001d159" * 2,  # musical null notehead
        "\U00016fe4",  # Khitan filler
        "\ue000\ue001",  # private use
    ],
)
def test_a_prompt_that_shows_nothing_is_refused_whatever_it_is_made_of(blank: str) -> None:
    with pytest.raises(ValidationError, match="visible"):
        VideoRequest.create(blank, seed=1)


def test_marks_on_a_letter_and_symbols_are_visible() -> None:
    assert VideoRequest.create("e\u0301\u20dd 🎬 ✨", seed=1).prompt
