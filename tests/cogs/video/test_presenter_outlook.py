"""A job's progress never goes back from "almost done" (or late) to a finish time."""

from __future__ import annotations

from cogs.video import render
from cogs.video.presenter import OutlookLatch
from services.models import Job, JobState, Progress, ProgressPhase, VideoRequest

JOB = Job(
    id=7,
    guild_id=1,
    channel_id=2,
    user_id=42,
    request=VideoRequest.create("a cat surfing", seed=1234),
    state=JobState.PROCESSING,
    created_at=0.0,
    submitted_at=1000.0,
)


def at(
    elapsed: float, expected: float, likely_left: float | None = None, *, late: bool = False
) -> Progress:
    return Progress(
        JOB.id,
        ProgressPhase.PROCESSING,
        elapsed=elapsed,
        fraction=min(0.99, elapsed / expected),
        expected=expected,
        likely_left=likely_left,
        late=late,
    )


def said(latch: OutlookLatch, progress: Progress) -> str | None:
    return render.timing_line(JOB, latch.steady(progress))


def test_almost_done_stays_almost_done_when_the_forecast_jumps_out_then_turns_late():
    latch = OutlookLatch()
    # A two-mode history: most clips end near 100 s, some near 300 s.
    shown = [
        said(latch, at(30, 100, 70)),
        said(latch, at(80, 100, 20)),
        said(latch, at(110, 300, 190)),  # outlived the early mode: the mean jumps out
        said(latch, at(200, 300, 100)),
        said(latch, at(260, 300, 40, late=True)),
        said(latch, at(280, 400, 120)),  # the forecast moves again, later still
    ]
    started = "Started <t:1000:R>"
    assert shown == [
        f"{started}, expected to finish <t:1100:R>",
        f"{started}, almost done",
        f"{started}, almost done",
        f"{started}, almost done",
        f"{started}, taking longer than usual",
        f"{started}, taking longer than usual",
    ]


def test_taking_longer_never_goes_back_to_almost_done_or_a_time():
    latch = OutlookLatch()
    assert said(latch, at(120, 100)) == "Started <t:1000:R>, taking longer than usual"
    assert said(latch, at(125, 200, 20)) == "Started <t:1000:R>, taking longer than usual"
    assert said(latch, at(130, 400, 270)) == "Started <t:1000:R>, taking longer than usual"


def test_nothing_is_latched_before_segmind_starts_or_after_the_job_ends():
    latch = OutlookLatch()
    queued = Progress(JOB.id, ProgressPhase.QUEUED, position=2)
    assert latch.steady(queued) == queued  # its outlook would read "late": never shown
    assert said(latch, at(30, 100, 70)) == "Started <t:1000:R>, expected to finish <t:1100:R>"

    said(latch, at(80, 100, 20))
    latch.forget(JOB.id)
    assert said(latch, at(30, 300, 270)) == "Started <t:1000:R>, expected to finish <t:1300:R>"


def test_the_bar_never_moves_back_when_the_forecast_jumps_out():
    latch = OutlookLatch()
    shown = [
        render.bar_cells(latch.steady(at(elapsed, expected)).fraction)
        for elapsed, expected in ((100, 125), (110, 300), (150, 300), (290, 300))
    ]
    assert shown == sorted(shown) and shown[1] == shown[0] == 8
    latch.forget(7)
    assert render.bar_cells(latch.steady(at(30, 300)).fraction) == 1
