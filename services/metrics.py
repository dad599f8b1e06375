"""What the bot counts for Prometheus: a registry of its own and one small method per event.

The services and cogs call these methods as things happen (a submit answered, a status poll,
a clip posted); values that live in the database (jobs by state, spend by server) are read
from it before each scrape (``refresh``), so they are exact after a restart, and the account
gates are read as they stand.

Every metric is named ``videobot_*``. Labels come only from small fixed sets, HTTP status
codes and server ids: never a prompt, a token, a key or a URL. Each ``Metrics`` owns its
``CollectorRegistry`` (never prometheus_client's global one), so several bots or tests in
one process never share a count.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Literal, ParamSpec

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from services.gates import AccountGates
from services.models import JobState
from services.storage import Storage
from services.storage.job_totals import (
    jobs_by_state,
    spend_billed_by_guild,
    spend_reserved_by_guild,
)

log = logging.getLogger(__name__)
P = ParamSpec("P")

SubmitOutcome = Literal["accepted", "refused", "unknown"]
SUBMIT_OUTCOMES: tuple[SubmitOutcome, ...] = ("accepted", "refused", "unknown")
# How a clip reached the member: the interaction's followup, an edit of its private progress
# message, a channel post, a direct message, a channel notice with a "show me" button, or
# found: posted by an earlier try whose answer was lost (or by the process before a restart).
DeliveryRoute = Literal["followup", "edit", "channel", "dm", "notice", "found"]
DELIVERY_ROUTES: tuple[DeliveryRoute, ...] = (
    "followup",
    "edit",
    "channel",
    "dm",
    "notice",
    "found",
)
# What was posted: the file itself, Segmind's expiring link (too large to attach), for a
# notice a button only; unknown for a post found rather than made.
DeliveryForm = Literal["file", "link", "button", "unknown"]
Service = Literal["segmind", "discord"]
Gate = Literal["credits", "key"]

# Segmind's queue and generation take minutes; polls back off to 15 s.
_DETECTION_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0)
_QUEUE_BUCKETS = (0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)
_GENERATION_BUCKETS = (30.0, 60.0, 120.0, 180.0, 240.0, 300.0, 420.0, 600.0, 900.0, 1800.0)


def _never_raises(method: Callable[P, None]) -> Callable[P, None]:
    """A count that breaks must never cost a job: these calls sit between a paid submit and
    its record, and inside the shielded write that marks a clip delivered."""

    @functools.wraps(method)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            method(*args, **kwargs)
        except Exception:
            log.warning("metrics: %s failed; the job goes on", method.__name__, exc_info=True)

    return guarded


class Metrics:
    """The bot's counters and histograms, and what the database holds, in Prometheus form."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._submits = Counter(
            "videobot_segmind_submits",
            "Submits Segmind answered or surely received: accepted, refused by its answer, or "
            "outcome unknown (sent, answer lost: counted as billed, never resent). One that "
            "never connected is counted only in videobot_errors_total.",
            ["outcome"],
            registry=registry,
        )
        self._polls = Counter(
            "videobot_segmind_status_polls",
            "Status requests Segmind answered, whatever the HTTP status (retries included); "
            "one that got no answer is counted only in videobot_errors_total.",
            registry=registry,
        )
        self._detection = Histogram(
            "videobot_segmind_detection_delay_seconds",
            "Upper bound on how late the bot saw a Segmind job end: the time since the "
            "previous status poll that saw it unfinished (Segmind does not say when it ended).",
            buckets=_DETECTION_BUCKETS,
            registry=registry,
        )
        self._queue_wait = Histogram(
            "videobot_queue_wait_seconds",
            "From a request's admission to its first submit's send in this process: the "
            "wait for a free slot (a job resumed after a restart counts again, downtime "
            "included).",
            buckets=_QUEUE_BUCKETS,
            registry=registry,
        )
        self._generation = Histogram(
            "videobot_generation_seconds",
            "From Segmind accepting a job to the status answer that said completed; only "
            "jobs this process saw unfinished (one that ended while the bot was down is "
            "not timed: the downtime is not Segmind's).",
            buckets=_GENERATION_BUCKETS,
            registry=registry,
        )
        self._deliveries = Counter(
            "videobot_deliveries",
            "Clips recorded delivered, once each, by how the last post reached the member: "
            "route (followup, edit, channel, dm, notice, or found: an earlier try's post "
            "whose answer was lost) and form (file, link, button, unknown).",
            ["route", "form"],
            registry=registry,
        )
        self._errors = Counter(
            "videobot_errors",
            "Segmind: every answer >= 400, and requests that got none (timeout, connection). "
            "Discord: every HTTP answer >= 400, including ones the bot expects and handles "
            "(429s discord.py waits out, 404s for dismissed or expired messages and "
            "earlier-post lookups), and requests that got none.",
            ["service", "code"],
            registry=registry,
        )
        self._discord_rate_limited = Counter(
            "videobot_discord_rate_limited",
            "Discord 429 answers (discord.py waits each out and sends again); also in "
            'videobot_errors_total{service="discord",code="429"}.',
            registry=registry,
        )
        for outcome in SUBMIT_OUTCOMES:
            self._submits.labels(outcome=outcome)
        first_forms: dict[DeliveryRoute, DeliveryForm] = {"notice": "button", "found": "unknown"}
        for route in DELIVERY_ROUTES:
            self._deliveries.labels(route=route, form=first_forms.get(route, "file"))
        # How each clip on its way was last posted, until it is recorded delivered.
        self._posts: dict[int, tuple[DeliveryRoute, DeliveryForm]] = {}
        self._stored = _StoredState()
        registry.register(self._stored)

    # --- what happens --------------------------------------------------------------

    @_never_raises
    def submitted(self, outcome: SubmitOutcome) -> None:
        self._submits.labels(outcome=outcome).inc()

    @_never_raises
    def polled(self) -> None:
        self._polls.inc()

    @_never_raises
    def detected(self, delay: float) -> None:
        """A job's end was seen at most ``delay`` seconds after it happened."""
        self._detection.observe(max(0.0, delay))

    @_never_raises
    def queue_waited(self, seconds: float) -> None:
        self._queue_wait.observe(max(0.0, seconds))

    @_never_raises
    def generated(self, seconds: float) -> None:
        self._generation.observe(max(0.0, seconds))

    @_never_raises
    def clip_posted(self, job_id: int, route: DeliveryRoute, form: DeliveryForm) -> None:
        """Discord took the clip's post; it counts once the job is recorded delivered."""
        self._posts[job_id] = (route, form)

    @_never_raises
    def clip_found(self, job_id: int) -> None:
        """An earlier try's post was found: its route if this process made it, else found."""
        self._posts.setdefault(job_id, ("found", "unknown"))

    @_never_raises
    def clip_delivered(self, job_id: int) -> None:
        """The job is recorded DELIVERED: count its clip once, as it was last posted.

        A listener that tells no route (``bot.py generate``) delivers nothing countable.
        """
        post = self._posts.pop(job_id, None)
        if post is not None:
            route, form = post
            self._deliveries.labels(route=route, form=form).inc()

    @_never_raises
    def clip_forgotten(self, job_id: int) -> None:
        """The clip's delivery is over for this process (delivered, ended or left for later)."""
        self._posts.pop(job_id, None)

    @_never_raises
    def error(self, service: Service, code: int | str) -> None:
        """``code``: an HTTP status, or a word from a fixed set (``timeout``, ``connection``)."""
        self._errors.labels(service=service, code=str(code)).inc()

    @_never_raises
    def discord_answered(self, status: int) -> None:
        """Discord answered a request with HTTP ``status``; counts what went wrong."""
        if status == 429:
            self._discord_rate_limited.inc()
        if status >= 400:
            self.error("discord", status)

    # --- what stands -----------------------------------------------------------------

    def watch(self, storage: Storage, gates: AccountGates) -> None:
        """Report the jobs and spend ``storage`` holds and the state of ``gates``."""
        self._stored.storage = storage
        self._stored.gates = gates

    async def refresh(self) -> None:
        """Read the database's totals; called before each scrape."""
        storage = self._stored.storage
        if storage is None:
            return
        states = await jobs_by_state(storage.db)
        billed = await spend_billed_by_guild(storage.db)
        reserved = await spend_reserved_by_guild(storage.db)
        self._stored.states = states
        self._stored.update_spend(billed, reserved)

    def exposition(self) -> bytes:
        """Everything, in Prometheus' text format (as of the last ``refresh``)."""
        return generate_latest(self.registry)


class _StoredState:
    """A collector for what is read, not counted: jobs, spend, gates."""

    def __init__(self) -> None:
        self.storage: Storage | None = None
        self.gates: AccountGates | None = None
        self.states: dict[str, int] = {}
        self.billed: dict[int, float] = {}
        self.counted: dict[int, float] = {}

    def update_spend(self, billed: dict[int, float], reserved: dict[int, float]) -> None:
        """Take a fresh read; a server's series, once shown, stays (a counter never goes back).

        Billed spend in the database can fall: a clip is charged the estimate when Segmind
        accepts it, and Segmind's own figure, lower or higher, replaces it when the result
        comes (``services.reported_cost``); a float sum read in another order can also come
        out a hair lower. The counter keeps its highest value, which the next spend passes
        (a counter that fell would read as a restart to ``increase()``). The counted gauge
        is what the budgets count, so it takes the fresh read as it is.
        """
        for guild_id, dollars in billed.items():
            self.billed[guild_id] = max(dollars, self.billed.get(guild_id, 0.0))
        guilds = set(self.counted) | set(self.billed) | set(reserved)
        self.counted = {
            guild_id: billed.get(guild_id, 0.0) + reserved.get(guild_id, 0.0) for guild_id in guilds
        }

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        jobs, counted, billed, paused = families
        for state in JobState:
            jobs.add_metric([state.value], self.states.get(state.value, 0))
        for guild_id, dollars in sorted(self.counted.items()):
            counted.add_metric([str(guild_id)], dollars)
        for guild_id, dollars in sorted(self.billed.items()):
            billed.add_metric([str(guild_id)], dollars)
        if self.gates is not None:
            paused.add_metric(["credits"], 1.0 if self.gates.credits.paused else 0.0)
            paused.add_metric(["key"], 1.0 if self.gates.key.paused else 0.0)
        return families

    @staticmethod
    def _families() -> tuple[
        GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily, GaugeMetricFamily
    ]:
        return (
            GaugeMetricFamily("videobot_jobs", "Stored jobs by state.", labels=["state"]),
            GaugeMetricFamily(
                "videobot_spend_counted_usd",
                "Dollars the budgets count, by server (guild 0: bot.py generate): clips "
                "Segmind accepted plus ones reserved (queued, being sent, outcome unknown). "
                "Falls when a reservation is released (cancelled, surely refused).",
                labels=["guild"],
            ),
            CounterMetricFamily(
                "videobot_spend_billed_usd",
                "Dollars of every clip Segmind accepted, by server (guild 0: bot.py generate); "
                "never falls, so increase() is what was billed.",
                labels=["guild"],
            ),
            GaugeMetricFamily(
                "videobot_account_paused",
                "1 while new requests are refused because Segmind is out of credits (credits) "
                "or refused the key (key).",
                labels=["gate"],
            ),
        )
