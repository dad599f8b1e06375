"""The request model validates the command contract's ranges itself (re-rolls and restarts too)."""

from __future__ import annotations

import pytest

from services.errors import ValidationError
from services.models import SEED, VideoRequest


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
