"""A finished clip's way to the member: downloaded from Segmind, posted until it arrives.

A paid clip's download is tried again after a transient failure. Its post is tried again
without end while the file is on disk: a Discord outage delays delivery, never ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path

from services.clips import ClipFiles
from services.clock import Clock
from services.download import ClipDownloader
from services.errors import (
    ClipStorageError,
    ClipUndeliverable,
    SegmindRequestExpired,
    SegmindServerError,
    SegmindUnavailable,
)
from services.job_listener import ClipLost, DownloadFailed, JobReporter
from services.metrics import Metrics
from services.models import Job, JobState, Progress, ProgressPhase
from services.runner_config import RunnerConfig
from services.storage import LeaseLost, Storage

# The runner's log, whichever of its modules writes: its lines keep one name.
log = logging.getLogger("services.jobs")


class ClipDelivery:
    """Fetches a finished job's clip to disk and posts it through the listener."""

    def __init__(
        self,
        storage: Storage,
        config: RunnerConfig,
        *,
        downloader: ClipDownloader,
        clips: ClipFiles,
        clock: Clock,
        reporter: JobReporter,
        rng: random.Random,
        metrics: Metrics,
        owner: str | None = None,
    ) -> None:
        self._storage = storage
        self._config = config
        self._owner = owner  # this process, as the lease holder each write must still be
        self._downloader = downloader
        self._clips = clips
        self._clock = clock
        self._reporter = reporter
        self._rng = rng
        self._metrics = metrics
        self._delivery_slots = asyncio.Semaphore(config.max_concurrent_deliveries)

    async def download(self, job: Job) -> Job:
        if job.video_url is None:
            raise SegmindRequestExpired(detail="no result URL stored")
        # No age check here: the CDN's own 403/404/410 says when a link is gone, and a wall
        # clock corrected mid-job (NTP after boot) must not throw away a paid clip.
        await self._reporter.progress(
            job, Progress(job.id, ProgressPhase.DOWNLOADING, fraction=0.99)
        )
        dest = self._clips.path_for(job.id)
        size = await self._download_patiently(job, job.video_url, dest)
        log.info("job=%s downloaded bytes=%s", job.id, size)
        return await self._storage.jobs.update(
            job.id,
            owner=self._owner,
            now=self._clock.time(),
            state=JobState.DOWNLOADED,
            clip_path=str(dest),
        )

    async def _download_patiently(self, job: Job, url: str, dest: Path) -> int:
        """Download, trying again after a transient failure; expiry and size limits are final."""
        attempts = self._config.download_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._downloader.download(
                    url, dest, max_bytes=self._config.max_download_bytes
                )
            except (SegmindUnavailable, SegmindServerError, ClipStorageError) as err:
                if attempt == attempts:
                    raise DownloadFailed(detail=err.detail) from err
                delay = self._config.download_backoff.delay(attempt, self._rng)
                log.warning(
                    "job=%s download failed (%s); retrying in %.1fs", job.id, err.detail, delay
                )
                await self._clock.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def deliver(self, job: Job) -> None:
        """Post the clip until the member has it: a Discord outage delays delivery, never ends it.

        The job stays DOWNLOADED meanwhile, so a shutdown during a wait leaves it to the next
        start. It ends unposted only when the clip file is gone (nothing left to post) or the
        listener raises ``ClipUndeliverable`` (no route can ever reach the member).
        """
        try:
            await self._deliver_patiently(job)
        finally:
            self._metrics.clip_forgotten(job.id)  # delivered (counted), ended or left for later

    async def _deliver_patiently(self, job: Job) -> None:
        attempt = 0
        while True:
            if not self._clips.exists(job):
                log.error(
                    "job=%s clip file %s is gone; it cannot be delivered", job.id, job.clip_path
                )
                raise ClipLost(detail=f"clip file gone before delivery: {job.clip_path}")
            attempt += 1
            try:
                async with self._delivery_slots:
                    await self._post_clip(job)
                return
            except ClipUndeliverable as err:
                log.error("job=%s could not be delivered: %s", job.id, err.detail)
                raise
            except Exception as exc:
                delay = self._config.delivery_backoff.delay(attempt, self._rng)
                if attempt == self._config.delivery_attempts:
                    log.error(
                        "job=%s still not delivered after %d attempts; posting goes on while "
                        "its clip is on disk",
                        job.id,
                        attempt,
                        exc_info=True,
                    )
                log.warning(
                    "job=%s delivery attempt %d failed (%s); retrying in %.1fs",
                    job.id,
                    attempt,
                    _briefly(exc),
                    delay,
                )
            await self._clock.sleep(delay)

    async def _post_clip(self, job: Job) -> None:
        """Post the clip and record it, as one step no cancel (shutdown, Cancel) interrupts.

        A post that reached the channel but was not stored as delivered would be posted
        (and the member pinged) a second time after the restart.
        """
        listener = self._reporter.listener

        async def post_and_record() -> None:
            # The last look before the post: a process that lost the job to another (it was
            # too slow to renew its lease) must not post it as well.
            if self._owner is not None and not await self._storage.leases.still_mine(
                job.id, self._owner
            ):
                raise LeaseLost(job.id)
            message_id = await listener.on_clip_ready(job) if listener is not None else None
            await self._mark_delivered(job, message_id)
            # Counted here, once it is recorded: a retry after a lost answer or a failed
            # record posts (or finds) the clip again but delivers it only once.
            self._metrics.clip_delivered(job.id)

        post = asyncio.ensure_future(post_and_record())
        try:
            await asyncio.shield(post)
        except asyncio.CancelledError:
            while not post.done():  # a second cancel must not cut the upload short either
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({post})
            raise

    async def _mark_delivered(self, job: Job, message_id: int | None) -> None:
        await self._storage.jobs.update(
            job.id,
            owner=self._owner,
            now=self._clock.time(),
            state=JobState.DELIVERED,
            result_message_id=message_id,
            finished_at=self._clock.time(),
        )
        if not job.private and job.clip_path:
            # Public clips live on in Discord; private ones stay for sharing until swept.
            self._clips.remove(Path(job.clip_path))
        log.info("job=%s delivered message=%s", job.id, message_id)


def _briefly(exc: BaseException) -> str:
    """An error on one line for a retry's log: its type and the start of its message."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
