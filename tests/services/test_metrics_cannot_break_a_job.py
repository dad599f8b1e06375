"""A metric that breaks never costs a job: counts sit between a paid submit and its record."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from services.clips import ClipFiles
from services.clock import SystemClock
from services.download import ClipDownloader
from services.gates import AccountGates
from services.jobs import JobRunner
from services.metrics import Metrics
from services.models import JobState
from services.runner_config import RunnerConfig
from tests.services.test_jobs import QUICK, Recorder, add_job, storage  # noqa: F401


def broken_metrics() -> Metrics:
    """Every labelled counter and histogram raises, as a bug in them would."""
    metrics = Metrics()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("metrics broke")

    for name in ("_submits", "_deliveries", "_detection", "_generation", "_queue_wait", "_polls"):
        collector = getattr(metrics, name)
        for method in ("labels", "inc", "observe"):
            if hasattr(collector, method):
                setattr(collector, method, broken)
    return metrics


async def test_broken_metrics_neither_lose_a_paid_clip_nor_fail_a_delivered_one(
    storage,  # noqa: F811 - the fixture
    segmind_client,
    simulator,
    tmp_path,
    caplog: pytest.LogCaptureFixture,
):
    clock = SystemClock()
    recorder = Recorder()
    downloader = ClipDownloader(trusted_base_url=segmind_client.base_url)
    runner = JobRunner(
        storage,
        segmind_client,
        RunnerConfig(progress_interval=0.02, delivery_attempts=2, delivery_backoff=QUICK),
        downloader=downloader,
        clips=ClipFiles(tmp_path / "clips"),
        clock=clock,
        gates=AccountGates.create(clock, 60),
        listener=recorder,
        metrics=broken_metrics(),
    )
    await runner.start()
    try:
        job = await add_job(storage)
        await runner.enqueue(job)
        await asyncio.wait_for(runner.wait_idle(), 10)
    finally:
        await runner.shutdown(timeout=1)
        await downloader.close()
    stored = await storage.jobs.get(job.id)
    assert stored is not None
    assert stored.state is JobState.DELIVERED and stored.request_id is not None
    assert len(simulator.submits) == 1 and len(recorder.ready) == 1 and not recorder.failed
    assert any("metrics:" in r.message and r.levelno == logging.WARNING for r in caplog.records)
