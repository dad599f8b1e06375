"""Spend from Segmind's own figures: a result's `metrics.cost` replaces the estimate, if sane."""

from __future__ import annotations

import logging
import math
import time

import pytest

from services.gates import AccountGates
from services.metrics import Metrics
from services.models import JobState, VideoRequest
from services.reported_cost import MAX_REPORTED_COST_USD, reported_cost_usd
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
        ({"cost": 0}, 0.0),  # free is a price
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
    assert reported_cost_usd(metrics, job_id=1) == expected


def test_a_figure_that_is_no_price_is_logged_without_its_value_being_trusted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="services.reported_cost"):
        assert reported_cost_usd({"cost": "lots"}, job_id=42) is None
        assert reported_cost_usd({"cost": -3.0}, job_id=43) is None
    assert [r.getMessage() for r in caplog.records] == [
        "job=42 Segmind reported a cost that is not a number (str); keeping the estimate",
        "job=43 Segmind reported a cost out of range (-3.0); keeping the estimate",
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


@pytest.mark.parametrize("malformed", ["0.5", -1, math.nan, 1e9, None])
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
