"""What members see: escaping, truncation, embed fields, Discord's size limits."""

from __future__ import annotations

import pytest

from cogs.video import render
from services.models import Job, JobState, Progress, ProgressPhase, VideoRequest


def make_job(prompt: str = "a cat surfing", **changes) -> Job:
    request = VideoRequest.create(prompt, seed=1234, guidance_scale=7.5)
    values = {
        "id": 7, "guild_id": 1, "channel_id": 2, "user_id": 42,
        "request": request, "state": JobState.QUEUED, "created_at": 0.0,
    }  # fmt: skip
    values.update(changes)
    return Job(**values)


def embed_size(embed) -> int:
    total = len(embed.title or "") + len(embed.description or "") + len(embed.footer.text or "")
    return total + sum(len(f.name) + len(f.value) for f in embed.fields)


def test_markdown_and_mentions_in_prompts_are_shown_literally():
    shown = render.shown_text(
        "**bold** @everyone <@&123456789012345678> <@42424242424242424> _x_", 500
    )
    assert "\\*\\*bold\\*\\*" in shown
    assert "@everyone" not in shown  # a zero-width space breaks it
    assert "<@&123456789012345678>" not in shown and "<@42424242424242424>" not in shown
    assert "\\_x\\_" in shown


def test_long_prompts_are_cut_without_breaking_an_escape():
    prompt = "*" * 2000
    shown = render.shown_text(prompt, 301)
    assert len(shown) <= 301
    assert shown.endswith("…")
    body = shown[:-1]
    assert body == "\\*" * (len(body) // 2)


def test_short_prompts_are_not_cut():
    assert render.shown_text("a calm lake", 100) == "a calm lake"


def test_progress_bar_is_bounded():
    assert render.progress_bar(0).startswith("▱" * render.BAR_CELLS)
    assert render.progress_bar(1.7).startswith("▰" * render.BAR_CELLS)
    assert render.progress_bar(0.5).endswith("50%")


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (Progress(7, ProgressPhase.QUEUED), "Waiting for a free slot"),
        (Progress(7, ProgressPhase.QUEUED, position=1), "Waiting in line: you are next"),
        (Progress(7, ProgressPhase.QUEUED, position=3), "Waiting in line: 2 ahead of you"),
        (
            Progress(7, ProgressPhase.QUEUED, behind_own_job=True),
            "Waiting for your other video to finish",
        ),
        (Progress(7, ProgressPhase.SEGMIND_QUEUED, elapsed=3), "Queued at Segmind"),
        (Progress(7, ProgressPhase.PROCESSING, elapsed=65, fraction=0.3), "Generating"),
    ],
)
def test_progress_embed_says_where_the_job_is(progress, expected):
    job = make_job(submitted_at=1000.0)
    embed = render.progress_embed(job, progress, "$0.36 · 2 of 3 clips left today")
    field = embed.fields[0].value
    assert expected in field
    assert "Job #7" in embed.footer.text and "seed 1234" in embed.footer.text
    assert embed.footer.text.endswith("$0.36 · 2 of 3 clips left today")
    # Started at Segmind: a time Discord's clients count live, not a duration to edit.
    assert ("Started <t:1000:R>" in field) == (progress.elapsed > 0)


def progress_at(elapsed: float, expected: float = 240.0, **changes) -> Progress:
    fraction = min(0.97, elapsed / expected)
    return Progress(7, ProgressPhase.PROCESSING, elapsed=elapsed, fraction=fraction,
                    expected=expected, likely_left=expected - elapsed + 20, **changes)  # fmt: skip


def test_progress_key_ignores_changes_a_member_cannot_see():
    # Seconds passing change nothing shown: the start and end are times clients count.
    assert render.progress_key(progress_at(61.0)) == render.progress_key(progress_at(68.0))
    # The bar moving a cell, or the expected end moving by more than a step, does.
    assert render.progress_key(progress_at(61.0)) != render.progress_key(progress_at(73.0))
    assert render.progress_key(progress_at(61.0)) != render.progress_key(progress_at(61.0, 270))
    assert render.progress_key(progress_at(61.0)) == render.progress_key(progress_at(61.0, 243))
    assert render.progress_key(progress_at(61.0)) != render.progress_key(
        progress_at(61.0, late=True)
    )


def test_a_processing_job_is_edited_about_once_per_cell_not_every_few_seconds():
    # A 4-minute clip reported every second: the text changes about once per bar cell.
    shown = {render.progress_key(progress_at(t, 240.0)) for t in range(1, 240)}
    assert len(shown) <= render.BAR_CELLS + 3
    texts = {
        render.progress_embed(make_job(submitted_at=1000.0), progress_at(t, 240.0)).fields[0].value
        for t in range(1, 240)
    }
    assert len(texts) == len(shown)  # and whenever the key changes, so does the text


def test_result_embed_shows_every_parameter_and_the_seed():
    embed = render.result_embed(make_job())
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Seed"] == "`1234`"
    assert fields["Frames"] == "49 at 8 fps"
    assert fields["Steps"] == "45"
    assert fields["Guidance"] == "7.5"
    assert fields["Negative prompt"] == "low quality, blurry"


def test_a_maximal_prompt_fits_discord_limits():
    job = make_job("@everyone " + "*_~" * 663)
    for embed in (
        render.result_embed(job, "$0.36 · 0 of 1 clips left today"),
        render.progress_embed(job, Progress(7, ProgressPhase.PROCESSING, elapsed=10), None),
        render.failure_embed(job, "x" * 5000),
    ):
        assert len(embed.description) <= render.EMBED_DESCRIPTION_MAX
        assert all(len(f.value) <= render.FIELD_VALUE_MAX for f in embed.fields)
        assert embed_size(embed) <= 6000


def test_result_content_pings_only_the_requester_and_marks_links_as_expiring():
    job = make_job()
    assert render.result_content(job) == "<@42>, your video is ready."
    linked = render.result_content(job, link="https://cdn.example/v.mp4")
    assert "https://cdn.example/v.mp4" in linked and "expires within an hour" in linked
    # With the submit time known, exactly when: Segmind keeps results one hour.
    timed = render.result_content(make_job(submitted_at=1000.0), link="https://cdn.example/v")
    assert "The link expires <t:4600:R>" in timed
    assert len(render.result_content(job, link="https://x/" + "a" * 3000)) <= render.CONTENT_MAX


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"state": JobState.FAILED}, "Nothing was spent"),
        ({"state": JobState.UNKNOWN, "cost_usd": 0.36}, "may have reached Segmind"),
        (
            {"state": JobState.FAILED, "request_id": "r1", "cost_usd": 0.36},
            "counts toward your limit ($0.36)",
        ),
    ],
)
def test_a_failure_says_whether_it_still_counts(changes, expected):
    embed = render.failure_embed(make_job(**changes), "Segmind could not make this video.")
    assert embed.colour == render.COLOUR_FAILED
    assert ("Requested by", "<@42>") in [(f.name, f.value) for f in embed.fields]
    assert expected in next(f.value for f in embed.fields if f.name == "Cost")


def test_a_cancelled_video_is_not_shown_as_a_failure():
    embed = render.failure_embed(make_job(state=JobState.CANCELLED), "This video was cancelled.")
    assert embed.title == "Video cancelled" and embed.colour == render.COLOUR_QUIET


def test_progress_shows_the_expected_end_by_its_forecast_and_no_full_bar_before_done():
    progress = Progress(7, ProgressPhase.PROCESSING, elapsed=30, fraction=0.1, expected=270)
    value = render.progress_embed(make_job(submitted_at=1000.0), progress).fields[0].value
    assert "Started <t:1000:R>, expected to finish <t:1270:R>" in value
    assert "▰▱▱▱▱▱▱▱▱▱ 10%" in value
    assert "▱" in render.progress_bar(0.97)


@pytest.mark.parametrize(
    ("elapsed", "expected", "likely_left", "late", "said"),
    [
        (100, 120, None, False, "almost done"),
        (300, 300, None, False, "taking longer than usual"),
        (30, 100, None, False, "expected to finish <t:1100:R>"),
        # The mean end is near, but a slow clip of this kind may take another minute.
        (210, 225, 45, False, "expected to finish <t:1225:R>"),
        (215, 225, 20, False, "almost done"),
        (260, 270, 5, True, "taking longer than usual"),
    ],
)
def test_the_time_left_is_said_plainly_near_and_past_the_end(
    elapsed, expected, likely_left, late, said
):
    progress = Progress(
        7,
        ProgressPhase.PROCESSING,
        elapsed=elapsed,
        fraction=0.9,
        expected=expected,
        likely_left=likely_left,
        late=late,
    )
    assert render.timing_line(make_job(submitted_at=1000.0), progress) == (
        f"Started <t:1000:R>, {said}"
    )


def test_a_cancel_says_whether_it_still_counts():
    assert render.cancelled(make_job()) == "Cancelled. Nothing was spent."
    started = render.cancelled(make_job(request_id="r-1"))
    assert "Segmind had already started it" in started and "counts toward the limit" in started


def test_the_finished_progress_points_at_the_clip():
    job = make_job()
    assert render.where_posted(job, 99, by_dm=True).startswith("Sent to the requester by direct")
    assert render.where_posted(job, None, by_dm=False) == "Posted below."
    link = render.where_posted(job, 99, by_dm=False)
    assert (
        link
        == f"[Jump to the video](https://discord.com/channels/{job.guild_id}/{job.channel_id}/99)"
    )


def test_a_dm_names_the_server_literally():
    job = make_job()
    assert render.origin(job, "**Bold** _server_") == (
        f"You asked for it in **\\*\\*Bold\\*\\* \\_server\\_**, <#{job.channel_id}>."
    )
    assert "a server" in render.origin(job, None)
