"""A job's failure message is owed until shown: once, however the restart and the ending meet."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.backoff import Backoff
from services.errors import BotError
from services.failure_notices import (
    CLAIM_MARGIN,
    FAILURE_NOTICE_WINDOW,
    FailureNotices,
    StoredFailure,
)
from services.job_listener import JobReporter
from services.models import Job, JobState, VideoRequest
from services.runner_config import RunnerConfig
from services.storage import NewJob, Storage
from tests.fakeclock import FakeClock


class Listener:
    """Records each failure message; fails the first ``refuse`` attempts, holds on ``gate``."""

    def __init__(self, refuse: int = 0) -> None:
        self.told: list[tuple[int, BotError]] = []
        self.refuse = refuse
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def on_failed(self, job: Job, error: BotError) -> None:
        self.entered.set()
        await self.gate.wait()
        if self.refuse > 0:
            self.refuse -= 1
            raise ConnectionResetError("Discord is down")
        self.told.append((job.id, error))


@pytest.fixture
async def storage(database_location: Path | str) -> AsyncIterator[Storage]:
    store = await Storage.open(database_location)
    yield store
    await store.close()


async def ended_owing(storage: Storage, clock: FakeClock) -> Job:
    job = await storage.jobs.insert(
        NewJob(10, 20, 1, VideoRequest.create("a heron"), created_at=clock.time())
    )
    return await storage.jobs.update(
        job.id,
        now=clock.time(),
        state=JobState.FAILED,
        error="Segmind could not make this video.",
        failure_notice_due=clock.time(),
    )


def notices(storage: Storage, clock: FakeClock, listener: Listener) -> FailureNotices:
    config = RunnerConfig(delivery_backoff=Backoff(base=1.0, cap=5.0))
    reporter = JobReporter(listener)  # type: ignore[arg-type]
    return FailureNotices(storage, config, clock=clock, reporter=reporter, rng=random.Random(1))


async def settled(storage: Storage, job_id: int) -> bool:
    job = await storage.jobs.get(job_id)
    return job is not None and job.failure_notice_due is None


async def until_settled(storage: Storage, job_id: int) -> None:
    async with asyncio.timeout(5):
        while not await settled(storage, job_id):
            await asyncio.sleep(0.01)


async def test_a_refused_message_is_tried_again_until_shown(storage):
    clock, listener = FakeClock(), Listener(refuse=3)
    job = await ended_owing(storage, clock)
    telling = notices(storage, clock, listener)

    await telling.tell(job, BotError("Segmind could not make this video."))
    await until_settled(storage, job.id)

    assert [job_id for job_id, _ in listener.told] == [job.id]
    assert len(clock.sleeps) == 3  # one backoff wait per refusal


async def test_a_restart_during_the_first_attempt_does_not_tell_twice(storage):
    clock, listener = FakeClock(), Listener()
    job = await ended_owing(storage, clock)
    telling = notices(storage, clock, listener)
    listener.gate.clear()  # the first attempt is slow (discord.py retrying)

    first = asyncio.create_task(telling.tell(job, BotError("Segmind could not make this video.")))
    await listener.entered.wait()
    await telling.resume()  # reads the same job back, still owed
    listener.gate.set()
    await first
    for _ in range(20):  # any second telling would run within these turns (no real waits)
        await asyncio.sleep(0)

    assert len(listener.told) == 1
    assert telling.pending == 0


async def test_after_a_restart_the_stored_wording_is_told(storage):
    clock, listener = FakeClock(), Listener()
    job = await ended_owing(storage, clock)
    telling = notices(storage, clock, listener)

    assert await telling.resume() == 1
    await until_settled(storage, job.id)

    ((job_id, error),) = listener.told
    assert job_id == job.id and isinstance(error, StoredFailure)
    assert error.user_message == "Segmind could not make this video."


async def test_a_notice_older_than_the_window_is_not_told(storage):
    clock, listener = FakeClock(), Listener()
    await ended_owing(storage, clock)
    clock.advance(FAILURE_NOTICE_WINDOW + 1)

    assert await notices(storage, clock, listener).resume() == 0
    assert listener.told == []


async def test_shutdown_leaves_the_notice_owed_for_the_next_start(storage):
    clock, listener = FakeClock(), Listener(refuse=1)
    job = await ended_owing(storage, clock)
    telling = notices(storage, clock, listener)
    listener.gate.clear()
    first = asyncio.create_task(telling.tell(job, BotError("x")))
    await listener.entered.wait()

    telling.stop()
    listener.gate.set()
    await first  # refused, and no retry starts after the stop

    assert telling.pending == 0
    assert not await settled(storage, job.id)


# --- several processes on one database -------------------------------------------------


@pytest.fixture
async def two_processes(database_location: Path | str) -> AsyncIterator[tuple[Storage, Storage]]:
    """Two connections to one database, as two bot processes would hold."""
    first, second = await Storage.open(database_location), await Storage.open(database_location)
    yield first, second
    await first.close()
    await second.close()


async def test_a_notice_another_process_is_telling_is_not_told_again(
    two_processes: tuple[Storage, Storage],
) -> None:
    clock = FakeClock()
    first_storage, second_storage = two_processes
    job = await ended_owing(first_storage, clock)
    first_listener, second_listener = Listener(), Listener()
    first = notices(first_storage, clock, first_listener)
    second = notices(second_storage, clock, second_listener)
    first_listener.gate.clear()  # the first process's attempt is slow

    telling = asyncio.create_task(first.tell(job, BotError("Segmind could not make this video.")))
    await first_listener.entered.wait()
    assert await second.resume() == 0  # started meanwhile: the notice is owed, but claimed
    first_listener.gate.set()
    await telling
    await until_settled(first_storage, job.id)
    second.stop()

    assert len(first_listener.told) == 1 and second_listener.told == []


async def test_a_dead_process_s_notice_is_told_once_its_claim_runs_out(
    two_processes: tuple[Storage, Storage],
) -> None:
    clock = FakeClock()
    first_storage, second_storage = two_processes
    job = await ended_owing(first_storage, clock)
    first_listener, second_listener = Listener(refuse=1), Listener()
    first = notices(first_storage, clock, first_listener)
    second = notices(second_storage, clock, second_listener)
    first_listener.gate.clear()
    telling = asyncio.create_task(first.tell(job, BotError("x")))
    await first_listener.entered.wait()
    first.stop()  # killed: its claim stays, and nobody of it tries again
    first_listener.gate.set()
    await telling

    assert await second.resume() == 0  # the claim still holds
    clock.advance(CLAIM_MARGIN + 1)
    assert await second.resume() == 1
    await until_settled(second_storage, job.id)
    second.stop()

    assert first_listener.told == [] and [job_id for job_id, _ in second_listener.told] == [job.id]


async def test_a_stopped_process_gives_its_notices_to_the_next_at_once(
    two_processes: tuple[Storage, Storage],
) -> None:
    clock = FakeClock()
    first_storage, second_storage = two_processes
    job = await ended_owing(first_storage, clock)
    first_listener, second_listener = Listener(refuse=1), Listener()
    first = notices(first_storage, clock, first_listener)
    second = notices(second_storage, clock, second_listener)
    first_listener.gate.clear()
    telling = asyncio.create_task(first.tell(job, BotError("x")))
    await first_listener.entered.wait()
    first.stop()
    first_listener.gate.set()
    await telling

    await first.release()  # a graceful stop
    assert await second.resume() == 1
    await until_settled(second_storage, job.id)
    second.stop()

    assert [job_id for job_id, _ in second_listener.told] == [job.id]


async def test_alone_on_the_database_a_start_takes_every_claim_left(storage: Storage) -> None:
    clock, listener = FakeClock(), Listener()
    job = await ended_owing(storage, clock)
    assert await storage.failure_claims.claim(
        job.id, "killed", now=clock.time(), until=clock.time() + CLAIM_MARGIN
    )
    config = RunnerConfig(delivery_backoff=Backoff(base=1.0, cap=5.0))
    alone = FailureNotices(
        storage,
        config,
        clock=clock,
        reporter=JobReporter(listener),  # type: ignore[arg-type]
        rng=random.Random(1),
        shared=False,
    )

    assert await alone.resume() == 1
    await until_settled(storage, job.id)
    alone.stop()
