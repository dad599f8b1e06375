"""The queue's rules on each engine: who may cancel, and what a cancel leaves counted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.clips import ClipFiles
from services.download import ClipDownloader
from services.gates import AccountGates
from services.job_queue import AlreadyFinished, JobQueue, NotYourJob
from services.jobs import JobRunner
from services.models import Job, JobState, VideoRequest
from services.runner_config import RunnerConfig
from services.storage import NewJob, Storage
from tests.fakeclock import FakeClock

GUILD = 10
MEMBER = 7
MODERATOR = 99
PRICE = 0.36


@pytest.fixture
async def storage(database_location: Path | str) -> AsyncIterator[Storage]:
    store = await Storage.open(database_location)
    yield store
    await store.close()


@pytest.fixture
async def queue(storage: Storage, segmind_client, tmp_path: Path) -> AsyncIterator[JobQueue]:
    """The queue over a real runner that is never started: its jobs stay as stored."""
    clock = FakeClock()
    downloader = ClipDownloader(trusted_base_url=segmind_client.base_url)
    runner = JobRunner(
        storage,
        segmind_client,
        RunnerConfig(),
        downloader=downloader,
        clips=ClipFiles(tmp_path / "clips"),
        clock=clock,
        gates=AccountGates.create(clock, 60),
    )
    yield JobQueue(storage, runner, clock)
    await runner.shutdown(timeout=1)
    await downloader.close()


async def add_job(storage: Storage, *, user_id: int = MEMBER) -> Job:
    return await storage.jobs.insert(
        NewJob(
            guild_id=GUILD,
            channel_id=20,
            user_id=user_id,
            request=VideoRequest.create("a heron in the rain"),
            created_at=100.0,
            cost_usd=PRICE,
        )
    )


async def accepted_then_cancelled(storage: Storage, cancelled_by: int | None) -> Job:
    """A job Segmind had accepted (and so billed) before it was cancelled."""
    job = await add_job(storage)
    return await storage.jobs.update(
        job.id,
        now=200.0,
        request_id="req-1",
        state=JobState.CANCELLED,
        cancelled_by=cancelled_by,
    )


async def member_count(storage: Storage) -> int:
    return len(await storage.jobs.counted_times(GUILD, MEMBER, 0.0))


async def test_a_moderators_cancel_leaves_the_members_limit_but_not_the_servers_spend(
    storage: Storage,
):
    await accepted_then_cancelled(storage, cancelled_by=MODERATOR)

    assert await member_count(storage) == 0
    assert await storage.jobs.guild_counted(GUILD, 0.0) == (1, PRICE)
    assert await storage.jobs.counted_since(0.0) == (1, PRICE)


async def test_the_members_own_cancel_after_segmind_accepted_still_counts_against_them(
    storage: Storage,
):
    await accepted_then_cancelled(storage, cancelled_by=MEMBER)
    assert await member_count(storage) == 1


async def test_a_cancel_with_nobody_recorded_counts_as_it_always_did(storage: Storage):
    await accepted_then_cancelled(storage, cancelled_by=None)
    assert await member_count(storage) == 1


async def test_only_a_cancelled_job_is_left_out_whoever_is_recorded(storage: Storage):
    # A failure after Segmind accepted it counts, even with a stray cancelled_by.
    job = await add_job(storage)
    await storage.jobs.update(
        job.id, now=200.0, request_id="req-2", state=JobState.FAILED, cancelled_by=MODERATOR
    )
    assert await member_count(storage) == 1


async def test_a_moderator_cancels_a_members_waiting_job_and_it_is_recorded_as_theirs(
    storage: Storage, queue: JobQueue
):
    job = await add_job(storage)
    assert await member_count(storage) == 1  # a waiting job holds its place in the limit

    outcome = await queue.cancel(job, by=MODERATOR, moderator=True)

    assert outcome.by_moderator
    assert outcome.job.state is JobState.CANCELLED
    assert outcome.job.cancelled_by == MODERATOR
    assert outcome.job.error == "A moderator cancelled this video."
    assert await member_count(storage) == 0


async def test_the_requester_cancels_their_own_job_without_being_a_moderator(
    storage: Storage, queue: JobQueue
):
    job = await add_job(storage)
    outcome = await queue.cancel(job, by=MEMBER, moderator=False)
    assert not outcome.by_moderator
    assert outcome.job.state is JobState.CANCELLED
    assert outcome.job.error == "This video was cancelled."


async def test_someone_else_who_is_not_a_moderator_cannot_cancel(storage: Storage, queue: JobQueue):
    job = await add_job(storage)
    with pytest.raises(NotYourJob):
        await queue.cancel(job, by=MODERATOR + 1, moderator=False)
    stored = await storage.jobs.get(job.id)
    assert stored is not None and stored.state is JobState.QUEUED


async def test_a_finished_job_cannot_be_cancelled(storage: Storage, queue: JobQueue):
    job = await add_job(storage)
    done = await storage.jobs.update(job.id, now=300.0, state=JobState.DELIVERED)
    with pytest.raises(AlreadyFinished):
        await queue.cancel(done, by=MODERATOR, moderator=True)


async def test_a_member_lists_only_their_own_unfinished_jobs(storage: Storage, queue: JobQueue):
    mine = await add_job(storage)
    await add_job(storage, user_id=MEMBER + 1)
    ended = await add_job(storage)
    await storage.jobs.update(ended.id, now=300.0, state=JobState.DELIVERED)

    own = await queue.of_member(GUILD, MEMBER)
    everyone = await queue.of_server(GUILD)

    assert [entry.job.id for entry in own.entries] == [mine.id]
    assert len(everyone.entries) == 2
    assert all(entry.cancellable for entry in everyone.entries)
