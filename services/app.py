"""Builds every service from the settings, once; the bot and the CLI share this."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one process per database is on the operator
    fcntl = None  # type: ignore[assignment]

import aiohttp

from services.admission import Admission
from services.allowed_channels import AllowedChannels
from services.approvals import Approvals
from services.blocklist import Blocklist
from services.clips import ClipFiles
from services.clock import Clock, SystemClock
from services.download import ClipDownloader
from services.gallery import GalleryService
from services.gates import AccountGates
from services.job_queue import JobQueue
from services.jobs import JobRunner
from services.limits import LimitService
from services.metrics import Metrics
from services.runner_config import RunnerConfig
from services.segmind import RetryPolicy, SegmindClient
from services.settings import Settings, SettingsError
from services.simulator import SegmindSimulator, SimulatorConfig
from services.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    clock: Clock
    session: aiohttp.ClientSession
    storage: Storage
    segmind: SegmindClient
    downloader: ClipDownloader
    clips: ClipFiles
    gates: AccountGates
    admission: Admission
    limits: LimitService
    gallery: GalleryService
    runner: JobRunner
    metrics: Metrics
    blocklist: Blocklist
    channels: AllowedChannels
    approvals: Approvals
    queue: JobQueue
    simulator: SegmindSimulator | None = None


def runner_config(settings: Settings) -> RunnerConfig:
    expected = settings.expected_clip_seconds
    if settings.simulate:
        # The estimate should match what the simulator will take, or the bar lies.
        expected = settings.simulator_queue_seconds + settings.simulator_processing_seconds
    return RunnerConfig(
        max_concurrent=settings.max_concurrent_jobs,
        max_per_member=settings.max_jobs_per_member,
        deadline_seconds=settings.job_deadline_seconds,
        expected_seconds=expected,
        max_download_bytes=settings.max_download_bytes,
        clip_cost_usd=settings.clip_cost_usd,
        lease_seconds=settings.job_lease_seconds,
        # Each process looks for jobs to take over a few times per lease.
        lease_check_interval=min(1.0, settings.job_lease_seconds / 4),
    )


_BEING_MOVED = (
    "The database {database} is being copied by `bot.py migrate-db`: "
    "start the bot once the copy is done."
)
_ANOTHER_PROCESS = (
    "Another bot process is already using the database {database}: "
    "stop it first, or give this one its own DATABASE_URL."
)


@contextlib.contextmanager
def only_process_using(database: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the database while the bot runs.

    Two bots on one database (a second start, an overlapping deploy) would both resume
    the same queued jobs and submit, and bill, each of them twice.
    """
    lock_path = database.with_name(database.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                problem = _ANOTHER_PROCESS.format(database=database)
                raise SettingsError([problem]) from None
        yield  # closing the file releases the lock, also when the process is killed


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    segmind_base_url: str | None = None,
    retry_policy: RetryPolicy | None = None,
    runner: RunnerConfig | None = None,
) -> AsyncIterator[Services]:
    """Open the database, HTTP session and (with --simulate) the simulator; close them after.

    ``segmind_base_url`` overrides the setting (tests point it at their own simulator);
    ``retry_policy`` and ``runner`` replace the Segmind client's retry policy and the
    runner's configuration (tests shorten their delays; production keeps the defaults).
    """
    clock = clock or SystemClock()
    async with contextlib.AsyncExitStack() as stack:
        simulator = None
        base_url = segmind_base_url or settings.segmind_base_url
        api_key = settings.segmind_api_key
        if settings.simulate and segmind_base_url is None:
            simulator = SegmindSimulator(
                SimulatorConfig(
                    queue_seconds=settings.simulator_queue_seconds,
                    processing_seconds=settings.simulator_processing_seconds,
                )
            )
            base_url = await simulator.start()
            stack.push_async_callback(simulator.stop)
            api_key = api_key or "simulated"
            log.info("simulating Segmind at %s (no key, no cost)", base_url)
        if settings.database_url is None:
            stack.enter_context(only_process_using(settings.database_path))
        storage = await Storage.open(settings.database_location)
        stack.push_async_callback(storage.close)
        if not await storage.db.join_runners():
            raise SettingsError([_BEING_MOVED.format(database=settings.database_shown)])
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)
        # Counted whether or not METRICS_PORT serves them: the calls cost nothing.
        metrics = Metrics()
        segmind = SegmindClient(
            session,
            api_key=api_key,
            base_url=base_url,
            clock=clock,
            poll_interval=settings.poll_interval_seconds,
            policy=retry_policy or RetryPolicy(),
            metrics=metrics,
        )
        # Its own connections, which reach only public addresses or Segmind's own origin
        # (services.url_policy): the simulator's loopback address is that origin.
        downloader = ClipDownloader(trusted_base_url=base_url)
        stack.push_async_callback(downloader.close)  # after the runner's shutdown below
        clips = ClipFiles(settings.clips_dir)
        # Shared through the database: another process's pause holds here too.
        gates = AccountGates.create(clock, settings.credits_recheck_seconds, storage.meta)
        segmind.pace.share(storage.meta)
        metrics.watch(storage, gates)
        job_runner = JobRunner(
            storage,
            segmind,
            # Whoever set the rest: only the database decides whether others may share it.
            replace(
                runner or runner_config(settings),
                shared_database=settings.database_url is not None,
            ),
            downloader=downloader,
            clips=clips,
            clock=clock,
            gates=gates,
            metrics=metrics,
        )
        services = Services(
            settings=settings,
            clock=clock,
            session=session,
            storage=storage,
            segmind=segmind,
            downloader=downloader,
            clips=clips,
            gates=gates,
            admission=Admission(
                storage,
                default_limit=settings.default_limit,
                clip_cost_usd=settings.clip_cost_usd,
                clock=clock,
                gates=gates,
                daily_spend_ceiling_usd=settings.max_daily_spend_usd,
            ),
            limits=LimitService(
                storage,
                default_limit=settings.default_limit,
                clock=clock,
                clip_cost_usd=settings.clip_cost_usd,
            ),
            gallery=GalleryService(storage, clock),
            runner=job_runner,
            metrics=metrics,
            blocklist=Blocklist(
                storage, clock, default_negative_prompt=settings.default_negative_prompt
            ),
            channels=AllowedChannels(storage, clock),
            approvals=Approvals(storage, clock),
            queue=JobQueue(storage, job_runner, clock),
            simulator=simulator,
        )
        # Last in, first out: the runner stops, then admissions under way finish, then the
        # storage below them closes.
        stack.push_async_callback(services.admission.drain)
        stack.push_async_callback(services.runner.shutdown)
        yield services
