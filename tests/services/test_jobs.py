"""The job runner against the simulator over loopback, with a real SQLite file."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from services.backoff import Backoff
from services.clips import ClipFiles
from services.clock import Clock, SystemClock
from services.download import ClipDownloader
from services.errors import (
    BotError,
    ClipUndeliverable,
    SegmindAuthError,
    SegmindRequestExpired,
    SegmindUnavailable,
    SubmitOutcomeUnknown,
)
from services.finish_estimate import OWN_HISTORY, Timing
from services.gates import AccountGates
from services.job_listener import ClipLost, DownloadFailed
from services.jobs import BEHIND_OWN_JOB, JobRunner
from services.models import Job, JobState, Progress, ProgressPhase, VideoRequest
from services.progress_estimate import estimate_fraction
from services.runner_config import RATE_LIMITED_SUBMIT_ATTEMPTS, RunnerConfig
from services.segmind import RetryPolicy
from services.simulator import DEFAULT_VIDEO_PATH, SegmindSimulator
from services.storage import NewJob, Storage
from tests.fakeclock import FakeClock
from tests.postgres_server import SQLITE_ONLY

SAMPLE = DEFAULT_VIDEO_PATH.read_bytes()
# The production policy's poll delays, for FakeClock tests.
PATIENT_POLICY = RetryPolicy(base_delay=1.0, max_delay=30.0, request_timeout=2.0)
# Retries in milliseconds, so retry paths run fast on the real clock.
QUICK = Backoff(base=0.01, cap=0.01)


class Recorder:
    """A JobListener that records everything and tracks what is in flight at Segmind."""

    def __init__(self) -> None:
        self.progress: list[Progress] = []
        self.ready: list[Job] = []
        self.failed: list[tuple[Job, BotError]] = []
        self.alerts: list[BotError] = []
        self.in_flight: set[int] = set()
        self.max_in_flight = 0
        self.member_in_flight: dict[int, set[int]] = {}
        self.max_member_in_flight = 0
        self.clip_bytes: dict[int, bytes] = {}
        self._changed = asyncio.Condition()

    async def _note(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def on_progress(self, job: Job, progress: Progress) -> None:
        self.progress.append(progress)
        if progress.phase is ProgressPhase.DOWNLOADING:
            # Its Segmind slot is given up once the clip is on disk: the next job may be
            # submitted while this one downloads, so in flight it ends no later than here.
            self._done(job)
        elif progress.phase is ProgressPhase.SUBMITTING:
            self.in_flight.add(job.id)
            self.member_in_flight.setdefault(job.user_id, set()).add(job.id)
            self.max_in_flight = max(self.max_in_flight, len(self.in_flight))
            self.max_member_in_flight = max(
                self.max_member_in_flight, len(self.member_in_flight[job.user_id])
            )
        await self._note()

    def _done(self, job: Job) -> None:
        self.in_flight.discard(job.id)
        self.member_in_flight.get(job.user_id, set()).discard(job.id)

    async def on_clip_ready(self, job: Job) -> int | None:
        self.clip_bytes[job.id] = Path(job.clip_path).read_bytes()
        self.ready.append(job)
        self._done(job)
        await self._note()
        return 1000 + job.id

    async def on_failed(self, job: Job, error: BotError) -> None:
        self.failed.append((job, error))
        self._done(job)
        await self._note()

    async def on_operator_alert(self, job: Job, error: BotError) -> None:
        self.alerts.append(error)

    async def wait_for(self, predicate, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(predicate)

    def phases(self, job_id: int) -> list[ProgressPhase]:
        return [p.phase for p in self.progress if p.job_id == job_id]


@pytest.fixture
async def storage(database_location: Path | str) -> AsyncIterator[Storage]:
    store = await Storage.open(database_location)
    yield store
    await store.close()


@pytest.fixture
async def make_runner(storage, segmind_client, http_session, tmp_path):
    runners: list[JobRunner] = []
    downloaders: list[ClipDownloader] = []

    def make(
        client=None, clock: Clock | None = None, gates: AccountGates | None = None, **config
    ) -> tuple[JobRunner, Recorder]:
        clock = clock or SystemClock()
        recorder = Recorder()
        options = {
            "progress_interval": 0.02,
            "delivery_attempts": 2,
            "delivery_backoff": QUICK,
        }
        options.update(config)
        downloader = ClipDownloader(trusted_base_url=(client or segmind_client).base_url)
        downloaders.append(downloader)
        runner = JobRunner(
            storage,
            client or segmind_client,
            RunnerConfig(**options),
            downloader=downloader,
            clips=ClipFiles(tmp_path / "clips"),
            clock=clock,
            gates=gates or AccountGates.create(clock, 60),
            listener=recorder,
        )
        runners.append(runner)
        return runner, recorder

    yield make
    for runner in runners:
        await runner.shutdown(timeout=1)
    for downloader in downloaders:
        await downloader.close()


async def add_job(storage: Storage, prompt: str = "a cat surfing", user_id: int = 1) -> Job:
    return await storage.jobs.insert(
        NewJob(
            guild_id=10,
            channel_id=20,
            user_id=user_id,
            request=VideoRequest.create(prompt),
            created_at=0.0,
        )
    )


async def stored_as_submitted(
    storage: Storage,
    segmind_client,
    job: Job,
    *,
    state: JobState = JobState.SUBMITTED,
    submitted_at: float | None = None,
    expired: SegmindSimulator | None = None,
) -> Job:
    """The job really submitted to the simulator and stored as a bot killed after that left it."""
    submission = await segmind_client.submit(job.request)
    if expired is not None:
        expired.expire(submission.request_id)
    return await storage.jobs.update(
        job.id,
        now=1.0,
        state=state,
        request_id=submission.request_id,
        status_url=submission.status_url,
        response_url=submission.response_url,
        submitted_at=time.time() if submitted_at is None else submitted_at,
    )


async def one_job_run(storage: Storage, make_runner) -> tuple[JobRunner, Recorder, Job]:
    """A fresh runner, one job through it to the end."""
    runner, rec = make_runner()
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: rec.ready)
    await runner.wait_idle()
    return runner, rec, job


async def test_a_job_is_submitted_once_polled_downloaded_and_delivered(
    storage, simulator, make_runner
):
    _, rec, job = await one_job_run(storage, make_runner)

    stored = await storage.jobs.get(job.id)
    assert stored.state is JobState.DELIVERED
    assert stored.result_message_id == 1000 + job.id
    assert stored.request_id and stored.submitted_at
    assert rec.clip_bytes[job.id] == SAMPLE
    assert len(simulator.submits) == 1
    assert simulator.submits[0]["seed"] == job.request.seed
    phases = rec.phases(job.id)
    assert phases[0] is ProgressPhase.SUBMITTING
    assert ProgressPhase.PROCESSING in phases and phases[-1] is ProgressPhase.DOWNLOADING
    assert not Path(stored.clip_path).exists()  # public clips are not kept once posted


async def test_a_finished_job_teaches_the_next_polls_and_is_remembered(
    storage, simulator, make_runner
):
    runner, _, job = await one_job_run(storage, make_runner)

    (timing,) = await storage.timings.recent()
    assert (timing.input_frames, timing.steps) == (job.request.input_frames, job.request.steps)
    # The simulator takes 0.1 s at work; the bot knows it to within its polls.
    assert 0.0 < timing.processing_seconds < 0.5
    assert runner.timings.learned == 1  # and the next jobs' polls follow it


async def test_a_restarted_runner_polls_by_what_the_last_one_learned(storage, make_runner):
    for _ in range(OWN_HISTORY):
        await storage.timings.add(Timing(49, 45, 2.0, 100.0), now=0.0)
    runner, _ = make_runner()

    await runner.start()

    assert runner.timings.processing(49, 45).mean == pytest.approx(100.0)


@SQLITE_ONLY
async def test_a_damaged_timing_row_does_not_stop_the_start(storage, make_runner):
    await storage.db.execute(
        "INSERT INTO job_timings (input_frames, steps, queue_seconds, processing_seconds,"
        " recorded_at) VALUES (49, 45, 1.0, 'not a number', 0)"
    )
    runner, _ = make_runner()

    await runner.start()  # resumes jobs from the prior rather than not at all

    assert runner.timings.processing(49, 45).mean == pytest.approx(240.0)


async def test_global_concurrency_cap_is_respected(
    storage, simulator_factory, segmind_client_factory, make_runner
):
    sim = await simulator_factory(processing_seconds=0.15)
    runner, rec = make_runner(
        segmind_client_factory(sim.base_url), max_concurrent=2, max_per_member=5
    )
    await runner.start()
    for user in range(5):
        await runner.enqueue(await add_job(storage, user_id=user))
    await rec.wait_for(lambda: len(rec.ready) == 5)
    assert rec.max_in_flight == 2
    assert len(sim.submits) == 5


async def test_one_running_job_per_member_while_others_pass(
    storage, simulator_factory, segmind_client_factory, make_runner
):
    sim = await simulator_factory(processing_seconds=0.15)
    runner, rec = make_runner(
        segmind_client_factory(sim.base_url), max_concurrent=4, max_per_member=1
    )
    await runner.start()
    jobs = [await add_job(storage, user_id=1) for _ in range(3)]
    other = await add_job(storage, user_id=2)
    for job in [*jobs, other]:
        await runner.enqueue(job)
    await rec.wait_for(lambda: len(rec.ready) == 4)
    assert rec.max_member_in_flight == 1
    # The other member did not wait behind the first member's queue.
    assert [j.id for j in rec.ready].index(other.id) < 2


async def test_queue_positions_count_down(storage, simulator, make_runner):
    runner, rec = make_runner(max_concurrent=1)
    await runner.start()
    jobs = [await add_job(storage, user_id=u) for u in range(3)]
    positions = [await runner.enqueue(job) for job in jobs]
    assert positions == [None, 1, 2]
    await rec.wait_for(lambda: len(rec.ready) == 3)
    third = [
        p.position
        for p in rec.progress
        if p.job_id == jobs[2].id and p.phase is ProgressPhase.QUEUED
    ]
    assert third == [2, 1]


async def test_a_job_held_only_by_the_members_own_video_is_not_counted_in_line(
    storage, simulator_factory, segmind_client_factory, make_runner
):
    sim = await simulator_factory(processing_seconds=0.3)
    runner, rec = make_runner(
        segmind_client_factory(sim.base_url), max_concurrent=2, max_per_member=1
    )
    await runner.start()
    alice_first, alice_second = await add_job(storage, user_id=1), await add_job(storage, user_id=1)
    bob = await add_job(storage, user_id=2)
    carol = await add_job(storage, user_id=3)
    assert await runner.enqueue(alice_first) is None  # runs
    assert await runner.enqueue(alice_second) == BEHIND_OWN_JOB  # waits for alice's own video
    assert await runner.enqueue(bob) is None  # the second slot
    assert await runner.enqueue(carol) == 1  # next for a free slot: alice's second is not ahead
    await rec.wait_for(lambda: len(rec.ready) == 4)
    waiting = [
        p for p in rec.progress if p.job_id == alice_second.id and p.phase is ProgressPhase.QUEUED
    ]
    assert waiting[0].behind_own_job and waiting[0].position is None


async def test_cancelling_a_waiting_job_submits_nothing(storage, simulator, make_runner):
    runner, rec = make_runner(max_concurrent=1)
    await runner.start()
    first, second = await add_job(storage, user_id=1), await add_job(storage, user_id=2)
    await runner.enqueue(first)
    await runner.enqueue(second)
    cancelled = await runner.cancel(second.id)
    assert cancelled.state is JobState.CANCELLED and cancelled.request_id is None
    await rec.wait_for(lambda: rec.ready)
    await runner.wait_idle()
    assert len(simulator.submits) == 1
    assert [job.id for job, _ in rec.failed] == [second.id]


async def test_a_job_cancelled_before_it_is_enqueued_is_never_submitted(
    storage, simulator, make_runner
):
    # The starter posts the progress message (with Cancel) before it enqueues: a click can land
    # between.
    runner, rec = make_runner()
    await runner.start()
    job = await add_job(storage)
    cancelled = await runner.cancel(job.id)
    assert cancelled is not None and cancelled.state is JobState.CANCELLED
    assert rec.failed == []  # told when the job arrives, once its progress message is known
    assert await runner.enqueue(job) is None
    await runner.wait_idle()
    assert simulator.submit_attempts == 0
    assert [(failed.id, error.user_message) for failed, error in rec.failed] == [
        (job.id, "This video was cancelled.")
    ]
    assert (await storage.jobs.get(job.id)).state is JobState.CANCELLED


async def test_cancelling_a_running_job_stops_polling(
    storage, simulator_factory, segmind_client_factory, make_runner
):
    sim = await simulator_factory(processing_seconds=30)
    runner, rec = make_runner(segmind_client_factory(sim.base_url))
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: ProgressPhase.PROCESSING in rec.phases(job.id))
    stopped = await runner.cancel(job.id)
    assert stopped.state is JobState.CANCELLED
    assert stopped.request_id is not None  # Segmind had it: it keeps counting
    assert not runner.is_active(job.id)
    assert rec.failed[0][1].user_message == "This video was cancelled."


async def test_a_job_that_never_finishes_ends_at_the_deadline(
    storage, simulator_factory, segmind_client_factory, make_runner
):
    sim = await simulator_factory(processing_seconds=60)
    runner, rec = make_runner(segmind_client_factory(sim.base_url), deadline_seconds=0.3)
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: rec.failed)
    stored = await storage.jobs.get(job.id)
    assert stored.state is JobState.FAILED
    assert "took too long" in stored.error
    assert len(sim.submits) == 1


async def test_segmind_failure_text_reaches_the_member(storage, simulator, make_runner):
    simulator.fail_prompts_containing["forbidden"] = "Prompt blocked by content policy"
    runner, rec = make_runner()
    await runner.start()
    job = await add_job(storage, prompt="something forbidden")
    await runner.enqueue(job)
    await rec.wait_for(lambda: rec.failed)
    stored = await storage.jobs.get(job.id)
    assert stored.state is JobState.FAILED
    assert "Prompt blocked by content policy" in stored.error
    assert stored.segmind_state == "FAILED"


async def test_out_of_credits_closes_the_gate_and_alerts_once(storage, simulator, make_runner):
    simulator.inject("submit", status=406, body={"error": "Insufficient credits"}, times=2)
    runner, rec = make_runner(max_concurrent=1)
    await runner.start()
    for user in (1, 2):
        await runner.enqueue(await add_job(storage, user_id=user))
    await rec.wait_for(lambda: len(rec.failed) == 2)
    assert len(rec.alerts) == 1
    stored = await storage.jobs.get(rec.failed[0][0].id)
    assert stored.request_id is None  # never accepted, so never counted
    assert simulator.submits == []


async def test_rejected_key_alerts_the_operator_and_pauses_new_requests(
    storage, simulator_factory, segmind_client_factory, make_runner
):
    sim = await simulator_factory()
    gates = AccountGates.create(SystemClock(), 60)
    runner, rec = make_runner(
        segmind_client_factory(sim.base_url, api_key="wrong-key-123456"), gates=gates
    )
    await runner.start()
    await runner.enqueue(await add_job(storage))
    await rec.wait_for(lambda: rec.failed)
    assert (
        rec.failed[0][1].user_message == "The bot is misconfigured; the moderators have been told."
    )
    assert len(rec.alerts) == 1
    assert gates.key.paused  # the next requests are refused privately, not failed in public


async def test_resume_polls_a_submitted_job_without_resubmitting(
    storage, simulator, segmind_client, make_runner
):
    job = await add_job(storage)
    await stored_as_submitted(storage, segmind_client, job, state=JobState.SUBMITTED)
    runner, rec = make_runner()
    resumed = await runner.start()
    assert [j.id for j in resumed] == [job.id]
    await wait_for_state(storage, job.id, JobState.DELIVERED)
    assert len(simulator.submits) == 1
    assert len(rec.ready) == 1


async def test_resume_after_a_crash_during_submit_never_resubmits(storage, simulator, make_runner):
    job = await add_job(storage)
    await storage.jobs.update(job.id, now=1.0, state=JobState.SUBMITTING)
    runner, rec = make_runner()
    await runner.start()
    stored = await storage.jobs.get(job.id)
    assert stored.state is JobState.UNKNOWN
    assert simulator.submit_attempts == 0
    assert "not resent" in rec.failed[0][1].user_message


async def test_resume_of_an_expired_result_ends_clearly(
    storage, simulator, segmind_client, make_runner
):
    job = await add_job(storage)
    await stored_as_submitted(
        storage, segmind_client, job, state=JobState.PROCESSING, expired=simulator
    )
    runner, rec = make_runner()
    await runner.start()
    await rec.wait_for(lambda: rec.failed)
    stored = await storage.jobs.get(job.id)
    assert stored.state is JobState.EXPIRED
    # Minutes old, so "kept one hour and expired" would not be true.
    assert stored.error == SegmindRequestExpired.user_message
    assert "no longer knows" in stored.error


async def test_a_result_older_than_segminds_hour_is_said_to_have_expired(
    storage, simulator, segmind_client, make_runner
):
    job = await add_job(storage)
    await stored_as_submitted(
        storage,
        segmind_client,
        job,
        state=JobState.PROCESSING,
        submitted_at=time.time() - 2 * 3600,
        expired=simulator,
    )
    runner, rec = make_runner()
    await runner.start()
    await rec.wait_for(lambda: rec.failed)
    stored = await storage.jobs.get(job.id)
    assert stored.state is JobState.EXPIRED
    assert stored.error == SegmindRequestExpired.retention_message


async def test_queued_jobs_are_taken_up_again_after_a_restart(storage, simulator, make_runner):
    job = await add_job(storage)
    runner, rec = make_runner()
    await runner.start()
    await rec.wait_for(lambda: rec.ready)
    assert rec.ready[0].id == job.id and len(simulator.submits) == 1


async def test_shutdown_leaves_running_jobs_stored_for_resume(
    storage, simulator_factory, segmind_client_factory, make_runner
):
    sim = await simulator_factory(processing_seconds=30)
    runner, rec = make_runner(segmind_client_factory(sim.base_url))
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: ProgressPhase.PROCESSING in rec.phases(job.id))
    await runner.shutdown(timeout=2)
    stored = await storage.jobs.get(job.id)
    assert stored.state is JobState.PROCESSING and stored.request_id
    late = await add_job(storage)
    assert await runner.enqueue(late) is None
    assert (await storage.jobs.get(late.id)).state is JobState.QUEUED  # resumed at the next start
    assert len(sim.submits) == 1


class DiscordDown(Recorder):
    """A listener whose posts fail while Discord is down; ``recover`` brings Discord back."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.attempts: list[int] = []

    def recover(self) -> None:
        self.down = False

    async def on_clip_ready(self, job: Job) -> int | None:
        self.attempts.append(job.id)
        if self.down:
            await self._note()
            raise ConnectionError("503 Service Unavailable from Discord")
        return await super().on_clip_ready(job)


def listening(runner: JobRunner, listener: Recorder) -> Recorder:
    runner.set_listener(listener)
    return listener


async def test_delivery_outlasts_any_number_of_failed_posts_and_then_delivers_once(
    storage, simulator, make_runner, caplog
):
    caplog.set_level(logging.INFO, logger="services.jobs")
    runner, _ = make_runner(delivery_attempts=3)
    discord = listening(runner, DiscordDown())
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await discord.wait_for(lambda: len(discord.attempts) >= 12)  # 4 times the old limit
    waiting = await storage.jobs.get(job.id)

    discord.recover()
    await discord.wait_for(lambda: discord.ready)
    await runner.wait_idle()

    assert waiting.state is JobState.DOWNLOADED  # a restart now would resume the delivery
    stored = await storage.jobs.get(job.id)
    assert stored.state is JobState.DELIVERED and stored.result_message_id == 1000 + job.id
    assert discord.failed == [] and len(discord.ready) == 1
    assert len(simulator.submits) == 1
    retries = [r for r in caplog.records if "delivery attempt" in r.getMessage()]
    assert len(retries) == len(discord.attempts) - 1
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in retries)
    first_retry = f"job={job.id} delivery attempt 1 failed (ConnectionError: 503"
    assert retries[0].getMessage().startswith(first_retry)
    alerts = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in alerts] == [
        f"job={job.id} still not delivered after 3 attempts; posting goes on while its clip "
        "is on disk"
    ]


async def test_a_clip_whose_file_is_gone_ends_the_job_and_the_member_is_told(
    storage, simulator, make_runner
):
    runner, _ = make_runner()
    discord = listening(runner, DiscordDown())
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await discord.wait_for(lambda: discord.attempts)
    Path((await storage.jobs.get(job.id)).clip_path).unlink()  # the disk lost it meanwhile

    await discord.wait_for(lambda: discord.failed)

    ((_, error),) = discord.failed
    assert isinstance(error, ClipLost)
    assert error.user_message.startswith("The video was made, but its file was lost")
    assert (await storage.jobs.get(job.id)).state is JobState.FAILED
    assert discord.ready == []


async def test_a_listener_that_can_never_reach_the_member_ends_the_job_at_once(
    storage, simulator, make_runner
):
    runner, rec = make_runner(delivery_attempts=5)
    attempts = []

    async def no_route(job):
        attempts.append(job.id)
        raise ClipUndeliverable(detail="no channel, token or DM reaches the member")

    rec.on_clip_ready = no_route
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: rec.failed)

    assert len(attempts) == 1
    assert isinstance(rec.failed[0][1], ClipUndeliverable)
    assert rec.failed[0][1].user_message == "The video was made but could not be posted here."
    assert (await storage.jobs.get(job.id)).state is JobState.FAILED


@pytest.mark.parametrize("same_member", [True, False], ids=["same-member", "another-member"])
async def test_a_clip_waiting_for_discord_holds_no_segmind_slot(
    storage, simulator, make_runner, same_member
):
    runner, _ = make_runner(max_concurrent=1, max_per_member=1)
    discord = listening(runner, DiscordDown())
    await runner.start()
    first = await add_job(storage, user_id=1)
    second = await add_job(storage, user_id=1 if same_member else 2)
    await runner.enqueue(first)
    await runner.enqueue(second)
    # The second clip is made while the first one waits for Discord...
    await discord.wait_for(lambda: set(discord.attempts) == {first.id, second.id})
    states = {job.id: (await storage.jobs.get(job.id)).state for job in (first, second)}

    discord.recover()
    await discord.wait_for(lambda: len(discord.ready) == 2)
    await runner.wait_idle()

    assert states == {first.id: JobState.DOWNLOADED, second.id: JobState.DOWNLOADED}
    assert len(simulator.submits) == 2 and discord.failed == []


async def test_clips_are_posted_a_few_at_a_time(storage, simulator, make_runner):
    runner, _ = make_runner(max_concurrent=4, max_per_member=4, max_concurrent_deliveries=2)
    posting: set[int] = set()
    most = 0
    release = asyncio.Event()

    class SlowUploads(Recorder):
        async def on_clip_ready(self, job: Job) -> int | None:
            nonlocal most
            posting.add(job.id)
            most = max(most, len(posting))
            await self._note()
            await release.wait()
            posting.discard(job.id)
            return await super().on_clip_ready(job)

    uploads = listening(runner, SlowUploads())
    await runner.start()
    for _ in range(4):
        await runner.enqueue(await add_job(storage))
    await uploads.wait_for(lambda: len(posting) == 2)
    await asyncio.sleep(0.2)  # the other two clips are downloaded by now, and wait their turn
    release.set()
    await uploads.wait_for(lambda: len(uploads.ready) == 4)

    assert most == 2


async def test_a_shutdown_while_discord_is_down_leaves_the_clip_for_the_next_start(
    storage, simulator, make_runner
):
    runner, _ = make_runner()
    discord = listening(runner, DiscordDown())
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await discord.wait_for(lambda: len(discord.attempts) > 2)  # past delivery_attempts

    await runner.shutdown(timeout=2)
    stopped = await storage.jobs.get(job.id)
    clip_kept = Path(stopped.clip_path).is_file()
    restarted, rec = make_runner()  # Discord is back, and so is the bot
    await restarted.start()
    await rec.wait_for(lambda: rec.ready or rec.failed)
    await restarted.wait_idle()

    assert stopped.state is JobState.DOWNLOADED and clip_kept
    assert discord.failed == [] and rec.failed == []
    assert rec.clip_bytes[job.id] == SAMPLE
    assert (await storage.jobs.get(job.id)).state is JobState.DELIVERED
    assert len(simulator.submits) == 1 and len(simulator.calls_to("download")) == 1


def test_progress_estimate_never_claims_done():
    assert estimate_fraction(0, 240) == 0
    assert estimate_fraction(120, 240) == 0.5
    assert estimate_fraction(10_000, 240) < 1.0
    values = [estimate_fraction(t, 240) for t in range(0, 2000, 10)]
    assert values == sorted(values)


async def test_a_long_rate_limit_on_submit_is_waited_out_and_submitted_once(
    storage, simulator, make_runner
):
    simulator.inject(
        "submit",
        status=429,
        body={"error": "Too many requests"},
        headers={"Retry-After": "0.2"},
        times=1,
    )
    runner, rec = make_runner(submit_backoff=QUICK)
    await runner.start()
    await runner.enqueue(await add_job(storage))
    await rec.wait_for(lambda: rec.ready)
    assert len(simulator.submits) == 1
    assert simulator.submit_attempts == 2


async def test_a_429_on_one_jobs_submit_holds_back_the_polls_of_the_others(
    storage, simulator_factory, segmind_client_factory, make_runner
):
    sim = await simulator_factory(queue_seconds=0.0, processing_seconds=3.0)
    runner, rec = make_runner(segmind_client_factory(sim.base_url), max_concurrent=2)
    await runner.start()
    await runner.enqueue(await add_job(storage, "the first", user_id=1))
    await rec.wait_for(lambda: len(sim.calls_to("status")) >= 2)
    sim.inject("submit", status=429, body={"error": "slow down"}, headers={"Retry-After": "1"})

    await runner.enqueue(await add_job(storage, "the second", user_id=2))
    await rec.wait_for(lambda: len(rec.ready) == 2)

    limited_at = sim.calls_to("submit")[1].at  # the second job's refused submit
    during = [c.at - limited_at for c in sim.calls if 0.05 < c.at - limited_at < 0.95]
    assert during == []  # the first job asked nothing while the account was held back
    assert len(sim.submits) == 2


async def test_an_unreadable_submit_answer_is_never_resent(storage, simulator, make_runner):
    simulator.inject("submit", status=200, body={"request_id": "abc"}, accept=True)
    runner, rec = make_runner()
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: rec.failed)
    assert (await storage.jobs.get(job.id)).state is JobState.UNKNOWN
    assert simulator.submit_attempts == 1


# JSON nested past the interpreter's recursion limit: json.loads raises RecursionError.
NESTED_TOO_DEEP = "[" * 100_000


async def ended_unknown_and_counted(storage, simulator, rec, job: Job) -> None:
    """The job ends as outcome-unknown: counted, sent once, never resent, the member told."""
    await rec.wait_for(lambda: rec.failed)
    stored = await storage.jobs.get(job.id)
    assert stored.state is JobState.UNKNOWN
    assert len(await storage.jobs.counted_times(job.guild_id, job.user_id, 0.0)) == 1
    assert [type(error) for _, error in rec.failed] == [SubmitOutcomeUnknown]
    assert simulator.submit_attempts == 1 and len(simulator.submits) == 1


async def test_a_2xx_submit_nested_too_deep_to_read_is_unknown_not_failed(
    storage, simulator, make_runner
):
    simulator.inject("submit", status=200, body=NESTED_TOO_DEEP, accept=True)
    runner, rec = make_runner()
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)

    await ended_unknown_and_counted(storage, simulator, rec, job)


async def test_an_unexpected_error_after_the_submit_left_is_unknown_not_failed(
    storage, simulator, segmind_client, make_runner, monkeypatch
):
    send = segmind_client.submit

    async def a_bug_once_segmind_has_the_job(request):
        await send(request)
        raise KeyError("a shape no code path foresaw")

    monkeypatch.setattr(segmind_client, "submit", a_bug_once_segmind_has_the_job)
    runner, rec = make_runner()
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)

    await ended_unknown_and_counted(storage, simulator, rec, job)


async def test_an_accepted_submit_that_cannot_be_stored_is_unknown_not_failed(
    storage, simulator, make_runner, monkeypatch
):
    update = storage.jobs.update

    async def disk_full_when_recording_the_submit(job_id, **fields):
        if fields.get("state") is JobState.SUBMITTED:
            raise OSError("database or disk is full")
        return await update(job_id, **fields)

    monkeypatch.setattr(storage.jobs, "update", disk_full_when_recording_the_submit)
    runner, rec = make_runner()
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)

    await ended_unknown_and_counted(storage, simulator, rec, job)


async def test_a_status_nested_too_deep_to_read_is_asked_again(storage, simulator, make_runner):
    simulator.inject("status", status=200, body=NESTED_TOO_DEEP, times=2)
    runner, rec = make_runner()
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: rec.ready or rec.failed)

    assert rec.failed == [] and rec.clip_bytes[job.id] == SAMPLE
    assert len(simulator.calls_to("status")) >= 3
    assert len(simulator.submits) == 1


async def wait_for_state(storage: Storage, job_id: int, state: JobState) -> None:
    async with asyncio.timeout(5):
        while (await storage.jobs.get(job_id)).state is not state:
            await asyncio.sleep(0.01)


async def test_cancel_during_a_rate_limit_wait_bills_nothing(storage, simulator, make_runner):
    simulator.inject(
        "submit", status=429, body={"error": "slow down"}, headers={"Retry-After": "60"}
    )
    runner, rec = make_runner()
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: ProgressPhase.SUBMITTING in rec.phases(job.id))
    await wait_for_state(storage, job.id, JobState.QUEUED)  # back in line, waiting out the 429
    assert simulator.submit_attempts == 1
    stopped = await runner.cancel(job.id)
    assert stopped.state is JobState.CANCELLED and stopped.request_id is None
    assert simulator.submits == []


async def test_shutdown_during_a_rate_limit_wait_leaves_the_job_queued(
    storage, simulator, make_runner
):
    simulator.inject(
        "submit", status=429, body={"error": "slow down"}, headers={"Retry-After": "60"}
    )
    runner, rec = make_runner()
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: ProgressPhase.SUBMITTING in rec.phases(job.id))
    await wait_for_state(storage, job.id, JobState.QUEUED)  # back in line, waiting out the 429
    assert simulator.submit_attempts == 1
    await runner.shutdown(timeout=2)
    assert (await storage.jobs.get(job.id)).state is JobState.QUEUED  # not 'unknown'
    assert simulator.submits == []


class HeldAtSubmitting(Recorder):
    """A listener that holds the job where the member sees "submitting", before it is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.showing, self.release = asyncio.Event(), asyncio.Event()

    async def on_progress(self, job: Job, progress: Progress) -> None:
        await super().on_progress(job, progress)
        if progress.phase is ProgressPhase.SUBMITTING:
            self.showing.set()
            await self.release.wait()


async def held_before_sending(storage, make_runner) -> tuple[JobRunner, HeldAtSubmitting, Job]:
    runner, _ = make_runner()
    listener = HeldAtSubmitting()
    runner.set_listener(listener)
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    async with asyncio.timeout(5):
        await listener.showing.wait()
    assert (await storage.jobs.get(job.id)).state is JobState.SUBMITTING
    return runner, listener, job


async def test_a_cancel_before_the_submit_leaves_sends_nothing_and_counts_nothing(
    storage, simulator, make_runner
):
    runner, listener, job = await held_before_sending(storage, make_runner)

    cancelling = asyncio.create_task(runner.cancel(job.id))
    await asyncio.sleep(0)  # the cancel has reached the job's task
    listener.release.set()  # a submit shielded from here on would now be sent, and billed
    async with asyncio.timeout(5):
        stopped = await cancelling

    assert stopped.state is JobState.CANCELLED and stopped.request_id is None
    assert await storage.jobs.counted_times(job.guild_id, job.user_id, 0.0) == []
    assert simulator.submit_attempts == 0
    assert [(failed.id, error.user_message) for failed, error in listener.failed] == [
        (job.id, "This video was cancelled.")
    ]


async def test_a_shutdown_before_the_submit_leaves_keeps_the_job_queued_for_the_restart(
    storage, simulator, make_runner
):
    runner, listener, job = await held_before_sending(storage, make_runner)

    stopping = asyncio.create_task(runner.shutdown(timeout=2))
    while runner.accepting:  # shutdown has begun and cancelled the job's task
        await asyncio.sleep(0)
    listener.release.set()
    await stopping

    # Queued, not 'submitting': the restart sends it, instead of calling it outcome-unknown.
    assert (await storage.jobs.get(job.id)).state is JobState.QUEUED
    assert simulator.submit_attempts == 0


async def test_a_cancel_while_the_submit_is_in_flight_waits_for_its_answer_and_keeps_it(
    storage, simulator, make_runner
):
    simulator.slow("submit", seconds=0.3)
    runner, _ = make_runner()
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    async with asyncio.timeout(5):
        while simulator.submit_attempts == 0:  # the request has left
            await asyncio.sleep(0.005)

    stopped = await runner.cancel(job.id)

    # Cut short, the answer would be lost and the outcome unknown; stored, Segmind's job is
    # known (and counted, since it is paid for).
    assert stopped.state is JobState.CANCELLED and stopped.request_id is not None
    assert len(await storage.jobs.counted_times(job.guild_id, job.user_id, 0.0)) == 1
    assert len(simulator.submits) == 1


async def test_a_double_clicked_cancel_ends_the_job_once(
    storage, simulator_factory, segmind_client_factory, make_runner
):
    sim = await simulator_factory(processing_seconds=30)
    runner, rec = make_runner(segmind_client_factory(sim.base_url))
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: ProgressPhase.PROCESSING in rec.phases(job.id))
    first, second = await asyncio.gather(runner.cancel(job.id), runner.cancel(job.id))
    assert first.state is JobState.CANCELLED and second.state is JobState.CANCELLED
    assert [j.id for j, _ in rec.failed] == [job.id]
    assert not runner.is_active(job.id)


async def test_an_admitted_job_that_was_never_acknowledged_is_not_run_after_a_restart(
    storage, simulator, make_runner
):
    job = await storage.jobs.insert(
        NewJob(
            10,
            20,
            1,
            VideoRequest.create("a fox"),
            created_at=0.0,
            interaction_token="tok-" + "x" * 30,
        )
    )
    runner, _ = make_runner()
    await runner.start()
    await runner.wait_idle()
    assert (await storage.jobs.get(job.id)).state is JobState.CANCELLED
    assert simulator.submit_attempts == 0


async def test_leaving_a_server_drops_its_waiting_jobs(
    storage, simulator_factory, segmind_client_factory, make_runner
):
    sim = await simulator_factory(processing_seconds=0.3)
    runner, rec = make_runner(segmind_client_factory(sim.base_url), max_concurrent=1)
    await runner.start()
    running = await add_job(storage, user_id=1)
    other_server = await storage.jobs.insert(
        NewJob(99, 20, 2, VideoRequest.create("elsewhere"), created_at=0.0)
    )
    waiting = await add_job(storage, user_id=3)
    for job in (running, other_server, waiting):
        await runner.enqueue(job)
    assert await runner.cancel_guild(10) == 1
    await rec.wait_for(lambda: len(rec.ready) == 2)
    assert (await storage.jobs.get(waiting.id)).state is JobState.CANCELLED
    assert len(sim.submits) == 2


async def test_a_running_bot_sweeps_old_clips_periodically_but_not_live_downloads(
    storage, simulator, make_runner, tmp_path
):
    runner, _ = make_runner(sweep_interval=0.02, clip_retention_seconds=60)
    await runner.start()
    old = tmp_path / "clips" / "job-99.mp4"
    old.write_bytes(b"an old private clip")
    downloading = tmp_path / "clips" / ".job-100.mp4.abc.part"
    downloading.write_bytes(b"half a clip")
    os.utime(old, (time.time() - 120, time.time() - 120))
    async with asyncio.timeout(5):
        while old.exists():
            await asyncio.sleep(0.01)
    assert downloading.exists()
    await runner.shutdown(timeout=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HeldClock(FakeClock):
    """A fake clock whose sleeps wait for ``release()``, so a test can act during one."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = asyncio.Event()
        self._released = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeping.set()
        await self._released.wait()
        await super().sleep(seconds)

    def release(self) -> None:
        self._released.set()


async def test_a_cancel_while_a_429_is_waited_out_bills_nothing(
    storage, simulator, segmind_client_factory, make_runner
):
    """The runner waits out a 429 outside the shielded submit, so a cancel then sends nothing."""
    clock = HeldClock()
    client = segmind_client_factory(simulator.base_url, clock=clock, policy=PATIENT_POLICY)
    simulator.inject(
        "submit", status=429, body={"error": "slow down"}, headers={"Retry-After": "3"}
    )
    runner, _ = make_runner(client, clock=clock)
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    async with asyncio.timeout(5):
        await clock.sleeping.wait()
    while_waiting = await storage.jobs.get(job.id)

    cancel = asyncio.create_task(runner.cancel(job.id))
    await asyncio.sleep(0)  # one turn of the loop: the cancel reaches the job's task
    clock.release()  # a wait inside the client would now go on and submit again
    async with asyncio.timeout(5):
        stopped = await cancel

    assert while_waiting.state is JobState.QUEUED  # a crash now leaves nothing unknown
    assert stopped.state is JobState.CANCELLED and stopped.request_id is None
    assert simulator.submits == []
    assert simulator.submit_attempts == 1


async def test_a_refused_connection_is_waited_out_with_the_job_back_in_line(
    storage, simulator_factory, segmind_client_factory, make_runner
):
    port = free_port()
    job = await add_job(storage)
    states_while_waiting: list[JobState] = []
    started = []

    class SegmindComesBackDuringTheWait(FakeClock):
        async def sleep(self, seconds: float) -> None:
            if not started:
                states_while_waiting.append((await storage.jobs.get(job.id)).state)
                started.append(await simulator_factory(port=port))
            await super().sleep(seconds)

    clock = SegmindComesBackDuringTheWait()
    client = segmind_client_factory(f"http://127.0.0.1:{port}", clock=clock)
    runner, rec = make_runner(client, clock=clock, progress_interval=0.001)
    await runner.start()  # takes up the stored job
    await rec.wait_for(lambda: rec.ready or rec.failed)
    await runner.wait_idle()

    assert states_while_waiting == [JobState.QUEUED]
    (sim,) = started
    assert sim.submit_attempts == 1 and len(sim.submits) == 1
    assert (await storage.jobs.get(job.id)).state is JobState.DELIVERED
    # The member saw it go back in line while waiting, not "submitting" throughout.
    phases = rec.phases(job.id)
    assert phases[:3] == [ProgressPhase.SUBMITTING, ProgressPhase.QUEUED, ProgressPhase.SUBMITTING]


async def test_submits_not_accepted_are_retried_with_growing_jittered_waits(
    storage, simulator, segmind_client_factory, make_runner
):
    clock = FakeClock()
    client = segmind_client_factory(simulator.base_url, clock=clock, policy=PATIENT_POLICY)
    simulator.inject("submit", status=429, body={"error": "Too many requests"}, times=3)
    runner, rec = make_runner(client, clock=clock, progress_interval=0.001)
    await runner.start()
    await runner.enqueue(await add_job(storage))
    await rec.wait_for(lambda: rec.ready or rec.failed)

    waits = clock.sleeps[:3]  # nothing else sleeps before the job is accepted
    base = RunnerConfig().submit_backoff.base
    for attempt, waited in enumerate(waits):
        ceiling = base * 2**attempt
        assert ceiling / 2 <= waited <= ceiling  # equal jitter: never close to zero
    assert len(set(waits)) == 3  # jittered
    assert simulator.submit_attempts == 4
    assert len(simulator.submits) == 1


async def test_a_lasting_429_on_submit_gives_up_after_the_runners_attempts(
    storage, simulator, segmind_client_factory, make_runner
):
    clock = FakeClock()
    client = segmind_client_factory(simulator.base_url, clock=clock, policy=PATIENT_POLICY)
    simulator.inject("submit", status=429, body={"error": "Too many requests"}, times=1000)
    runner, rec = make_runner(client, clock=clock)
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: rec.failed)

    stored = await storage.jobs.get(job.id)
    assert stored.state is JobState.FAILED and stored.request_id is None
    assert simulator.submit_attempts == RATE_LIMITED_SUBMIT_ATTEMPTS
    assert simulator.submits == []
    assert len(clock.sleeps) == RATE_LIMITED_SUBMIT_ATTEMPTS - 1
    assert max(clock.sleeps) <= RunnerConfig().submit_backoff.cap


@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [("3", 3.0), ("0", 1.0), ("600", 120.0)],
    ids=["as-asked", "floor", "ceiling"],
)
async def test_a_429_on_submit_is_waited_out_as_segmind_asks_within_bounds_and_billed_once(
    storage, simulator, segmind_client_factory, make_runner, retry_after, waited
):
    clock = FakeClock()
    client = segmind_client_factory(simulator.base_url, clock=clock, policy=PATIENT_POLICY)
    simulator.inject(
        "submit", status=429, body={"error": "slow"}, headers={"Retry-After": retry_after}, times=2
    )
    runner, rec = make_runner(client, clock=clock, progress_interval=0.001)
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: rec.ready or rec.failed)
    await runner.wait_idle()  # the clip's record is written after the listener has it

    assert clock.sleeps[:2] == [waited, waited]  # nothing else sleeps before it is accepted
    assert simulator.submit_attempts == 3
    assert len(simulator.submits) == 1
    assert (await storage.jobs.get(job.id)).state is JobState.DELIVERED


@pytest.mark.parametrize("header", ["Retry-After", "x-rate-limit-reset-at-utc"])
async def test_a_429_reset_time_given_as_a_date_is_waited_out(
    storage, simulator, segmind_client_factory, make_runner, header
):
    clock = FakeClock()
    client = segmind_client_factory(simulator.base_url, clock=clock, policy=PATIENT_POLICY)
    moment = datetime.fromtimestamp(clock.time() + 5, UTC)
    value = format_datetime(moment, usegmt=True) if header == "Retry-After" else moment.isoformat()
    simulator.inject("submit", status=429, body={"error": "slow down"}, headers={header: value})
    runner, rec = make_runner(client, clock=clock, progress_interval=0.001)
    await runner.start()
    await runner.enqueue(await add_job(storage))
    await rec.wait_for(lambda: rec.ready or rec.failed)

    assert clock.sleeps[0] == pytest.approx(5.0)
    assert len(simulator.submits) == 1


async def test_segmind_unreachable_at_every_submit_ends_the_job_after_the_runners_attempts(
    storage, segmind_client_factory, make_runner
):
    clock = FakeClock()
    client = segmind_client_factory(f"http://127.0.0.1:{free_port()}", clock=clock)
    runner, rec = make_runner(client, clock=clock)
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: rec.failed)

    (error,) = [error for _, error in rec.failed]
    assert isinstance(error, SegmindUnavailable)
    assert len(clock.sleeps) == RATE_LIMITED_SUBMIT_ATTEMPTS - 1
    stored = await storage.jobs.get(job.id)
    assert stored.state is JobState.FAILED and stored.request_id is None


async def stored_as_finished(storage: Storage, segmind_client, job: Job) -> Job:
    """A job Segmind has finished, stored as a bot that stopped before downloading left it."""
    submission = await segmind_client.submit(job.request)
    result = await segmind_client.poll_until_done(submission, deadline=time.monotonic() + 30)
    return await storage.jobs.update(
        job.id,
        now=1.0,
        state=JobState.PROCESSING,
        request_id=submission.request_id,
        status_url=submission.status_url,
        response_url=submission.response_url,
        submitted_at=time.time(),
        video_url=result.video_url,
    )


async def test_download_waits_follow_the_download_backoff(
    storage, simulator, segmind_client, make_runner
):
    await stored_as_finished(storage, segmind_client, await add_job(storage))
    simulator.inject("download", status=503, body="busy", times=3)
    clock = FakeClock()  # only the runner's: nothing else sleeps on it while it downloads
    runner, rec = make_runner(clock=clock)
    await runner.start()
    await rec.wait_for(lambda: rec.ready or rec.failed)

    backoff = RunnerConfig().download_backoff
    assert len(clock.sleeps) == 3
    for attempt, waited in enumerate(clock.sleeps):
        ceiling = min(backoff.cap, backoff.base * 2**attempt)
        assert ceiling / 2 <= waited <= ceiling
    assert len(rec.ready) == 1 and len(simulator.calls_to("download")) == 4


async def test_a_download_failing_every_attempt_fails_the_job_after_the_configured_attempts(
    storage, simulator, segmind_client, make_runner
):
    job = await stored_as_finished(storage, segmind_client, await add_job(storage))
    simulator.inject("download", status=503, body="busy", times=100)
    clock = FakeClock()
    runner, rec = make_runner(clock=clock)
    await runner.start()
    await rec.wait_for(lambda: rec.failed)

    attempts = RunnerConfig().download_attempts
    assert len(simulator.calls_to("download")) == attempts
    assert len(clock.sleeps) == attempts - 1
    assert isinstance(rec.failed[0][1], DownloadFailed)
    assert (await storage.jobs.get(job.id)).state is JobState.FAILED


async def test_delivery_waits_follow_the_delivery_backoff(
    storage, simulator, segmind_client, make_runner
):
    await stored_as_finished(storage, segmind_client, await add_job(storage))
    clock = FakeClock()
    config = RunnerConfig()
    runner, rec = make_runner(
        clock=clock,
        delivery_attempts=config.delivery_attempts,
        delivery_backoff=config.delivery_backoff,
    )
    posts = []

    async def discord_down_three_times(job):
        posts.append(job.id)
        if len(posts) <= 3:
            raise ConnectionError("discord down")
        return 77

    rec.on_clip_ready = discord_down_three_times
    await runner.start()
    await runner.wait_idle()

    backoff = config.delivery_backoff
    assert len(clock.sleeps) == 3
    for attempt, waited in enumerate(clock.sleeps):
        ceiling = min(backoff.cap, backoff.base * 2**attempt)
        assert ceiling / 2 <= waited <= ceiling
    assert len(posts) == 4
    assert rec.failed == []


async def test_a_paid_clip_outlasts_a_cdn_hiccup_and_discord_retries_calmly():
    """Each wait is at least half its ceiling, so this is the least a download may wait in all.

    The fixed delays before one backoff policy rode out 21 s of CDN trouble: a policy that
    gives up sooner throws away clips the owner paid for. A post never gives up (while the
    clip is on disk), so only its pace matters.
    """

    def least_total(attempts: int, backoff) -> float:
        return sum(min(backoff.cap, backoff.base * 2**n) / 2 for n in range(attempts - 1))

    config = RunnerConfig()
    assert least_total(config.download_attempts, config.download_backoff) >= 21
    # A post is retried without end while the clip is on disk, every few minutes at most.
    assert 60 <= config.delivery_backoff.cap <= 300
    # ... and the first retry still comes within seconds, as it did.
    assert config.download_backoff.base <= 2 and config.delivery_backoff.base <= 2


async def test_a_finished_job_resumed_after_its_deadline_survives_a_result_hiccup(
    storage, simulator_factory, segmind_client_factory, make_runner
):
    sim = await simulator_factory(queue_seconds=0, processing_seconds=0)
    client = segmind_client_factory(sim.base_url)
    job = await add_job(storage)
    submission = await client.submit(job.request)
    await storage.jobs.update(
        job.id,
        now=1.0,
        state=JobState.PROCESSING,
        request_id=submission.request_id,
        status_url=submission.status_url,
        response_url=submission.response_url,
        submitted_at=time.time() - 20 * 60,  # past the 15-minute deadline, inside the hour
    )
    sim.inject("result", status=502, body="<html><h1>502 Bad Gateway</h1></html>")
    runner, rec = make_runner(client)
    await runner.start()
    await rec.wait_for(lambda: rec.ready or rec.failed)

    assert rec.failed == []
    assert rec.clip_bytes[job.id] == SAMPLE
    assert len(sim.submits) == 1


async def test_a_key_refused_while_polling_alerts_the_operator(storage, simulator, make_runner):
    simulator.inject("status", status=401, body={"error": "Invalid API key"})
    runner, rec = make_runner()
    await runner.start()
    await runner.enqueue(await add_job(storage))
    await rec.wait_for(lambda: rec.failed)

    (failure,) = [error for _, error in rec.failed]
    assert isinstance(failure, SegmindAuthError)
    assert failure.user_message == "The bot is misconfigured; the moderators have been told."
    assert rec.alerts == [failure]


async def test_a_download_that_is_not_a_video_is_tried_again(storage, simulator, make_runner):
    simulator.inject("download", status=200, body="<html><body>Access denied</body></html>")
    runner, rec = make_runner(download_attempts=2, download_backoff=QUICK)
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: rec.ready or rec.failed)

    assert rec.clip_bytes[job.id] == SAMPLE
    assert len(simulator.calls_to("download")) == 2


async def test_a_download_that_is_never_a_video_is_not_delivered(
    storage, simulator, make_runner, tmp_path
):
    simulator.inject("download", status=200, times=10, headers={"Content-Type": "video/mp4"})
    runner, rec = make_runner(download_attempts=3, download_backoff=QUICK)
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await rec.wait_for(lambda: rec.failed)

    assert rec.ready == []
    assert (await storage.jobs.get(job.id)).state is JobState.FAILED
    assert list((tmp_path / "clips").iterdir()) == []


class SlowPost(Recorder):
    """A listener whose upload to Discord takes until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.posting, self.release = asyncio.Event(), asyncio.Event()

    async def on_clip_ready(self, job: Job) -> int | None:
        self.posting.set()
        await self.release.wait()
        return 4242


async def posting_a_clip(storage, make_runner) -> tuple[JobRunner, SlowPost, Job]:
    runner, _ = make_runner()
    listener = SlowPost()
    runner.set_listener(listener)
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    async with asyncio.timeout(5):
        await listener.posting.wait()
    return runner, listener, job


@pytest.mark.parametrize("stops", [1, 2])  # a second Ctrl-C must not cut the upload short
async def test_a_clip_being_posted_at_shutdown_is_recorded_so_a_restart_never_posts_it_twice(
    storage, simulator, make_runner, stops
):
    runner, listener, job = await posting_a_clip(storage, make_runner)
    stopping = [asyncio.create_task(runner.shutdown(timeout=5)) for _ in range(stops)]
    while runner.accepting:  # shutdown has begun and cancelled the job's task
        await asyncio.sleep(0)
    listener.release.set()  # ...and the upload completes after all
    await asyncio.gather(*stopping)

    stored = await storage.jobs.get(job.id)
    assert stored.state is JobState.DELIVERED and stored.result_message_id == 4242
    assert await storage.jobs.unfinished() == []


async def test_a_cancel_that_races_the_post_leaves_the_clip_delivered(
    storage, simulator, make_runner
):
    runner, listener, job = await posting_a_clip(storage, make_runner)
    cancelling = asyncio.create_task(runner.cancel(job.id))
    await asyncio.sleep(0)  # the cancel has reached the job while its post is under way
    listener.release.set()  # ...and the post completes after all
    await cancelling

    stored = await storage.jobs.get(job.id)
    assert stored.state is JobState.DELIVERED and stored.result_message_id == 4242
    assert listener.failed == []  # nobody was told "cancelled"


async def test_cancelling_a_waiting_job_twice_is_harmless(storage, simulator, make_runner):
    runner, _ = make_runner(max_concurrent=1)
    await runner.start()
    first, second = await add_job(storage, user_id=1), await add_job(storage, user_id=2)
    await runner.enqueue(first)
    await runner.enqueue(second)
    await runner.cancel(second.id)
    async with asyncio.timeout(5):
        assert await runner.cancel(second.id) is None  # two clicks that both saw it waiting
    assert (await storage.jobs.get(second.id)).state is JobState.CANCELLED


async def test_a_full_disk_while_fetching_a_paid_clip_is_tried_again(
    storage, simulator, make_runner, monkeypatch
):
    real_mkstemp = tempfile.mkstemp
    refusals = []

    def disk_full_once(*args, **kwargs):
        if not refusals:
            refusals.append(1)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr("services.download.tempfile.mkstemp", disk_full_once)
    runner, _ = make_runner()
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    await asyncio.wait_for(runner.wait_idle(), 10)

    stored = await storage.jobs.get(job.id)
    assert refusals and stored.request_id is not None  # paid for, then the disk refused once
    assert stored.state is JobState.DELIVERED


async def test_a_cancel_then_a_shutdown_during_the_send_keep_the_job_counted(
    storage, simulator, make_runner
):
    simulator.slow("submit", seconds=0.5)
    runner, _ = make_runner()
    await runner.start()
    job = await add_job(storage)
    await runner.enqueue(job)
    async with asyncio.timeout(5):
        while simulator.submit_attempts == 0:  # the request has left
            await asyncio.sleep(0.005)
    cancelling = asyncio.create_task(runner.cancel(job.id))
    await asyncio.sleep(0.05)
    await runner.shutdown(timeout=2)  # the operator stops the bot meanwhile
    await cancelling

    final = await storage.jobs.get(job.id)
    # The request left before the Cancel: whatever Segmind made of it, it counts.
    assert final.counts_toward_limit and final.state is not JobState.QUEUED
