"""Job leases between two runners on one database, standing for two bot processes.

Each runner has its own ``Storage`` (its own connections) on the same database, on both
engines; the simulator counts what reaches Segmind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from services.clips import ClipFiles
from services.clock import SystemClock
from services.download import ClipDownloader
from services.gates import AccountGates
from services.jobs import JobRunner
from services.models import Job, JobState, VideoRequest
from services.runner_config import RunnerConfig
from services.storage import NewJob, Storage
from tests.services.test_jobs import QUICK, Recorder


@pytest.fixture
async def two_storages(database_location) -> AsyncIterator[tuple[Storage, Storage]]:
    first = await Storage.open(database_location)
    second = await Storage.open(database_location)
    yield first, second
    await first.close()
    await second.close()


@pytest.fixture
async def make_runner(segmind_client, tmp_path) -> AsyncIterator[Callable[..., JobRunner]]:
    made: list[tuple[JobRunner, ClipDownloader]] = []

    def make(storage: Storage, name: str, recorder: Recorder, client=None, **config) -> JobRunner:
        client = client or segmind_client
        options = {
            "progress_interval": 0.02,
            "delivery_attempts": 2,
            "delivery_backoff": QUICK,
            "shared_database": True,
            "lease_seconds": 1.0,
            "lease_check_interval": 0.05,
        }
        options.update(config)
        downloader = ClipDownloader(trusted_base_url=client.base_url)
        clock = SystemClock()
        runner = JobRunner(
            storage,
            client,
            RunnerConfig(**options),
            downloader=downloader,
            clips=ClipFiles(tmp_path / name),
            clock=clock,
            gates=AccountGates.create(clock, 60),
            listener=recorder,
            owner=name,
        )
        made.append((runner, downloader))
        return runner

    yield make
    for runner, downloader in made:
        await runner.shutdown(timeout=1)
        await downloader.close()


async def add_job(storage: Storage, user_id: int = 1, prompt: str = "a heron") -> Job:
    return await storage.jobs.insert(
        NewJob(
            guild_id=10,
            channel_id=20,
            user_id=user_id,
            request=VideoRequest.create(prompt),
            created_at=SystemClock().time(),
        )
    )


async def state_of(storage: Storage, job_id: int) -> JobState:
    job = await storage.jobs.get(job_id)
    assert job is not None
    return job.state


async def delivered(storage: Storage, job_id: int) -> None:
    """Until the job is stored as delivered (a moment after its post)."""
    async with asyncio.timeout(10):
        while await state_of(storage, job_id) is not JobState.DELIVERED:
            await asyncio.sleep(0.02)


async def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_a_job_of_a_runner_that_died_is_taken_over_and_submitted_once(
    two_storages, make_runner, simulator_factory, segmind_client_factory
):
    sim = await simulator_factory(processing_seconds=1.0)
    client = segmind_client_factory(sim.base_url)
    first_store, second_store = two_storages
    first_rec, second_rec = Recorder(), Recorder()
    first = make_runner(first_store, "first", first_rec, client)
    await first.start()
    job = await add_job(first_store)
    await first.enqueue(job)
    await until(lambda: any(p.job_id == job.id for p in first_rec.progress))
    # The first "dies": its keeper stops renewing and its tasks stop, writing nothing more.
    first._leases._task.cancel()
    for task in list(first._running.values()):
        first._lost.add(job.id)
        task.cancel()
    second = make_runner(second_store, "second", second_rec, client)
    await second.start()
    await second_rec.wait_for(lambda: len(second_rec.ready) == 1, timeout=10)
    assert len(sim.submits) == 1
    # Recorded just after the post the recorder saw.
    await delivered(second_store, job.id)
    stored = await second_store.jobs.get(job.id)
    assert stored is not None and stored.lease_owner == "second"
    assert first_rec.ready == []


async def test_a_runner_that_lost_its_lease_cannot_write_the_job_any_more(
    two_storages, make_runner
):
    first_store, second_store = two_storages
    job = await add_job(first_store)
    taken = await second_store.leases.adopt(job.id, "second", now=0.0, until=1e12)
    assert taken is not None
    from services.storage import LeaseLost

    with pytest.raises(LeaseLost):
        await first_store.jobs.update(
            job.id, now=1.0, owner="first", state=JobState.SUBMITTING, durable=True
        )
    assert await state_of(first_store, job.id) is JobState.QUEUED


async def test_max_concurrent_jobs_holds_across_two_runners(
    two_storages, make_runner, simulator_factory, segmind_client_factory
):
    first_store = two_storages[0]
    recorders = [Recorder(), Recorder()]
    sim = await simulator_factory(processing_seconds=0.2)
    client = segmind_client_factory(sim.base_url)
    runners = [
        make_runner(store, name, rec, client, max_concurrent=1, max_per_member=5)
        for store, name, rec in zip(two_storages, ("first", "second"), recorders, strict=True)
    ]
    for runner in runners:
        await runner.start()
    jobs = []
    for index in range(4):
        store = two_storages[index % 2]
        job = await add_job(store, user_id=index)
        jobs.append(job)
        await runners[index % 2].enqueue(job)
    holding: list[int] = []

    async def watch() -> None:
        while True:
            slots = await first_store.leases.slots()
            holding.append(slots.total)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    try:
        await until(lambda: sum(len(r.ready) for r in recorders) == 4, timeout=20)
    finally:
        watcher.cancel()
    assert max(holding) == 1  # never two at Segmind at once, whichever process ran them
    assert {len(r.ready) for r in recorders} <= {1, 2, 3}  # both processes did some


async def test_a_cancel_pressed_in_another_process_stops_the_job_where_it_runs(
    two_storages, make_runner, simulator_factory, segmind_client_factory
):
    sim = await simulator_factory(processing_seconds=3.0)
    client = segmind_client_factory(sim.base_url)
    first_store, second_store = two_storages
    first_rec, second_rec = Recorder(), Recorder()
    first = make_runner(first_store, "first", first_rec, client)
    second = make_runner(second_store, "second", second_rec, client)
    await first.start()
    await second.start()
    job = await add_job(first_store)
    await first.enqueue(job)
    await until(lambda: any(p.job_id == job.id for p in first_rec.progress))
    stopped = await second.cancel(job.id, by=77)
    assert stopped is not None and stopped.state in (JobState.CANCELLED, JobState.UNKNOWN)
    if stopped.state is JobState.CANCELLED:
        assert stopped.cancelled_by == 77
    assert first_rec.ready == [] and second_rec.ready == []


async def test_a_taken_over_job_never_acknowledged_is_ended_and_the_member_told(
    two_storages, make_runner
):
    # Its process answered Discord, then died before storing the answer's message id: the
    # member may be looking at "queued". Never run or billed, and they are told so.
    first_store, second_store = two_storages
    now = SystemClock().time()
    first_store.jobs.lease = ("gone", 0.2)
    job = await first_store.jobs.insert(
        NewJob(
            guild_id=10,
            channel_id=20,
            user_id=1,
            request=VideoRequest.create("a heron"),
            created_at=now,
            interaction_token="token",
            interaction_created_at=now,
            application_id=5,
        )
    )
    recorder = Recorder()
    second = make_runner(second_store, "second", recorder)
    await second.start()
    await recorder.wait_for(lambda: len(recorder.failed) == 1, timeout=10)
    told, error = recorder.failed[0]
    assert told.id == job.id and "could not be started" in error.user_message
    assert await state_of(second_store, job.id) is JobState.CANCELLED


async def test_a_cancel_pressed_while_the_jobs_process_was_gone_is_never_submitted(
    two_storages, make_runner, simulator_factory, segmind_client_factory
):
    sim = await simulator_factory(processing_seconds=1.0)
    client = segmind_client_factory(sim.base_url)
    first_store, second_store = two_storages
    first_store.jobs.lease = ("gone", 0.2)
    job = await add_job(first_store)
    assert await first_store.leases.request_cancel(job.id, 1)  # pressed in a live process
    recorder = Recorder()
    second = make_runner(second_store, "second", recorder, client, lease_check_interval=0.25)
    await second.start()
    await until(lambda: recorder.failed, timeout=10)
    stored = await second_store.jobs.get(job.id)
    assert stored is not None and stored.state is JobState.CANCELLED and stored.cancelled_by == 1
    assert sim.submits == []


class HeldPost(Recorder):
    """A clip's post that takes as long as the test says (a big upload on a slow link)."""

    def __init__(self) -> None:
        super().__init__()
        self.posting = asyncio.Event()
        self.release = asyncio.Event()
        self.posts: list[int] = []

    async def on_clip_ready(self, job: Job) -> int | None:
        self.posts.append(job.id)
        self.posting.set()
        await self.release.wait()
        return await super().on_clip_ready(job)


async def test_a_stop_during_a_post_does_not_hand_the_job_to_another_to_post_again(
    two_storages, make_runner, simulator_factory, segmind_client_factory
):
    sim = await simulator_factory(processing_seconds=0.2)
    client = segmind_client_factory(sim.base_url)
    first_store, second_store = two_storages
    first_rec, second_rec = HeldPost(), HeldPost()
    second_rec.release.set()
    first = make_runner(first_store, "first", first_rec, client, lease_seconds=30.0)
    second = make_runner(second_store, "second", second_rec, client, lease_seconds=30.0)
    await first.start()
    await second.start()
    job = await add_job(first_store)
    await first.enqueue(job)
    await asyncio.wait_for(first_rec.posting.wait(), 10)
    await first.shutdown(timeout=0.3)  # the post outlasts the stop's wait
    # Twenty of the other's looks: none takes the job while its post may still land.
    await asyncio.sleep(20 * 0.05)
    assert second_rec.posts == []
    first_rec.release.set()
    await first_rec.wait_for(lambda: len(first_rec.ready) == 1, timeout=10)
    await delivered(first_store, job.id)


async def test_a_server_the_bot_left_loses_its_jobs_waiting_in_another_process(
    two_storages, make_runner, simulator_factory, segmind_client_factory
):
    sim = await simulator_factory(processing_seconds=2.0)
    client = segmind_client_factory(sim.base_url)
    first_store, second_store = two_storages
    first_rec, second_rec = Recorder(), Recorder()
    first = make_runner(first_store, "first", first_rec, client, max_concurrent=1)
    second = make_runner(second_store, "second", second_rec, client, max_concurrent=1)
    await first.start()
    await second.start()
    running = await add_job(first_store, user_id=1)
    waiting = await add_job(first_store, user_id=2)
    await first.enqueue(running)
    await first.enqueue(waiting)
    # The server removes the bot; the event reaches the other process (its shard's).
    assert await second.cancel_guild(10) == 1
    await until(lambda: any(job.id == waiting.id for job, _ in first_rec.failed), timeout=10)
    assert await state_of(first_store, waiting.id) is JobState.CANCELLED
    await first_rec.wait_for(lambda: len(first_rec.ready) == 1, timeout=10)
    assert [s["prompt"] for s in sim.submits] == ["a heron"]  # only the one already running
