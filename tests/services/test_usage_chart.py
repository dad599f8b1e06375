"""The usage chart's numbers from real SQLite rows, and the PNG they draw."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from services import usage_chart
from services.limits import LimitService
from services.models import JobState, MemberTotal, VideoRequest
from services.periods import LimitSpec
from services.storage import NewJob, Storage
from services.usage_chart import (
    HEIGHT_PX,
    TOP_MEMBERS,
    WIDTH_PX,
    DayUsage,
    UsageSeries,
    render_usage_chart,
    render_usage_png,
)
from tests.fakeclock import FakeClock

ROOT = Path(__file__).resolve().parents[2]
D = 86400
GUILD, OTHER_GUILD = 10, 11
ALICE, BOB = 1, 2


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


NOW = ts("2024-05-15T12:00:00")  # a Wednesday: a week back starts on Wednesday 8 May, noon


@pytest.fixture
async def storage(database_location: Path | str) -> AsyncIterator[Storage]:
    storage = await Storage.open(database_location)
    yield storage
    await storage.close()


@pytest.fixture
def service(storage: Storage) -> LimitService:
    return LimitService(
        storage, default_limit=LimitSpec(5, D), clock=FakeClock(NOW), clip_cost_usd=0.36
    )


async def _job(
    storage: Storage, user: int, at: float, *, cost: float = 0.36, guild: int = GUILD
) -> int:
    job = await storage.jobs.insert(
        NewJob(guild, 5, user, VideoRequest.create("a fox", seed=1), created_at=at, cost_usd=cost)
    )
    return job.id


def _days(series: UsageSeries) -> list[tuple[str, int, float]]:
    return [
        (datetime.fromtimestamp(d.day_start, UTC).strftime("%m-%d"), d.clips, round(d.cost_usd, 2))
        for d in series.days
    ]


# --- the numbers --------------------------------------------------------------------------


async def test_every_utc_day_of_the_period_is_there_quiet_ones_as_zero(
    service: LimitService, storage: Storage
) -> None:
    await _job(storage, ALICE, ts("2024-05-08T11:59:59"))  # just before the week: left out
    await _job(storage, ALICE, ts("2024-05-08T12:00:00"))  # the week's first second: in
    await _job(storage, BOB, ts("2024-05-09T23:59:59"), cost=0.5)
    await _job(storage, ALICE, ts("2024-05-10T00:00:00"), cost=0.25)  # the next UTC day
    await _job(storage, BOB, ts("2024-05-15T11:59:00"))
    await _job(storage, BOB, ts("2024-05-15T11:00:00"), guild=OTHER_GUILD)  # another server

    report = await service.usage_report(GUILD, period="1w")

    assert _days(report.series) == [
        ("05-08", 1, 0.36),
        ("05-09", 1, 0.5),
        ("05-10", 1, 0.25),
        ("05-11", 0, 0.0),
        ("05-12", 0, 0.0),
        ("05-13", 0, 0.0),
        ("05-14", 0, 0.0),
        ("05-15", 1, 0.36),
    ]
    assert all(d.day_start % D == 0 for d in report.series.days)  # UTC midnights
    # The chart and the text come from the same rows: they cannot disagree.
    assert report.series.total_clips == report.total_clips == 4
    assert report.series.total_cost_usd == pytest.approx(report.total_cost_usd)
    assert report.series.top == report.totals
    # Equal counts rank by id, as the text always did.
    assert [(t.user_id, t.clips, round(t.cost_usd, 2)) for t in report.series.top] == [
        (ALICE, 2, 0.61),
        (BOB, 2, 0.86),
    ]


async def test_a_period_shorter_than_a_day_shows_the_days_it_touches(
    service: LimitService, storage: Storage
) -> None:
    await _job(storage, ALICE, ts("2024-05-14T23:00:00"))
    await _job(storage, ALICE, ts("2024-05-15T01:00:00"))
    await _job(storage, ALICE, ts("2024-05-15T11:00:00"))

    hours = await service.usage_report(GUILD, period="6h")
    day = await service.usage_report(GUILD, period="1d")

    assert _days(hours.series) == [("05-15", 1, 0.36)]  # 06:00 to noon: one day, one clip
    assert _days(day.series) == [("05-14", 1, 0.36), ("05-15", 2, 0.72)]


async def test_only_counted_jobs_make_the_chart_as_they_make_the_limits(
    service: LimitService, storage: Storage
) -> None:
    at = ts("2024-05-15T10:00:00")
    await _job(storage, ALICE, at)  # queued: holds a reservation, counted
    refused = await _job(storage, ALICE, at)
    await storage.jobs.update(refused, now=at, state=JobState.FAILED)  # never accepted
    cancelled = await _job(storage, ALICE, at)
    await storage.jobs.update(cancelled, now=at, state=JobState.CANCELLED)  # before submit
    billed = await _job(storage, ALICE, at, cost=0.4)
    await storage.jobs.update(billed, now=at, state=JobState.FAILED, request_id="r-1")
    delivered = await _job(storage, ALICE, at, cost=0.3)
    await storage.jobs.update(delivered, now=at, state=JobState.DELIVERED, request_id="r-2")

    report = await service.usage_report(GUILD, period="1d")

    assert report.series.days[-1] == DayUsage(ts("2024-05-15T00:00:00"), 3, pytest.approx(1.06))
    assert report.series.total_clips == report.total_clips == 3


async def test_one_member_s_usage_has_their_days_and_no_ranking(
    service: LimitService, storage: Storage
) -> None:
    await _job(storage, ALICE, ts("2024-05-13T09:00:00"))
    await _job(storage, BOB, ts("2024-05-13T10:00:00"))
    await _job(storage, BOB, ts("2024-05-14T10:00:00"))

    report = await service.usage_report(GUILD, period="3d", user_id=BOB)

    assert _days(report.series) == [
        ("05-12", 0, 0.0),
        ("05-13", 1, 0.36),
        ("05-14", 1, 0.36),
        ("05-15", 0, 0.0),
    ]
    assert report.series.user_id == BOB and report.series.top == ()
    assert report.totals == (MemberTotal(BOB, 2, pytest.approx(0.72)),)


async def test_the_ranking_keeps_the_top_members_by_clips(
    service: LimitService, storage: Storage
) -> None:
    for user in range(100, 100 + TOP_MEMBERS + 3):
        for _ in range(user % 5 + 1):
            await _job(storage, user, NOW - 3600)

    report = await service.usage_report(GUILD, period="1d")

    assert len(report.totals) == TOP_MEMBERS + 3  # the text still lists everyone
    assert len(report.series.top) == TOP_MEMBERS
    ranked = [(t.clips, t.user_id) for t in report.series.top]
    assert ranked == sorted(ranked, key=lambda pair: (-pair[0], pair[1]))
    assert report.series.top == report.totals[:TOP_MEMBERS]


async def test_a_quiet_period_is_all_zero_and_has_no_busiest_day(service: LimitService) -> None:
    report = await service.usage_report(GUILD, period="4w")
    assert len(report.series.days) == 29  # 28 days back from noon touches 29 UTC days
    assert report.series.total_clips == 0 and report.series.busiest is None


# --- the picture ----------------------------------------------------------------------------


def _series(days: int, members: int, *, user_id: int | None = None) -> UsageSeries:
    start = ts("2024-01-01T00:00:00")
    return UsageSeries(
        since=start,
        until=start + (days - 1) * D,
        user_id=user_id,
        days=tuple(DayUsage(start + i * D, i % 7, (i % 7) * 0.36) for i in range(days)),
        top=tuple(MemberTotal(1000 + i, 50 - i, (50 - i) * 0.36) for i in range(members)),
    )


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


@pytest.mark.parametrize(
    ("days", "members", "user_id"),
    [(8, 10, None), (365, 10, None), (1, 0, None), (30, 0, ALICE)],
)
def test_the_chart_is_an_opaque_png_of_the_promised_size(
    days: int, members: int, user_id: int | None
) -> None:
    png = render_usage_png(_series(days, members, user_id=user_id), {}, "Video usage, last week")

    image = _decode(png)
    assert image.format == "PNG"
    assert image.size == (WIDTH_PX, HEIGHT_PX)
    assert image.mode == "RGB" or image.getchannel("A").getextrema() == (255, 255)  # opaque
    assert image.convert("RGB").getpixel((2, 2)) == (255, 255, 255)  # the card, not a hole
    assert len(png) < 500_000  # small next to Discord's upload limit


def test_names_are_drawn_as_text_whatever_they_contain() -> None:
    names = {
        1000: "$x^2$ \\frac",  # would be a formula (or an error) if parsed as mathtext
        1001: "line\nbreak\x00",
        1002: "😀🦊 Fox",
        1003: "ꙮ" * 3 + "A very long name that goes on and on",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph or a bad formula warns
        png = render_usage_png(_series(7, 4), names, "Video usage on $erver 🦊, last week")
    assert _decode(png).size == (WIDTH_PX, HEIGHT_PX)
    assert usage_chart.drawable("line\nbreak\x00", limit=22) == "line break"
    assert usage_chart.drawable("x" * 40, limit=22) == "x" * 21 + "…"


def test_rendering_a_year_with_ten_members_is_quick() -> None:
    series = _series(365, 10)
    render_usage_png(series, {}, "warm up")  # the first render pays matplotlib's import
    started = time.perf_counter()
    render_usage_png(series, {}, "Video usage, last 52 weeks")
    assert time.perf_counter() - started < 5.0  # typically well under a second


async def test_rendering_runs_in_a_worker_thread_not_on_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[int] = []

    def fake_render(series: UsageSeries, names: object, title: str) -> bytes:
        threads.append(threading.get_ident())
        return b"png"

    monkeypatch.setattr(usage_chart, "render_usage_png", fake_render)
    loop_thread = threading.get_ident()
    assert await render_usage_chart(_series(3, 1), {}, "t") == b"png"
    assert threads and threads[0] != loop_thread
    assert asyncio.get_running_loop().is_running()


def test_starting_the_bot_does_not_import_matplotlib() -> None:
    code = (
        "import sys, cogs.videobot, services.app, services.usage_chart, cogs.limits.usage_chart;"
        " sys.exit('matplotlib' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:] or "matplotlib was imported at start"
