"""Work nobody awaits is held until it ends, and its failure reaches the log."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from services.background import BackgroundTasks


async def test_a_spawned_task_is_held_until_it_ends() -> None:
    tasks = BackgroundTasks()
    release = asyncio.Event()
    done: list[int] = []

    async def work() -> None:
        await release.wait()
        done.append(1)

    tasks.spawn(work())
    gc.collect()  # asyncio itself keeps only a weak reference
    assert len(tasks) == 1
    release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert done == [1] and len(tasks) == 0


async def test_a_failure_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    tasks = BackgroundTasks()

    async def broken() -> None:
        raise RuntimeError("boom")

    task = tasks.spawn(broken())
    with caplog.at_level(logging.ERROR, logger="services.background"):
        await asyncio.wait({task})
        await asyncio.sleep(0)
    [record] = [r for r in caplog.records if r.name == "services.background"]
    assert record.exc_info is not None and "boom" in str(record.exc_info[1])
    assert len(tasks) == 0


async def test_a_cancelled_task_is_not_reported_as_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks()
    task = tasks.spawn(asyncio.sleep(10))
    task.cancel()
    with caplog.at_level(logging.ERROR, logger="services.background"):
        await asyncio.wait({task})
        await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.name == "services.background"]
