"""How the job runner paces its work: its settings and the limits behind their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from services.backoff import Backoff

# Segmind keeps a finished result for one hour; past that a resumed job cannot be fetched.
SEGMIND_RETENTION_SECONDS = 3600.0
# A 429 or a refused connection on submit proves the job was not accepted, so waiting and
# trying again is safe: this many submits in all, the waits between them done here.
RATE_LIMITED_SUBMIT_ATTEMPTS = 8
# Segmind's Retry-After is honoured up to two minutes; a longer one is a quota, not a blip.
SUBMIT_BACKOFF = Backoff(base=1.0, cap=30.0, max_retry_after=120.0)
# A paid clip's download is retried quickly at first, yet for longer in all than a CDN
# hiccup lasts (at least 30 s over 6 tries): the least each may wait is half its ceiling.
DOWNLOAD_BACKOFF = Backoff(base=2.0, cap=30.0)
# Its post is retried without end while the clip is on disk: quickly at first, then every
# few minutes at most, so an outage of hours costs Discord a request per clip in that time.
DELIVERY_BACKOFF = Backoff(base=2.0, cap=180.0)
RESUMED_POLL_WINDOW = 60.0


@dataclass(frozen=True)
class RunnerConfig:
    max_concurrent: int = 3
    max_per_member: int = 1
    deadline_seconds: float = 15 * 60
    expected_seconds: float = 240.0
    max_download_bytes: int = 200 * 1024 * 1024
    progress_interval: float = 5.0
    # Sends of one job while Segmind proves it did not accept them (429, refused connection).
    submit_attempts: int = RATE_LIMITED_SUBMIT_ATTEMPTS
    submit_backoff: Backoff = SUBMIT_BACKOFF
    # A finished clip is paid for: a dropped connection or a 5xx from the CDN is tried again.
    download_attempts: int = 6
    download_backoff: Backoff = DOWNLOAD_BACKOFF
    # Posting to Discord never gives up while the clip is on disk: an outage delays a paid
    # clip, it never ends it. After this many failed posts in a row the operator is told
    # (one ERROR with the traceback); each retry is one WARNING line.
    delivery_attempts: int = 8
    delivery_backoff: Backoff = DELIVERY_BACKOFF
    # Clips posted at the same time (each may be re-encoded to fit): after an outage many
    # wait at once. No Segmind slot is held meanwhile (``max_concurrent`` is for Segmind).
    max_concurrent_deliveries: int = 3
    # CLIP_COST_USD: Segmind's reported cost of a clip is trusted only near it
    # (``services.reported_cost``). Settings' default.
    clip_cost_usd: float = 0.36
    # Private clips are kept this long after delivery so their owner can share them.
    clip_retention_seconds: float = 24 * 3600
    sweep_interval: float = 3600.0
    # Several processes on one database (PostgreSQL): a job's lease lasts this long unless
    # its process renews it (every third of it), so a dead process's jobs are taken over
    # within one lease. Each process looks this often for jobs to take over, Cancels pressed
    # elsewhere, and slots another process freed.
    lease_seconds: float = 30.0
    lease_check_interval: float = 1.0
    # True when other processes may share the database: a start then takes over only the
    # jobs whose lease ran out. SQLite's lock file guarantees one process: it takes all.
    shared_database: bool = False

    def __post_init__(self) -> None:
        for name in (
            "submit_attempts",
            "download_attempts",
            "delivery_attempts",
            "max_concurrent_deliveries",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"RunnerConfig.{name} must be at least 1")
