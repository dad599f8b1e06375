"""Spend from Segmind's own figures: a result's `metrics.cost` replaces the estimate, if sane."""

from __future__ import annotations

import logging
import math
import time

import pytest

from services.gates import AccountGates
from services.metrics import Metrics
from services.models import JobState, VideoRequest
from services.reported_cost import (
    MAX_REPORTED_COST_USD,
    RECENT_PRICE_JOBS,
    RECENT_PRICE_LATEST,
    RECENT_PRICE_SECONDS,
    recent_prices,
    reported_cost_usd,
    reservation_usd,
)
from services.simulator import SegmindSimulator
from services.storage import NewJob, Storage
from tests.fakeclock import FakeClock
from tests.services.test_jobs import (  # noqa: F401 (fixtures)
    Recorder,
    make_runner,
    storage,
)
from tests.services.test_metrics import sample, scraped

ESTIMATE = 0.36
GUILD = 10


async def run_one_job(storage: Storage, make_runner, *, cost: float = ESTIMATE):  # noqa: F811
    runner, recorder = make_runner()
    await runner.start()
    job = await storage.jobs.insert(
        NewJob(
            guild_id=GUILD,
            channel_id=20,
            user_id=1,
            request=VideoRequest.create("a heron at dawn"),
            created_at=time.time(),
            cost_usd=cost,
        )
    )
    await runner.enqueue(job)
    await recorder.wait_for(lambda: recorder.ready or recorder.failed)
    await runner.wait_idle()
    return await storage.jobs.get(job.id), recorder


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"cost": 0.5}, 0.5),
        ({"cost": 1}, 1.0),
        ({"cost": 0.036}, 0.036),  # a tenth of the estimate: still believed
        ({"cost": 3.6}, 3.6),  # ten times the estimate: still believed
        ({"cost": 0}, None),  # below a tenth of the estimate: budgets would undercount
        ({"cost": 0.0359}, None),
        ({"cost": 3.61}, None),
        ({"cost": 36}, None),  # cents for dollars
        ({}, None),  # no figure: the estimate stands
        ({"cost": "0.5"}, None),
        ({"cost": None}, None),
        ({"cost": True}, None),
        ({"cost": -0.01}, None),
        ({"cost": math.nan}, None),
        ({"cost": math.inf}, None),
        ({"cost": MAX_REPORTED_COST_USD}, None),
        ({"cost": [0.5]}, None),
    ],
)
def test_only_a_finite_price_in_range_is_taken(metrics, expected) -> None:
    assert reported_cost_usd(metrics, job_id=1, estimate_usd=ESTIMATE) == expected


def test_a_figure_that_is_no_price_is_logged_without_its_value_being_trusted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="services.reported_cost"):
        assert reported_cost_usd({"cost": "lots"}, job_id=42, estimate_usd=ESTIMATE) is None
        assert reported_cost_usd({"cost": -3.0}, job_id=43, estimate_usd=ESTIMATE) is None
        assert reported_cost_usd({"cost": 36.0}, job_id=44, estimate_usd=ESTIMATE) is None
    assert [r.getMessage() for r in caplog.records] == [
        "job=42 Segmind reported a cost that is not a number (str); keeping the estimate",
        "job=43 Segmind reported a cost out of range (-3.0); keeping the estimate",
        "job=44 Segmind reported 36.0000 USD, not within 10x of CLIP_COST_USD=0.3600"
        " (a unit mix-up?); keeping the estimate",
    ]


def test_a_cost_above_the_reservation_is_taken_and_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="services.reported_cost"):
        assert reported_cost_usd({"cost": 0.8}, job_id=7, estimate_usd=0.36, reserved_usd=0.36) == (
            0.8
        )
        # Within what was reserved: nothing to warn about.
        assert reported_cost_usd({"cost": 0.8}, job_id=8, estimate_usd=0.36, reserved_usd=0.8) == (
            0.8
        )
    assert [r.getMessage() for r in caplog.records] == [
        "job=7 Segmind reported 0.8000 USD, more than the 0.3600 USD reserved for it"
    ]


async def test_segminds_figure_replaces_the_estimate_and_the_sums_count_it(
    storage: Storage,  # noqa: F811
    make_runner,  # noqa: F811
    simulator: SegmindSimulator,
) -> None:
    simulator.config.reported_cost = 0.5

    job, recorder = await run_one_job(storage, make_runner)

    assert job.state is JobState.DELIVERED and not recorder.failed
    assert (job.cost_usd, job.cost_reported) == (0.5, True)
    assert recorder.ready[0].cost_usd == 0.5  # the clip is posted with its real price
    clips, spent = await storage.jobs.guild_counted(GUILD, since=0)
    assert (clips, spent) == (1, pytest.approx(0.5))
    _, everywhere = await storage.jobs.counted_since(0)  # the operator's daily ceiling
    assert everywhere == pytest.approx(0.5)


@pytest.mark.parametrize("malformed", ["0.5", -1, math.nan, 1e9, None, 36.0, 0.0])
async def test_a_malformed_cost_keeps_the_estimate_and_never_fails_the_clip(
    storage: Storage,  # noqa: F811
    make_runner,  # noqa: F811
    simulator: SegmindSimulator,
    malformed: object,
) -> None:
    simulator.config.reported_cost = malformed

    job, recorder = await run_one_job(storage, make_runner)

    assert job.state is JobState.DELIVERED and not recorder.failed
    assert (job.cost_usd, job.cost_reported) == (ESTIMATE, False)


async def test_billed_spend_never_falls_when_segminds_figure_is_below_the_estimate(
    storage: Storage,  # noqa: F811
) -> None:
    metrics = Metrics()
    metrics.watch(storage, AccountGates.create(FakeClock(), 600))
    job = await storage.jobs.insert(
        NewJob(GUILD, 20, 1, VideoRequest.create("a heron"), created_at=1.0, cost_usd=ESTIMATE)
    )
    await storage.jobs.update(job.id, now=2.0, state=JobState.PROCESSING, request_id="r-1")
    await metrics.refresh()
    assert sample(scraped(metrics), "videobot_spend_billed_usd_total", guild=str(GUILD)) == (
        pytest.approx(ESTIMATE)
    )

    await storage.jobs.update(job.id, now=3.0, cost_usd=0.2, cost_reported=True)
    await metrics.refresh()
    text = scraped(metrics)

    # The budgets' gauge tells the truth at once; the counter holds (a counter that fell
    # would read as a restart), and resumes once real spend passes it.
    assert sample(text, "videobot_spend_counted_usd", guild=str(GUILD)) == pytest.approx(0.2)
    assert sample(text, "videobot_spend_billed_usd_total", guild=str(GUILD)) == pytest.approx(
        ESTIMATE
    )
    second = await storage.jobs.insert(
        NewJob(GUILD, 20, 1, VideoRequest.create("a crane"), created_at=4.0, cost_usd=ESTIMATE)
    )
    await storage.jobs.update(second.id, now=5.0, state=JobState.PROCESSING, request_id="r-2")
    await metrics.refresh()
    assert sample(
        scraped(metrics), "videobot_spend_billed_usd_total", guild=str(GUILD)
    ) == pytest.approx(0.2 + ESTIMATE)


async def test_a_job_that_costs_more_than_its_reservation_is_counted_at_segminds_figure(
    storage: Storage,  # noqa: F811
    make_runner,  # noqa: F811
    simulator: SegmindSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator.config.reported_cost = 0.8
    caplog.set_level(logging.WARNING, logger="services.reported_cost")

    job, _ = await run_one_job(storage, make_runner)

    assert (job.cost_usd, job.cost_reported) == (0.8, True)
    assert f"job={job.id} Segmind reported 0.8000 USD, more than the 0.3600 USD reserved" in (
        caplog.text
    )


# --- what admission reserves ------------------------------------------------------------------


async def store_reported(
    storage: Storage,  # noqa: F811
    cost: float,
    *,
    frames: int = 60,
    steps: int = 50,
    created_at: float = 1000.0,
    reported: bool = True,
) -> None:
    job = await storage.jobs.insert(
        NewJob(
            GUILD,
            20,
            1,
            VideoRequest.create("a heron", input_frames=frames, steps=steps),
            created_at=created_at,
            cost_usd=ESTIMATE,
        )
    )
    await storage.jobs.update(job.id, now=created_at, cost_usd=cost, cost_reported=reported)


async def read_prices(storage: Storage, now: float) -> dict[tuple[int, int], float]:  # noqa: F811
    async with storage.db.transaction() as tx:
        return await recent_prices(storage.jobs, now, ESTIMATE, tx=tx)


async def test_the_reservation_is_the_highest_recent_figure_for_the_same_clip_size(
    storage: Storage,  # noqa: F811
) -> None:
    await store_reported(storage, 0.5)
    await store_reported(storage, 0.8)
    await store_reported(storage, 0.6)
    await store_reported(storage, 2.0, frames=16, steps=25)
    await store_reported(storage, 3.0, reported=False)  # an estimate, not Segmind's figure

    prices = await read_prices(storage, now=2000.0)

    assert prices == {(60, 50): 0.8, (16, 25): 2.0}
    big = VideoRequest.create("a heron", input_frames=60, steps=50)
    assert reservation_usd(big, ESTIMATE, prices) == 0.8
    # Another size, never reported: the operator's estimate.
    other = VideoRequest.create("a heron", input_frames=60, steps=40)
    assert reservation_usd(other, ESTIMATE, prices) == ESTIMATE
    # Segmind charging less than the estimate never lowers a reservation below it.
    assert reservation_usd(big, ESTIMATE, {(60, 50): 0.1}) == ESTIMATE


async def test_old_and_untrusted_figures_do_not_raise_the_reservation(
    storage: Storage,  # noqa: F811
) -> None:
    now = 1000.0 + RECENT_PRICE_SECONDS + 1
    await store_reported(storage, 0.9, created_at=1000.0)  # over a week old
    await store_reported(storage, 50.0, created_at=now)  # stored before the bound existed
    await store_reported(storage, 0.7, created_at=now)

    assert await read_prices(storage, now) == {(60, 50): 0.7}


async def test_one_odd_figure_is_outvoted_once_three_newer_reports_exist(
    storage: Storage,  # noqa: F811
) -> None:
    assert RECENT_PRICE_LATEST == 3
    await store_reported(storage, 3.0, created_at=1000.0)  # within 10x, but a one-off
    await store_reported(storage, 0.4, created_at=1001.0)
    await store_reported(storage, 0.4, created_at=1002.0)
    # Until three newer figures exist, the odd one still counts: it may be a real price.
    assert await read_prices(storage, now=2000.0) == {(60, 50): 3.0}

    await store_reported(storage, 0.4, created_at=1003.0)
    await store_reported(storage, 2.5, frames=16, steps=25, created_at=1004.0)

    # Outvoted for its size; another size's latest figure is its own.
    assert await read_prices(storage, now=2000.0) == {(60, 50): 0.4, (16, 25): 2.5}


async def test_a_real_price_rise_shows_at_its_first_report(
    storage: Storage,  # noqa: F811
) -> None:
    for n in range(5):
        await store_reported(storage, 0.36, created_at=1000.0 + n)
    await store_reported(storage, 0.6, created_at=1010.0)

    assert await read_prices(storage, now=2000.0) == {(60, 50): 0.6}


async def test_the_reservation_reads_only_the_latest_reported_jobs(
    storage: Storage,  # noqa: F811
) -> None:
    await store_reported(storage, 0.9, created_at=1000.0)
    for n in range(RECENT_PRICE_JOBS):
        await store_reported(storage, 0.5, created_at=1001.0 + n)

    assert await read_prices(storage, now=5000.0) == {(60, 50): 0.5}
