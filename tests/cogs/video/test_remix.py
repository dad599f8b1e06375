"""The Remix form: what it shows within Discord's limits, and what a submission asks for."""

from __future__ import annotations

import pytest

from cogs.video import remix
from cogs.video.custom_ids import CustomIds
from services.errors import ValidationError
from services.models import Job, JobState, VideoRequest

FILLED = {
    "prompt": "a fox",
    "negative": "blur",
    "frames": "49 at 8",
    "tuning": "45, 6",
    "seed": "7",
}


def make_job(**request: object) -> Job:
    values: dict[str, object] = {"prompt": "a fox", "seed": 2**53 - 1, **request}
    return Job(
        id=12345678901234,
        guild_id=1,
        channel_id=2,
        user_id=42,
        request=VideoRequest(**values),  # type: ignore[arg-type]
        state=JobState.DELIVERED,
        created_at=0.0,
    )


def form_of(job: Job) -> dict[str, object]:
    return remix.RemixForm(job, CustomIds("secret")).to_dict()


def inputs_of(form: dict[str, object]) -> list[dict[str, object]]:
    rows = form["components"]
    assert isinstance(rows, list)
    return [item for row in rows for item in row["components"]]


async def test_the_form_stays_within_discords_limits_at_the_longest_values():
    job = make_job(prompt="p" * 2000, negative_prompt="n" * 2000, guidance_scale=5.000000000000001)
    form = form_of(job)
    inputs = inputs_of(form)

    assert len(inputs) == 5 and len(str(form["title"])) <= 45
    assert len(str(form["custom_id"])) <= 100
    for item in inputs:
        assert 1 <= len(str(item["label"])) <= 45, item["label"]
        assert len(str(item.get("placeholder", ""))) <= 100
        assert len(str(item.get("value", ""))) <= int(str(item["max_length"])), item
    assert [item.get("value") for item in inputs] == [
        "p" * 2000,
        "n" * 2000,
        "49 at 8",
        "45, 5.000000000000001",  # exact: a rounded value would make another clip
        str(2**53 - 1),
    ]


async def test_the_forms_custom_id_is_signed_for_its_job():
    job = make_job()
    custom_id = str(form_of(job)["custom_id"])
    match = remix._FORM_ID.fullmatch(custom_id)

    assert match is not None and int(match["job"]) == job.id
    assert CustomIds("secret").verify(remix.FORM_ACTION, job.id, match["sig"])
    assert not CustomIds("another database").verify(remix.FORM_ACTION, job.id, match["sig"])


def test_a_filled_form_is_the_request_it_shows():
    request, seed_given = remix.request_from_form(FILLED)

    assert seed_given
    assert request == VideoRequest("a fox", seed=7, negative_prompt="blur")


@pytest.mark.parametrize(
    ("frames", "tuning", "expected"),
    [
        ("16 at 10", "25, 5", (16, 10, 25, 5.0)),
        ("60 @ 9", "50 10", (60, 9, 50, 10.0)),
        (" 33,8 ", "30; 7.25", (33, 8, 30, 7.25)),
        ("40 AT 8", "45/6.5", (40, 8, 45, 6.5)),
    ],
)
def test_parameters_are_read_in_the_ways_members_write_them(frames, tuning, expected):
    request, _ = remix.request_from_form({**FILLED, "frames": frames, "tuning": tuning})

    shown = (request.input_frames, request.frame_rate, request.steps, request.guidance_scale)
    assert shown == expected


def test_an_empty_seed_is_a_random_one_and_empty_negative_avoids_nothing():
    request, seed_given = remix.request_from_form({**FILLED, "seed": " ", "negative": ""})

    assert not seed_given and 0 <= request.seed <= 2**53 - 1
    assert request.negative_prompt == ""


@pytest.mark.parametrize(
    ("changes", "wanted"),
    [
        ({"frames": "15 at 8"}, "frames must be 16 to 60 (got 15)"),
        ({"frames": "61 at 8"}, "frames must be 16 to 60 (got 61)"),
        ({"frames": "49 at 7"}, "frame rate must be 8 to 10 (got 7)"),
        ({"frames": "49"}, "write it like `49 at 8`"),
        ({"frames": "49.5 at 8"}, "write it like `49 at 8`"),
        ({"frames": "\uff14\uff19 at 8"}, "write it like"),  # fullwidth digits
        ({"frames": ""}, "write it like"),
        ({"tuning": "51, 6"}, "steps must be 25 to 50 (got 51)"),
        ({"tuning": "45, 4.99"}, "guidance must be 5 to 10 (got 4.99)"),
        ({"tuning": "45, inf"}, "write it like `45, 6`"),
        ({"tuning": "45, 1e1"}, "write it like `45, 6`"),
        ({"tuning": "45"}, "write it like `45, 6`"),
        ({"seed": "12345678901234567"}, "**Seed**"),
        ({"seed": "9007199254740992"}, "**Seed**"),
        ({"seed": "0x10"}, "**Seed**"),
        ({"seed": "7 8"}, "**Seed**"),
        ({"prompt": ""}, "The prompt is empty"),
        ({"prompt": "\u200b\u2800"}, "no visible text"),
        ({"prompt": "x" * 2001}, "the limit is 2000"),
        ({"negative": "\u200d"}, "negative prompt has no visible text"),
    ],
)
def test_a_bad_field_is_refused_with_its_name_and_range(changes, wanted):
    with pytest.raises(ValidationError) as refused:
        remix.request_from_form({**FILLED, **changes})

    assert wanted in refused.value.user_message


def test_submitted_values_are_read_from_rows_and_labels_and_nothing_else():
    components = [
        {"type": 1, "components": [{"type": 4, "custom_id": "prompt", "value": "a fox"}]},
        {"type": 18, "id": 3, "component": {"type": 4, "custom_id": "seed", "value": "7"}},
        {"type": 10, "content": "a text display"},
        {"type": 1, "components": [{"type": 4, "custom_id": "frames", "value": None}]},
        "not a component",
    ]

    assert remix.submitted_values(components) == {"prompt": "a fox", "seed": "7"}
    assert remix.submitted_values(None) == {}


def test_the_same_submission_twice_is_one_request_and_another_is_not():
    request, _ = remix.request_from_form(FILLED)
    same = remix.remix_fingerprint(12, request, private=False, seed_given=True)

    assert same == remix.remix_fingerprint(12, request, private=False, seed_given=True)
    assert same != remix.remix_fingerprint(13, request, private=False, seed_given=True)
    assert same != remix.remix_fingerprint(12, request, private=True, seed_given=True)
    other = request.with_seed(8)
    assert same != remix.remix_fingerprint(12, other, private=False, seed_given=True)
    # A seed left empty is drawn anew each time: two such submissions are still the same.
    unseeded = remix.remix_fingerprint(12, request, private=False, seed_given=False)
    assert unseeded == remix.remix_fingerprint(12, other, private=False, seed_given=False)


# The last has 17 significant digits, the most a float's repr writes.
@pytest.mark.parametrize("guidance", [6.1234567, 5.000000000000001, 7.7070623639674825])
def test_a_form_sent_back_unchanged_asks_for_the_clip_it_came_from(guidance):
    job = make_job(guidance_scale=guidance, seed=7)
    shown = {str(item["custom_id"]): str(item.get("value", "")) for item in inputs_of(form_of(job))}

    request, seed_given = remix.request_from_form(shown)

    assert seed_given and request == job.request


def test_guidance_written_as_precisely_as_the_form_shows_it_is_still_range_checked():
    with pytest.raises(ValidationError) as refused:
        remix.request_from_form({**FILLED, "tuning": "45, 10.0000000000000018"})

    assert "guidance must be 5 to 10 (got 10.0000000000000018)" in refused.value.user_message
