"""Metrics as Prometheus scrapes them: over loopback HTTP, from events, the database and gates."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.errors import SegmindAuthError, SegmindInsufficientCredits, SegmindUnavailable
from services.finish_estimate import TimingModel
from services.gates import AccountGates
from services.job_listener import JobReporter
from services.metrics import Metrics
from services.metrics_server import HealthCheck, MetricsServer
from services.models import Job, JobState, SegmindState, Submission, VideoRequest, VideoResult
from services.runner_config import RunnerConfig
from services.segmind import SegmindClient
from services.segmind_steps import SegmindSteps
from services.settings import SettingsError
from services.simulator import SegmindSimulator
from services.storage import NewJob, Storage
from services.storage.job_totals import BILLED, RESERVED
from tests.conftest import SegmindClientFactory, SimulatorFactory
from tests.fakeclock import FakeClock

GUILD = 4242


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels`` in a scrape, or None."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


def scraped(metrics: Metrics) -> str:
    return metrics.exposition().decode()


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    opened = await Storage.open(tmp_path / "bot.db")
    yield opened
    await opened.close()


class Gateway:
    """What the bot tells the health check; a test flips it."""

    def __init__(self) -> None:
        self.connected = True

    def __call__(self) -> bool:
        return self.connected


@pytest.fixture
async def served(
    storage: Storage,
) -> AsyncIterator[tuple[MetricsServer, Metrics, Gateway]]:
    metrics = Metrics()
    metrics.watch(storage, AccountGates.create(FakeClock(), 600))
    gateway = Gateway()
    server = MetricsServer(metrics, HealthCheck(storage, gateway), port=0)
    await server.start()
    yield server, metrics, gateway
    await server.stop()


async def get(server: MetricsServer, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}{path}") as resp,
    ):
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def store_job(
    storage: Storage,
    *,
    state: JobState,
    cost: float,
    guild: int = GUILD,
    accepted: bool | None = None,
) -> int:
    """A stored job; ``accepted`` (Segmind gave it a request id) defaults to DELIVERED's."""
    job = await storage.jobs.insert(
        NewJob(
            guild_id=guild,
            channel_id=5,
            user_id=7,
            request=VideoRequest.create("a secret prompt about a fox", seed=1),
            created_at=time.time(),
            cost_usd=cost,
        )
    )
    if accepted is None:
        accepted = state is JobState.DELIVERED
    if state is not JobState.QUEUED or accepted:
        fields = {"request_id": f"req-{job.id}"} if accepted else {}
        await storage.jobs.update(job.id, now=time.time(), state=state, **fields)
    return job.id


# --- counted events ---------------------------------------------------------------------


def test_every_event_moves_its_own_series() -> None:
    metrics = Metrics()
    metrics.submitted("accepted")
    metrics.submitted("unknown")
    metrics.polled()
    metrics.polled()
    metrics.detected(2.5)
    metrics.queue_waited(12.0)
    metrics.generated(200.0)
    metrics.clip_posted(1, "channel", "link")
    metrics.clip_delivered(1)
    metrics.error("segmind", 503)
    metrics.error("discord", "timeout")

    text = scraped(metrics)
    assert sample(text, "videobot_segmind_submits_total", outcome="accepted") == 1
    assert sample(text, "videobot_segmind_submits_total", outcome="unknown") == 1
    assert sample(text, "videobot_segmind_submits_total", outcome="refused") == 0
    assert sample(text, "videobot_segmind_status_polls_total") == 2
    assert sample(text, "videobot_segmind_detection_delay_seconds_sum") == 2.5
    assert sample(text, "videobot_queue_wait_seconds_count") == 1
    assert sample(text, "videobot_generation_seconds_bucket", le="240.0") == 1
    assert sample(text, "videobot_generation_seconds_bucket", le="180.0") == 0
    assert sample(text, "videobot_deliveries_total", route="channel", form="link") == 1
    assert sample(text, "videobot_deliveries_total", route="dm", form="file") == 0
    assert sample(text, "videobot_errors_total", service="segmind", code="503") == 1
    assert sample(text, "videobot_errors_total", service="discord", code="timeout") == 1


def test_two_bots_in_one_process_count_apart() -> None:
    first, second = Metrics(), Metrics()
    first.polled()
    assert sample(scraped(first), "videobot_segmind_status_polls_total") == 1
    assert sample(scraped(second), "videobot_segmind_status_polls_total") == 0


async def test_a_finished_job_is_polled_and_its_detection_delay_bounded(
    simulator_factory: SimulatorFactory, segmind_client_factory: SegmindClientFactory
) -> None:
    clock = FakeClock()
    sim: SegmindSimulator = await simulator_factory(
        clock=clock, queue_seconds=1.0, processing_seconds=5.0
    )
    metrics = Metrics()
    client: SegmindClient = segmind_client_factory(
        sim.base_url, clock=clock, poll_interval=2.0, max_poll_interval=2.0, metrics=metrics
    )
    submission = await client.submit(VideoRequest.create("a fox", seed=3))
    await client.poll_until_done(submission, deadline=clock.monotonic() + 600)

    text = scraped(metrics)
    polls = sample(text, "videobot_segmind_status_polls_total")
    assert polls is not None and polls >= 3  # queued, processing..., completed
    # Polled every 2 s: the end was seen at most one interval after it happened.
    assert sample(text, "videobot_segmind_detection_delay_seconds_count") == 1
    assert sample(text, "videobot_segmind_detection_delay_seconds_sum") == pytest.approx(2.0)


async def test_segmind_error_answers_are_counted_by_status(
    simulator: SegmindSimulator, segmind_client_factory: SegmindClientFactory
) -> None:
    metrics = Metrics()
    client = segmind_client_factory(simulator.base_url, api_key="wrong-key", metrics=metrics)
    with pytest.raises(SegmindAuthError):
        await client.submit(VideoRequest.create("a fox", seed=3))

    text = scraped(metrics)
    assert sample(text, "videobot_errors_total", service="segmind", code="401") == 1
    assert "wrong-key" not in text


# --- read at scrape time ------------------------------------------------------------------


async def test_jobs_and_spend_come_from_the_database_at_each_scrape(
    served: tuple[MetricsServer, Metrics, Gateway], storage: Storage
) -> None:
    server, _, _ = served
    await store_job(storage, state=JobState.QUEUED, cost=0.36)
    await store_job(storage, state=JobState.DELIVERED, cost=0.36)
    await store_job(storage, state=JobState.FAILED, cost=0.36)  # refused before submit: free
    await store_job(storage, state=JobState.DELIVERED, cost=0.5, guild=99)

    status, content_type, text = await get(server, "/metrics")

    assert status == 200 and content_type.startswith("text/plain")
    assert sample(text, "videobot_jobs", state="queued") == 1
    assert sample(text, "videobot_jobs", state="delivered") == 2
    assert sample(text, "videobot_jobs", state="failed") == 1
    assert sample(text, "videobot_jobs", state="processing") == 0
    assert sample(text, "videobot_spend_counted_usd", guild=str(GUILD)) == pytest.approx(0.72)
    assert sample(text, "videobot_spend_billed_usd_total", guild=str(GUILD)) == pytest.approx(0.36)
    assert sample(text, "videobot_spend_billed_usd_total", guild="99") == pytest.approx(0.5)
    assert "secret prompt" not in text

    await store_job(storage, state=JobState.QUEUED, cost=0.36)
    _, _, text = await get(server, "/metrics")
    assert sample(text, "videobot_jobs", state="queued") == 2


async def test_billed_spend_never_falls_when_a_reservation_is_released(storage: Storage) -> None:
    metrics = Metrics()
    metrics.watch(storage, AccountGates.create(FakeClock(), 600))
    await store_job(storage, state=JobState.DELIVERED, cost=0.36)
    queued = await store_job(storage, state=JobState.QUEUED, cost=0.36)
    await metrics.refresh()
    text = scraped(metrics)
    assert sample(text, "videobot_spend_counted_usd", guild=str(GUILD)) == pytest.approx(0.72)
    assert sample(text, "videobot_spend_billed_usd_total", guild=str(GUILD)) == pytest.approx(0.36)

    # The member cancels before the submit: the budget gives the reservation back.
    await storage.jobs.update(queued, now=time.time(), state=JobState.CANCELLED)
    await metrics.refresh()
    text = scraped(metrics)
    assert sample(text, "videobot_spend_counted_usd", guild=str(GUILD)) == pytest.approx(0.36)
    assert sample(text, "videobot_spend_billed_usd_total", guild=str(GUILD)) == pytest.approx(0.36)
    [billed] = [f for f in text_string_to_metric_families(text) if f.name.endswith("billed_usd")]
    assert billed.type == "counter"


async def test_a_server_whose_reservations_are_all_released_stays_at_zero(
    storage: Storage,
) -> None:
    metrics = Metrics()
    metrics.watch(storage, AccountGates.create(FakeClock(), 600))
    queued = await store_job(storage, state=JobState.QUEUED, cost=0.36, guild=77)
    await metrics.refresh()
    assert sample(scraped(metrics), "videobot_spend_counted_usd", guild="77") == pytest.approx(0.36)

    await storage.jobs.update(queued, now=time.time(), state=JobState.FAILED)
    await metrics.refresh()
    # Still a series (at 0), not one that vanished with its last value unknown.
    assert sample(scraped(metrics), "videobot_spend_counted_usd", guild="77") == 0


async def test_counted_spend_is_what_the_budgets_count(storage: Storage) -> None:
    for state, accepted in [
        (JobState.QUEUED, False),
        (JobState.SUBMITTING, False),
        (JobState.UNKNOWN, False),
        (JobState.PROCESSING, True),
        (JobState.DELIVERED, True),
        (JobState.FAILED, True),  # accepted, then Segmind failed it: billed
        (JobState.FAILED, False),  # surely refused: free
        (JobState.CANCELLED, False),
        (JobState.EXPIRED, True),
    ]:
        await store_job(storage, state=state, cost=0.25, accepted=accepted)
    metrics = Metrics()
    metrics.watch(storage, AccountGates.create(FakeClock(), 600))
    await metrics.refresh()

    _, budget = await storage.jobs.guild_counted(GUILD, since=0)
    text = scraped(metrics)
    assert budget == pytest.approx(7 * 0.25)  # 3 reserved, 4 accepted
    assert sample(text, "videobot_spend_counted_usd", guild=str(GUILD)) == pytest.approx(budget)
    assert sample(text, "videobot_spend_billed_usd_total", guild=str(GUILD)) == pytest.approx(1.0)


async def test_the_spend_sums_never_read_every_job_row(storage: Storage) -> None:
    """A scrape holds the database's one lock: 100k rows read in full took 120 ms."""
    for where in (BILLED, RESERVED):
        plan = await storage.db.fetchall(
            "EXPLAIN QUERY PLAN SELECT guild_id, COALESCE(SUM(cost_usd), 0) FROM jobs"
            f" WHERE {where} GROUP BY guild_id"
        )
        steps = [str(row[-1]) for row in plan]
        scans = [step for step in steps if step.startswith("SCAN jobs")]
        assert all("COVERING INDEX" in step for step in scans), steps
        assert all("USING" in step for step in steps if step.startswith("SEARCH")), steps


async def test_gate_state_is_shown_as_it_stands(storage: Storage) -> None:
    clock = FakeClock()
    gates = AccountGates.create(clock, 600)
    metrics = Metrics()
    metrics.watch(storage, gates)
    assert sample(scraped(metrics), "videobot_account_paused", gate="credits") == 0

    gates.credits.pause(SegmindInsufficientCredits(detail="406"))
    text = scraped(metrics)
    assert sample(text, "videobot_account_paused", gate="credits") == 1
    assert sample(text, "videobot_account_paused", gate="key") == 0


# --- /healthz and the port ---------------------------------------------------------------


async def test_health_is_ok_while_the_gateway_is_connected_and_the_database_answers(
    served: tuple[MetricsServer, Metrics, Gateway],
) -> None:
    server, _, _ = served
    assert await get(server, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")


async def test_health_is_503_with_a_reason_while_the_gateway_is_down(
    served: tuple[MetricsServer, Metrics, Gateway],
) -> None:
    server, _, gateway = served
    gateway.connected = False
    status, _, text = await get(server, "/healthz")
    assert (status, text) == (503, "Discord gateway not connected\n")


async def test_health_is_503_when_the_database_does_not_answer(
    served: tuple[MetricsServer, Metrics, Gateway], storage: Storage
) -> None:
    server, _, _ = served
    await storage.close()
    status, _, text = await get(server, "/healthz")
    assert status == 503 and text.startswith("database failed") and text.count("\n") == 1
    # The counters are still served when the database totals cannot be read.
    status, _, text = await get(server, "/metrics")
    assert status == 200 and "videobot_segmind_submits_total" in text


async def test_a_port_in_use_is_one_settings_problem(storage: Storage) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MetricsServer(Metrics(), HealthCheck(storage, lambda: True), port=port)
        with pytest.raises(SettingsError) as raised:
            await server.start()
    [problem] = raised.value.problems
    assert problem.startswith(f"METRICS_PORT={port}: cannot listen on 127.0.0.1:{port}")
    assert "\n" not in problem


# --- what the runner observes --------------------------------------------------------------


class StillClock(FakeClock):
    """Moves only when a test says: the runner's progress ticker waits forever on it."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


class ScriptedSegmind:
    """Tells ``poll_until_done``'s states as Segmind would, the clock moving between them."""

    def __init__(
        self, clock: FakeClock, states: list[tuple[float, SegmindState]], result_takes: float
    ) -> None:
        self._clock = clock
        self._states = states
        self._result_takes = result_takes
        self.poll_interval = 2.0

    async def poll_until_done(
        self,
        submission: Submission,
        *,
        deadline: float,
        on_state: Callable[[SegmindState], Awaitable[None]],
        schedule: object,
    ) -> VideoResult:
        for after, state in self._states:
            self._clock.advance(after)
            await on_state(state)
        self._clock.advance(self._result_takes)  # the result's fetch, after COMPLETED
        return VideoResult("https://example.invalid/clip.mp4", {})


async def polled_to_the_end(
    storage: Storage,
    clock: FakeClock,
    segmind: ScriptedSegmind,
    *,
    submitted_ago: float,
) -> Metrics:
    metrics = Metrics()
    steps = steps_for(storage, segmind, clock, metrics)
    job_id = await store_job(storage, state=JobState.SUBMITTED, cost=0.36, accepted=True)
    job = await storage.jobs.update(
        job_id,
        now=clock.time(),
        status_url="https://example.invalid/status",
        response_url="https://example.invalid/result",
        submitted_at=clock.time() - submitted_ago,
    )
    await steps.poll(job)
    return metrics


async def test_generation_is_timed_when_completed_arrives_not_after_the_result_fetch(
    storage: Storage,
) -> None:
    clock = StillClock()
    segmind = ScriptedSegmind(
        clock,
        [(0, SegmindState.QUEUED), (100, SegmindState.PROCESSING), (100, SegmindState.COMPLETED)],
        result_takes=500,
    )
    metrics = await polled_to_the_end(storage, clock, segmind, submitted_ago=0)

    text = scraped(metrics)
    assert sample(text, "videobot_generation_seconds_count") == 1
    assert sample(text, "videobot_generation_seconds_sum") == pytest.approx(200)


async def test_a_job_that_ended_while_the_bot_was_down_is_not_timed(storage: Storage) -> None:
    clock = StillClock()
    # Submitted, then the bot was down 40 minutes; the first look after the start: done.
    segmind = ScriptedSegmind(clock, [(0, SegmindState.COMPLETED)], result_takes=1)
    metrics = await polled_to_the_end(storage, clock, segmind, submitted_ago=2400)

    assert sample(scraped(metrics), "videobot_generation_seconds_count") == 0


async def test_a_resumed_job_seen_unfinished_is_timed_from_its_submit(storage: Storage) -> None:
    clock = StillClock()
    # Still at work when this process first asked: Segmind really took that long.
    segmind = ScriptedSegmind(
        clock, [(0, SegmindState.PROCESSING), (30, SegmindState.COMPLETED)], result_takes=1
    )
    metrics = await polled_to_the_end(storage, clock, segmind, submitted_ago=600)

    assert sample(scraped(metrics), "videobot_generation_seconds_sum") == pytest.approx(630)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_submit_that_never_connected_is_no_submit_only_a_connection_error(
    storage: Storage, segmind_client_factory: SegmindClientFactory
) -> None:
    clock = FakeClock()
    metrics = Metrics()
    client = segmind_client_factory(f"http://127.0.0.1:{closed_port()}", metrics=metrics)
    steps = steps_for(storage, client, clock, metrics, config=RunnerConfig(submit_attempts=1))
    job_id = await store_job(storage, state=JobState.QUEUED, cost=0.36)
    job = await storage.jobs.get(job_id)
    assert job is not None

    with pytest.raises(SegmindUnavailable):
        await steps.submit_patiently(job)

    text = scraped(metrics)
    for outcome in ("accepted", "refused", "unknown"):
        assert sample(text, "videobot_segmind_submits_total", outcome=outcome) == 0
    assert sample(text, "videobot_errors_total", service="segmind", code="connection") == 1


async def test_a_status_poll_is_counted_once_segmind_answers(
    simulator: SegmindSimulator, segmind_client_factory: SegmindClientFactory
) -> None:
    metrics = Metrics()
    submission = await segmind_client_factory(simulator.base_url).submit(
        VideoRequest.create("a fox", seed=3)
    )
    unreachable = segmind_client_factory(f"http://127.0.0.1:{closed_port()}", metrics=metrics)
    with pytest.raises(SegmindUnavailable):
        await unreachable.status(submission)
    text = scraped(metrics)
    assert sample(text, "videobot_segmind_status_polls_total") == 0
    assert sample(text, "videobot_errors_total", service="segmind", code="connection") == 1

    await segmind_client_factory(simulator.base_url, metrics=metrics).status(submission)
    assert sample(scraped(metrics), "videobot_segmind_status_polls_total") == 1


def steps_for(
    storage: Storage,
    segmind: object,
    clock: FakeClock,
    metrics: Metrics,
    *,
    stop_requested: bool = False,
    config: RunnerConfig | None = None,
) -> SegmindSteps:
    return SegmindSteps(
        storage,
        segmind,  # type: ignore[arg-type]
        config or RunnerConfig(),
        clock=clock,
        gates=AccountGates.create(clock, 600),
        reporter=JobReporter(),
        rng=random.Random(1),
        stop_requested=lambda job_id: stop_requested,
        metrics=metrics,
        timings=TimingModel(240.0),
    )


async def queued_job(storage: Storage, *, created_at: float) -> Job:
    job_id = await store_job(storage, state=JobState.QUEUED, cost=0.36)
    await storage.db.execute("UPDATE jobs SET created_at = ? WHERE id = ?", (created_at, job_id))
    job = await storage.jobs.get(job_id)
    assert job is not None
    return job


async def test_a_job_called_off_at_the_last_moment_never_left_the_queue(
    storage: Storage, simulator: SegmindSimulator, segmind_client_factory: SegmindClientFactory
) -> None:
    clock = FakeClock()
    metrics = Metrics()
    client = segmind_client_factory(simulator.base_url, metrics=metrics)
    steps = steps_for(storage, client, clock, metrics, stop_requested=True)
    job = await queued_job(storage, created_at=clock.time() - 30)

    with pytest.raises(asyncio.CancelledError):
        await steps.submit_patiently(job)

    assert simulator.submit_attempts == 0
    assert sample(scraped(metrics), "videobot_queue_wait_seconds_count") == 0


async def test_queue_wait_is_observed_once_up_to_the_first_send(
    storage: Storage, simulator: SegmindSimulator, segmind_client_factory: SegmindClientFactory
) -> None:
    simulator.inject("submit", status=429, body={"error": "Too many requests"}, times=2)
    clock = FakeClock()
    metrics = Metrics()
    client = segmind_client_factory(simulator.base_url, metrics=metrics)
    steps = steps_for(storage, client, clock, metrics)
    job = await queued_job(storage, created_at=clock.time() - 30)

    await steps.submit_patiently(job)

    assert simulator.submit_attempts == 3
    text = scraped(metrics)
    assert sample(text, "videobot_queue_wait_seconds_count") == 1
    assert sample(text, "videobot_queue_wait_seconds_sum") == pytest.approx(30)
    assert sample(text, "videobot_segmind_submits_total", outcome="refused") == 2
    assert sample(text, "videobot_segmind_submits_total", outcome="accepted") == 1
