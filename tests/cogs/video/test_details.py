"""The Details card: whole texts within Discord's limits, every number, honest times."""

from __future__ import annotations

import pytest

from cogs.video import details
from services.errors import BotError
from services.models import JobState, VideoRequest
from tests.cogs.video.test_render import make_job


def fields(embed) -> dict[str, str]:
    return {field.name: field.value for field in embed.fields}


def delivered_job(**changes):
    values = {
        "state": JobState.DELIVERED,
        "created_at": 1000.0,
        "submitted_at": 1012.0,
        "posting_started_at": 1257.0,
        "finished_at": 1260.4,
        "cost_usd": 0.36,
    }
    values.update(changes)
    return make_job(**values)


def test_the_card_shows_every_parameter_the_seed_and_the_cost():
    request = VideoRequest.create(
        "a lighthouse", seed=99, input_frames=33, frame_rate=10, steps=30, guidance_scale=7.5
    )
    card, negative = details.details_embeds(delivered_job(request=request))

    shown = fields(card)
    assert card.description == "a lighthouse"
    assert shown["Seed"] == "`99`"
    assert shown["Input frames"] == "33"
    assert shown["Frame rate"] == "10 fps"
    assert shown["Steps"] == "30"
    assert shown["Guidance scale"] == "7.5"
    assert shown["Cost"] == "$0.36, estimated: Segmind reported no figure"
    assert shown["Requested by"] == "<@42>"
    assert negative.description == "low quality, blurry"


def test_queue_generation_and_delivery_times_come_from_the_jobs_own_moments():
    card, _ = details.details_embeds(delivered_job())

    shown = fields(card)
    assert shown["Queue"] == "12 s"
    assert shown["Generation"] == "4 min 05 s"
    assert shown["Delivery"] == "3 s"
    assert shown["Asked"] == "<t:1000:f>"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"state": JobState.QUEUED, "submitted_at": None, "posting_started_at": None,
             "finished_at": None},
            ("still waiting", "not started", "not started"),
        ),
        (
            {"state": JobState.PROCESSING, "posting_started_at": None, "finished_at": None},
            ("12 s", "in progress", "not started"),
        ),
        (
            {"state": JobState.DOWNLOADED, "finished_at": None},
            ("12 s", "4 min 05 s", "being posted"),
        ),
        (
            {"state": JobState.DELIVERED, "posting_started_at": None},
            ("12 s", "4 min 08 s", "not recorded"),
        ),
        (
            {"state": JobState.CANCELLED, "submitted_at": None, "posting_started_at": None},
            ("never sent to Segmind", "not started", "not started"),
        ),
    ],
)  # fmt: skip
def test_stages_not_reached_say_so(changes, expected):
    stages = dict(details.stage_times(delivered_job(**changes)))
    assert (stages["Queue"], stages["Generation"], stages["Delivery"]) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"cost_usd": 0.5, "cost_reported": True}, "$0.50, as Segmind reported it"),
        ({"cost_usd": 0.0, "cost_reported": True}, "$0.00, as Segmind reported it"),
        ({"state": JobState.PROCESSING, "finished_at": None, "posting_started_at": None},
         "$0.36, estimated until Segmind reports its figure"),
        ({}, "$0.36, estimated: Segmind reported no figure"),
    ],
)  # fmt: skip
def test_the_cost_says_whether_it_is_segminds_figure_or_the_estimate(changes, expected):
    card, _ = details.details_embeds(delivered_job(**changes))
    assert fields(card)["Cost"] == expected


def test_a_clip_that_cost_nothing_says_so():
    card, _ = details.details_embeds(delivered_job(cost_usd=0.0))
    assert fields(card)["Cost"] == "Nothing was spent"


def test_an_empty_negative_prompt_is_named_as_none():
    request = VideoRequest.create("a lighthouse", seed=1, negative_prompt="")
    _, negative = details.details_embeds(delivered_job(request=request))
    assert negative.description == "(none)"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0.2, "under a second"), (42.4, "42 s"), (245, "4 min 05 s"), (3725, "1 h 02 min")],
)
def test_durations_read_naturally(seconds, words):
    assert details.duration(seconds) == words


def test_markdown_and_mentions_stay_inert_in_both_texts():
    request = VideoRequest.create(
        "**loud** @everyone <@123456789012345678>", seed=1, negative_prompt="__x__ @here"
    )
    card, negative = details.details_embeds(delivered_job(request=request))
    assert "\\*\\*loud\\*\\*" in card.description
    assert "@everyone" not in card.description and "<@123456789012345678>" not in card.description
    assert "\\_\\_x\\_\\_" in negative.description and "@here" not in negative.description


def test_the_longest_most_escaped_texts_arrive_whole_within_discords_limits():
    """2000 characters that all need escaping double to 4000: both fit, in two messages."""
    request = VideoRequest.create("*" * 2000, seed=1, negative_prompt="_" * 2000)
    embeds = details.details_embeds(delivered_job(request=request))

    messages = details.pack(embeds)

    assert [len(message) for message in messages] == [1, 1]
    assert embeds[0].description == "\\*" * 2000
    assert embeds[1].description == "\\_" * 2000
    for message in messages:
        assert sum(details.embed_size(embed) for embed in message) <= details.MESSAGE_EMBED_TOTAL
        assert all(len(embed.description or "") <= 4096 for embed in message)


def test_ordinary_texts_come_as_one_message():
    request = VideoRequest.create("a" * 2000, seed=1, negative_prompt="b" * 2000)
    assert [
        len(m) for m in details.pack(details.details_embeds(delivered_job(request=request)))
    ] == [2]


def test_a_private_clip_is_for_its_requester_only():
    job = delivered_job(private=True)
    details.check_may_read(job, 42)
    with pytest.raises(BotError, match="private"):
        details.check_may_read(job, 43)


def test_a_public_clip_is_for_anyone():
    details.check_may_read(delivered_job(), 43)
