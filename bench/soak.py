"""Chaos soak: the whole bot through many requests, faults and SIGKILLs. Prints figures.

    .venv/bin/python bench/soak.py [--requests 1000] [--seed S] [--members 30] [--rate 2]
    .venv/bin/python bench/soak.py --requests 100          # the quick mode, for CI

The real bot.py runs in a child process (tests/harness/run_bot.py) against the in-process
fake Discord, with the Segmind simulator in this process. Members send ``/video`` (public
and private), click Re-roll (sometimes twice at once) and Cancel, while Segmind misbehaves
(5xx, 429, slow, dropped and malformed answers), Discord misbehaves (5xx and 429 on writes,
an outage where every write answers 503) and the bot is SIGKILLed, at random moments and
at the worst ones: the instant Discord stored an acknowledgement or a clip, or Segmind
accepted a submit. Then a quiet period with no faults, until every request is settled.

Each request is judged as its member and the server owner would judge it, from what the
fake Discord and the simulator recorded: delivered (exactly one clip the member can see),
failed with a message the member saw, or lost. Every message and every line the bot logged
is searched for the bot token, the Segmind key and every interaction token. The exit code
is 0 only when every target is met: 0 lost, 0 submitted twice, 0 clips posted twice, 0
secrets shown.

One ``random.Random(seed)`` draws the whole schedule up front (requests, clicks, faults,
kills), so ``--seed`` replays it; how the two processes interleave still varies.

When a target is missed (or with ``--keep``) the working folder stays, printed at the end:
``details.txt`` (every verdict, the chaos timeline, the bot's log lines for each problem),
``discord-calls.txt`` (every REST call, tokens blanked), ``bot-N.log`` (each bot process),
``bot.db``. ``--no-faults`` and ``--no-kills`` narrow a replay down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.simulator import DEFAULT_VIDEO_PATH, SegmindSimulator, SimulatorConfig
from tests.fakediscord import (
    FakeChannel,
    FakeDiscord,
    FakeMember,
    FakeTimeout,
    FakeWorld,
    Fault,
    InteractionRecord,
    InvalidInteraction,
    RecordedCall,
    StoredMessage,
)
from tests.harness.env import fake_discord_env

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = DEFAULT_VIDEO_PATH.read_bytes()

# --- what the bot is told (time compressed) ------------------------------------------------

POLL_FLOOR_SECONDS = "0.5"  # services/settings.py: POLL_INTERVAL_SECONDS may go no lower
EXPECTED_FLOOR_SECONDS = "10"  # EXPECTED_CLIP_SECONDS' floor: the progress bar's estimate
MAX_CONCURRENT_JOBS = "20"
DEFAULT_LIMIT = "10000/1d"  # the most a limit may allow: no request is refused for it
BOT_START_TIMEOUT = 120.0  # a restart may first tell members of requests it lost

# --- how the run is shaped -----------------------------------------------------------------

PRIVATE_SHARE = 0.3
DOOMED_SHARE = 0.04  # prompts Segmind refuses ("[fail]"): a failure the member must see
CANCEL_SHARE = 0.08
REROLL_SHARE = 0.12
DOUBLE_CLICK_SHARE = 0.25  # of the Re-rolls: two clicks 50 ms apart, which make one job
SEGMIND_FAULT_EVERY = 1.8  # seconds of chaos per Segmind fault, on average
DISCORD_FAULT_EVERY = 2.5
OUTAGE_EVERY = 120.0
KILL_EVERY = 20.0
KILL_MIN_GAP = 8.0  # kills are planned at least this far apart (closer in a short run)
MIN_UPTIME = 3.0  # and each bot process lives at least this long before it is killed
WORST_MOMENT_WAIT = 15.0  # a kill waiting for its moment falls back to "now" after this
QUIET_SILENCE = 3.0  # settled, and Discord heard nothing from the bot for this long
FOLLOW_UP_PATIENCE = 60.0  # a member waits this long for their clip before giving up on Re-roll

# Titles and texts of the bot's messages (cogs/video/render.py, starter.py), as members read them.
FAILED = "This video could not be made"
CANCELLED = "Video cancelled"
POINTER = "You just asked for this same video"
LINK_MARK = "here is a link instead"

JOB_IN_FOOTER = re.compile(r"Job #(\d+)")
SEED_IN_FOOTER = re.compile(r"seed (\d+)")
JOB_IN_CUSTOM_ID = re.compile(r"^vjob:([a-z]+):(\d+)")
# Clips are named from their prompt with the job last (`a-cat-surfing-17.mp4`; before,
# `video-17.mp4`): the number after the last hyphen is the job.
JOB_IN_FILENAME = re.compile(r"^(?:[a-z0-9-]*-)?(\d+)\.mp4$")
TAG_IN_PROMPT = re.compile(r"\breq(\d+)\b")

WORDS = (
    "a red fox in the snow",
    "a paper boat on a river",
    "a lighthouse at dusk",
    "a cat surfing a wave",
    "a city of glass at night",
    "a slow train through fields",
    "a kite over the dunes",
    "a robot watering plants",
    "a whale under the ice",
    "a market in the rain",
)


# --- the schedule: everything random, drawn up front from one seed --------------------------


@dataclass(frozen=True)
class PlannedRequest:
    """One ``/video`` a member sends, and what they do after it."""

    index: int
    at: float  # seconds into the chaos phase
    member: int
    channel: int
    prompt: str
    seed: int
    steps: int
    private: bool
    cancel_after: float | None  # click Cancel this long after the acknowledgement
    reroll_after: float | None  # click Re-roll this long after the clip arrived
    double_click: bool

    @property
    def tag(self) -> str:
        return f"req{self.index:05d}"


@dataclass(frozen=True)
class SegmindFault:
    """A misbehaviour of the simulator's next ``times`` calls on one route."""

    at: float
    route: str  # submit | status | result | download
    action: str  # status | reset | slow | malformed | cut
    status: int = 0
    times: int = 1
    accept: bool = False  # a submit: the job is created (billed) before the misbehaviour
    seconds: float = 0.0

    def arm(self, simulator: SegmindSimulator) -> None:
        if self.action == "reset":
            simulator.reset_connection(self.route, times=self.times, accept=self.accept)
        elif self.action == "slow":
            simulator.slow(self.route, seconds=self.seconds, times=self.times)
        elif self.action == "cut":
            simulator.cut_download_short(keep_bytes=1000, times=self.times)
        elif self.action == "malformed":
            body = "<html><body>upstream hiccup</body></html>"
            simulator.inject(
                self.route, status=200, body=body, times=self.times, accept=self.accept
            )
        else:
            simulator.inject(
                self.route,
                status=self.status,
                body=_segmind_error_body(self.status),
                headers={"Retry-After": "1"} if self.status == 429 else None,
                times=self.times,
                accept=self.accept,
            )

    def describe(self) -> str:
        what = f"{self.status}" if self.action == "status" else self.action
        billed = " (job created first)" if self.accept else ""
        return f"Segmind {self.route} {what} x{self.times}{billed}"


def _segmind_error_body(status: int) -> str | dict[str, Any]:
    """Segmind's own JSON for 429/500; an HTML page for a proxy's 502/503/504."""
    if status in (502, 503, 504):
        return f"<html><body><h1>{status} Bad Gateway</h1></body></html>"
    return {"error": "Too many requests" if status == 429 else "Internal server error"}


@dataclass(frozen=True)
class DiscordFault:
    """A 5xx or 429 on the next ``times`` bot writes to one route."""

    at: float
    route: str
    status: int
    times: int
    after_apply: bool = False  # done by Discord, then answered with the error
    retry_after: float = 0.0

    def build(self) -> Fault:
        if self.status == 429:
            return Fault.rate_limited(self.route, retry_after=self.retry_after, times=self.times)
        return Fault.server_error(
            self.route, status=self.status, times=self.times, after_apply=self.after_apply
        )

    def describe(self) -> str:
        applied = " after applying" if self.after_apply else ""
        return f"Discord {self.route} {self.status}{applied} x{self.times}"


@dataclass(frozen=True)
class Outage:
    """Every write to Discord answers 503 for ``seconds``."""

    at: float
    seconds: float


@dataclass(frozen=True)
class Kill:
    """SIGKILL the bot, now (``random``) or at the next worst moment of a kind."""

    at: float
    moment: str  # random | after-ack | after-clip | after-submit
    pause: float  # how long the bot stays down before it is started again


@dataclass(frozen=True)
class Schedule:
    requests: list[PlannedRequest]
    segmind_faults: list[SegmindFault]
    discord_faults: list[DiscordFault]
    outages: list[Outage]
    kills: list[Kill]
    queue_seconds: float
    processing_seconds: float
    debug_incarnations: frozenset[int]  # which bot processes log at DEBUG

    @property
    def span(self) -> float:
        """How long the chaos phase lasts: until the last request is sent."""
        return (self.requests[-1].at if self.requests else 0.0) + 1.0


@dataclass(frozen=True)
class Options:
    requests: int
    seed: int
    members: int
    rate: float
    faults: bool
    kills: bool
    quiet_bound: float
    keep: bool


def plan(rng: random.Random, options: Options) -> Schedule:
    """The whole run, decided now: replaying a seed replays every choice below."""
    requests = plan_requests(rng, options)
    span = (requests[-1].at if requests else 0.0) + 1.0
    kills = plan_kills(rng, span) if options.kills else []
    return Schedule(
        requests=requests,
        segmind_faults=plan_segmind_faults(rng, span) if options.faults else [],
        discord_faults=plan_discord_faults(rng, span) if options.faults else [],
        outages=plan_outages(rng, span) if options.faults else [],
        kills=kills,
        queue_seconds=round(rng.uniform(0.05, 0.2), 3),
        processing_seconds=round(rng.uniform(0.1, 0.5), 3),
        # Half the processes (the first always) log at DEBUG, where libraries say the most.
        debug_incarnations=frozenset(
            {0} | {i for i in range(1, len(kills) + 1) if rng.random() < 0.5}
        ),
    )


def plan_requests(rng: random.Random, options: Options) -> list[PlannedRequest]:
    planned = []
    at = 0.5
    for index in range(options.requests):
        at += rng.expovariate(options.rate)
        doomed = rng.random() < DOOMED_SHARE
        words = rng.choice(WORDS) + (" [fail]" if doomed else "")
        cancel = rng.random() < CANCEL_SHARE
        reroll = not cancel and not doomed and rng.random() < REROLL_SHARE
        planned.append(
            PlannedRequest(
                index=index,
                at=round(at, 3),
                member=rng.randrange(options.members),
                channel=rng.randrange(2),
                prompt=f"req{index:05d} {words}",
                seed=rng.randrange(2**53),
                steps=rng.choice((25, 30, 45, 50)),
                private=rng.random() < PRIVATE_SHARE,
                cancel_after=round(rng.uniform(0.0, 2.5), 3) if cancel else None,
                reroll_after=round(rng.uniform(0.1, 1.5), 3) if reroll else None,
                double_click=reroll and rng.random() < DOUBLE_CLICK_SHARE,
            )
        )
    return planned


SEGMIND_MENU: dict[str, list[tuple[str, int, bool]]] = {
    # (action, status, accept): what each route may do wrong.
    "submit": [
        ("status", 429, False),  # surely not accepted: the bot waits and submits again
        ("slow", 0, False),
        ("status", 500, False),  # Segmind's own JSON 500: refused
        ("status", 503, False),  # a proxy's page: the bot cannot know, so never resends
        ("status", 502, True),  # the proxy failed after Segmind took (and billed) the job
        ("reset", 0, False),
        ("reset", 0, True),
        ("malformed", 0, True),
    ],
    "status": [
        ("status", 500, False),
        ("status", 503, False),
        ("status", 429, False),
        ("reset", 0, False),
        ("slow", 0, False),
        ("malformed", 0, False),
    ],
    "download": [("status", 503, False), ("reset", 0, False), ("cut", 0, False)],
}
SEGMIND_MENU["result"] = SEGMIND_MENU["status"]
SEGMIND_ROUTES = ("submit", "status", "result", "download")
SEGMIND_WEIGHTS = (25, 35, 25, 15)


def plan_segmind_faults(rng: random.Random, span: float) -> list[SegmindFault]:
    faults = []
    for _ in range(int(span / SEGMIND_FAULT_EVERY)):
        route = rng.choices(SEGMIND_ROUTES, SEGMIND_WEIGHTS)[0]
        action, status, accept = rng.choice(SEGMIND_MENU[route])
        faults.append(
            SegmindFault(
                at=round(rng.uniform(0, span), 3),
                route=route,
                action=action,
                status=status,
                times=1 if route in ("submit", "download") else rng.randint(1, 3),
                accept=accept,
                seconds=round(rng.uniform(0.5, 4.0), 2) if action == "slow" else 0.0,
            )
        )
    return sorted(faults, key=lambda f: f.at)


# The bot's writes: acknowledgements, followups and webhook edits (progress, private clips),
# channel messages (public clips, notices, failure lines) and their edits, DM channels.
DISCORD_WRITES = (
    "POST /interactions/*/*/callback",
    "POST /webhooks/*/*",
    "PATCH /webhooks/*/*/messages/*",
    "POST /channels/*/messages",
    "PATCH /channels/*/messages/*",
    "POST /users/@me/channels",
)
DISCORD_WEIGHTS = (15, 10, 20, 40, 10, 5)


def plan_discord_faults(rng: random.Random, span: float) -> list[DiscordFault]:
    faults = []
    for _ in range(int(span / DISCORD_FAULT_EVERY)):
        route = rng.choices(DISCORD_WRITES, DISCORD_WEIGHTS)[0]
        status = rng.choice((429, 429, 500, 502, 503, 504))
        faults.append(
            DiscordFault(
                at=round(rng.uniform(0, span), 3),
                route=route,
                status=status,
                times=rng.randint(1, 2),
                after_apply=status != 429 and rng.random() < 0.5,
                retry_after=round(rng.uniform(0.05, 1.0), 2) if status == 429 else 0.0,
            )
        )
    return sorted(faults, key=lambda f: f.at)


def plan_outages(rng: random.Random, span: float) -> list[Outage]:
    count = max(1, int(span / OUTAGE_EVERY))
    outages = [
        Outage(
            at=round(rng.uniform(0.2 * span, 0.8 * span), 3), seconds=round(rng.uniform(3, 8), 1)
        )
        for _ in range(count)
    ]
    return sorted(outages, key=lambda o: o.at)


def plan_kills(rng: random.Random, span: float) -> list[Kill]:
    """A random moment and each worst one (in random order), then a random mix of them."""
    moments = ["random", "after-ack", "after-clip", "after-submit"]
    rng.shuffle(moments)
    count = max(len(moments), int(span / KILL_EVERY))
    moments += [rng.choice(("random", *moments)) for _ in range(count - len(moments))]
    # While members are still sending: a short run gets its kills closer together.
    gap = min(KILL_MIN_GAP, span / (count + 1))
    times = sorted(rng.uniform(3.0, max(4.0, span - gap)) for _ in range(count))
    kills = []
    last = -gap
    for at, moment in zip(times, moments, strict=True):
        at = max(at, last + gap)
        last = at
        kills.append(Kill(at=round(at, 3), moment=moment, pause=round(rng.uniform(0.0, 1.5), 2)))
    return kills


# --- the bot process -----------------------------------------------------------------------


class BotProcess:
    """The real bot.py in a child process, started again on the same database after a kill."""

    def __init__(self, folder: Path, fake: FakeDiscord, env: dict[str, str]) -> None:
        self._folder = folder
        self._fake = fake
        self._env = env
        self._process: asyncio.subprocess.Process | None = None
        self._log: TextIO | None = None
        self.logs: list[Path] = []
        self.debug_logs: set[Path] = set()
        self.connected = asyncio.Event()  # an identified gateway session is live

    @property
    def incarnations(self) -> int:
        return len(self.logs)

    async def start(self, *, debug: bool) -> None:
        """Start a process; returns once it identified on the gateway (commands are synced)."""
        path = self._folder / f"bot-{self.incarnations}.log"
        self.logs.append(path)
        if debug:
            self.debug_logs.add(path)
        self._log = path.open("w")
        identified = len(self._fake.gateway.identify_payloads)
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.harness.run_bot",
            cwd=self._folder,
            env={**self._env, "LOG_LEVEL": "DEBUG" if debug else "INFO"},
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )
        process = self._process

        def up() -> bool:
            if process.returncode is not None:
                raise RuntimeError(f"the bot exited with {process.returncode}; see {path}")
            guild = self._fake.world.guild.id
            return len(self._fake.gateway.identify_payloads) > identified and bool(
                self._fake.commands(guild)
            )

        await self._fake.wait_until(up, timeout=BOT_START_TIMEOUT)
        self.connected.set()

    async def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed, the lock beside the database is freed."""
        assert self._process is not None
        self.connected.clear()
        self._process.send_signal(signal.SIGKILL)
        await self._process.wait()
        self._close_log()

    async def stop(self) -> int:
        """SIGTERM, as an operator stops it; returns the exit code (0 when it stopped cleanly)."""
        assert self._process is not None
        self.connected.clear()
        self._process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self._process.wait(), 20)
        except TimeoutError:
            self._process.send_signal(signal.SIGKILL)
            code = await self._process.wait()
        self._close_log()
        return code

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def bot_environment(
    folder: Path, fake: FakeDiscord, simulator: SegmindSimulator, key: str
) -> dict[str, str]:
    """An operator's .env, time compressed; nothing inherited that the bot would read."""
    inherited = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    return {
        **inherited,
        **fake_discord_env(folder, fake),
        "PYTHONUNBUFFERED": "1",
        "SEGMIND_API_KEY": key,
        "SEGMIND_BASE_URL": simulator.base_url,
        "DISCORD_GUILD_ID": str(fake.world.guild.id),
        "POLL_INTERVAL_SECONDS": POLL_FLOOR_SECONDS,
        "EXPECTED_CLIP_SECONDS": EXPECTED_FLOOR_SECONDS,
        "MAX_CONCURRENT_JOBS": MAX_CONCURRENT_JOBS,
        "DEFAULT_LIMIT": DEFAULT_LIMIT,
    }


# --- the members ---------------------------------------------------------------------------


@dataclass
class Ask:
    """One thing a member asked for: a ``/video``, or a Re-roll (one click, or a double click)."""

    key: str
    planned: PlannedRequest
    member: FakeMember
    reroll: bool
    records: list[InteractionRecord] = field(default_factory=list)


@dataclass
class Story:
    """A request's life as its member lives it: the command, then maybe Cancel or Re-roll."""

    planned: PlannedRequest
    member: FakeMember
    channel: FakeChannel
    video: Ask
    reroll: Ask | None = None
    cancel: InteractionRecord | None = None
    note: str = ""  # a follow-up the member could not do, and why
    waiting_for_clip: bool = False  # only waiting to Re-roll a clip that may never come

    def asks(self) -> Iterator[Ask]:
        yield self.video
        if self.reroll is not None:
            yield self.reroll


# --- the run -------------------------------------------------------------------------------


@dataclass
class Timeline:
    """What the chaos did and when (seconds since the start), for the report and diagnosis."""

    started: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.started

    def add(self, text: str) -> None:
        self.events.append((self.now(), text))


class Soak:
    """Owns the fake Discord, the simulator and the bot process for one run."""

    def __init__(
        self, options: Options, schedule: Schedule, folder: Path, secrets: tuple[str, str]
    ) -> None:
        self.options = options
        self.schedule = schedule
        self.folder = folder
        self.world = build_world(options.members, bot_token=secrets[0])
        self.key = secrets[1]
        self.fake = FakeDiscord(self.world)
        self.simulator = SegmindSimulator(
            SimulatorConfig(
                queue_seconds=schedule.queue_seconds,
                processing_seconds=schedule.processing_seconds,
                api_key=self.key,
            )
        )
        self.members = [m for m in self.world.guild.members if m.user.username.startswith("member")]
        self.channels = self.world.guild.channels[:2]
        self.stories: list[Story] = []
        self.timeline = Timeline()
        self.injected: list[tuple[DiscordFault | str, Fault]] = []
        self.bot: BotProcess | None = None
        self.chaos_seconds = 0.0
        self.quiet_seconds = 0.0
        self.settled = False
        self.exit_code: int | None = None
        self._followups: list[asyncio.Task[None]] = []
        self.kill_times: list[float] = []
        self.kills: Counter[str] = Counter()  # by moment, as it came
        self.restarts: list[float] = []  # seconds from starting a process to its gateway session

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        await self.fake.start()
        await self.simulator.start("127.0.0.1", 0)
        env = bot_environment(self.folder, self.fake, self.simulator, self.key)
        self.bot = BotProcess(self.folder, self.fake, env)
        try:
            await self.bot.start(debug=0 in self.schedule.debug_incarnations)
            self.timeline = Timeline()
            await self._chaos()
            await self._quiet()
        finally:
            if self.bot.connected.is_set():
                self.exit_code = await self.bot.stop()
            await self.simulator.stop()
            await self.fake.stop()

    async def _chaos(self) -> None:
        self.stories = [self._story(planned) for planned in self.schedule.requests]
        self._followups = [asyncio.create_task(self._live(story)) for story in self.stories]
        chaos = [
            asyncio.create_task(self._segmind_faults()),
            asyncio.create_task(self._discord_faults()),
            asyncio.create_task(self._outages()),
            asyncio.create_task(self._kills()),
        ]
        await asyncio.sleep(self.schedule.span)
        await asyncio.gather(*chaos)
        self._disarm()
        self.chaos_seconds = self.timeline.now()
        self.timeline.add("quiet: no more faults or kills")

    async def _quiet(self) -> None:
        """No faults until every request is settled and Discord has been silent a moment."""
        deadline = time.monotonic() + self.options.quiet_bound
        started = time.monotonic()
        while time.monotonic() < deadline:
            silent = self.timeline.now() - self._last_call_at()
            if silent >= QUIET_SILENCE and all_settled(judge(self)):
                # A member still waiting for a clip to Re-roll waits in vain: their ask
                # ended without one.
                self.settled = all(
                    task.done() or story.waiting_for_clip
                    for task, story in zip(self._followups, self.stories, strict=True)
                )
                if self.settled:
                    break
            await asyncio.sleep(0.5)
        for task in self._followups:
            task.cancel()
        await asyncio.gather(*self._followups, return_exceptions=True)
        self.quiet_seconds = time.monotonic() - started

    def _last_call_at(self) -> float:
        calls = self.fake.calls
        if not calls:
            return 0.0
        # The fake's clock is the real monotonic clock (never advanced here).
        return calls[-1].at - (self.timeline.started)

    async def _at(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - self.timeline.now()))

    # --- members ------------------------------------------------------------------------

    def _story(self, planned: PlannedRequest) -> Story:
        member = self.members[planned.member]
        video = Ask(planned.tag, planned, member, reroll=False)
        return Story(planned, member, self.channels[planned.channel], video)

    async def _live(self, story: Story) -> None:
        planned, member = story.planned, story.member
        await self._at(planned.at)
        options: dict[str, Any] = {
            "prompt": planned.prompt,
            "seed": planned.seed,
            "steps": planned.steps,
        }
        if planned.private:
            options["private"] = True
        record = await self._dispatch(
            lambda: self.fake.dispatch_slash_command(
                "video", options, user=member, channel=story.channel
            )
        )
        story.video.records.append(record)
        with contextlib.suppress(FakeTimeout):
            await self.fake.wait_until(lambda: record.acknowledged, timeout=3.5)
        if planned.cancel_after is not None:
            await asyncio.sleep(planned.cancel_after)
            await self._click_cancel(story)
        if planned.reroll_after is not None:
            await self._click_reroll(story)

    async def _dispatch(self, send: Callable[[], Any]) -> InteractionRecord:
        """Send once the bot is connected: while it is down, members simply wait."""
        assert self.bot is not None
        while True:
            await self.bot.connected.wait()
            try:
                record: InteractionRecord = await send()
            except RuntimeError:  # the connection went away between the check and the send
                await asyncio.sleep(0.05)
                continue
            return record

    async def _click_cancel(self, story: Story) -> None:
        found = find_button(self.fake, story.video, "cancel")
        if found is None:
            story.note = "no Cancel button to click (already over, or never shown)"
            return
        message, custom_id = found
        try:
            story.cancel = await self._dispatch(
                lambda: self.fake.dispatch_component(message, custom_id, user=story.member)
            )
        except InvalidInteraction as why:
            story.note = f"Cancel could not be clicked: {why}"

    async def _click_reroll(self, story: Story) -> None:
        """Once the clip is there, Re-roll it (twice at once for a double click)."""
        assert story.planned.reroll_after is not None
        story.waiting_for_clip = True
        story.note = "no clip to Re-roll"
        try:
            message, custom_id = await self.fake.wait_until(
                lambda: find_button(self.fake, story.video, "reroll"), timeout=FOLLOW_UP_PATIENCE
            )
        except FakeTimeout:
            return
        finally:
            story.waiting_for_clip = False
        story.note = ""
        await asyncio.sleep(story.planned.reroll_after)
        story.reroll = Ask(f"{story.planned.tag} re-roll", story.planned, story.member, reroll=True)
        clicks = 2 if story.planned.double_click else 1
        for click in range(clicks):
            if click:
                await asyncio.sleep(0.05)
            try:
                record = await self._dispatch(
                    lambda: self.fake.dispatch_component(message, custom_id, user=story.member)
                )
            except InvalidInteraction as why:
                story.note = f"Re-roll could not be clicked: {why}"
                continue
            story.reroll.records.append(record)

    # --- chaos --------------------------------------------------------------------------

    async def _segmind_faults(self) -> None:
        for fault in self.schedule.segmind_faults:
            await self._at(fault.at)
            fault.arm(self.simulator)
            self.timeline.add(fault.describe())

    async def _discord_faults(self) -> None:
        for planned in self.schedule.discord_faults:
            await self._at(planned.at)
            self.injected.append((planned, self.fake.inject(planned.build())))
            self.timeline.add(planned.describe())

    async def _outages(self) -> None:
        for outage in self.schedule.outages:
            await self._at(outage.at)
            faults = [
                self.fake.inject(Fault.server_error(f"{method} /**", status=503, times=None))
                for method in ("POST", "PATCH", "DELETE", "PUT")
            ]
            self.injected += [("outage", fault) for fault in faults]
            self.timeline.add(f"Discord outage begins: every write answers 503 ({outage.seconds}s)")
            await asyncio.sleep(outage.seconds)
            for fault in faults:
                fault.times = fault.hits  # served as often as it will be: the outage ends
            self.timeline.add("Discord outage ends")

    async def _kills(self) -> None:
        assert self.bot is not None
        up_since = self.timeline.now()
        for number, kill in enumerate(self.schedule.kills, start=1):
            # Each process lives a little: the members who waited while it was down are
            # answered before the next kill, and a restart stalled by recovery still counts.
            await self._at(max(kill.at, up_since + MIN_UPTIME))
            caught = await self._worst_moment(kill.moment)
            self.kill_times.append(self.timeline.now())
            await self.bot.kill()
            label = kill.moment if caught else f"{kill.moment} (none came: killed anyway)"
            self.kills[label] += 1
            self.timeline.add(f"SIGKILL {label}")
            await asyncio.sleep(kill.pause)
            restarted = time.monotonic()
            await self.bot.start(debug=number in self.schedule.debug_incarnations)
            self.restarts.append(time.monotonic() - restarted)
            self.timeline.add(f"bot process {number + 1} connected")
            up_since = self.timeline.now()

    async def _worst_moment(self, moment: str) -> bool:
        """Wait for the moment (True), or give up after a while (False). ``random`` is now."""
        if moment == "random":
            return True
        if moment == "after-submit":
            return await self._next_submit()
        seen = len(self.fake.calls)
        wanted = acknowledgement if moment == "after-ack" else clip_upload

        def arrived() -> bool:
            nonlocal seen
            calls = self.fake.calls
            fresh, seen = calls[seen:], len(calls)
            return any(wanted(call) for call in fresh)

        try:
            await self.fake.wait_until(arrived, timeout=WORST_MOMENT_WAIT)
        except FakeTimeout:
            return False
        return True

    async def _next_submit(self) -> bool:
        """The simulator has no change notifier: look every millisecond, briefly."""
        before = len(self.simulator.submits)
        deadline = time.monotonic() + WORST_MOMENT_WAIT
        while len(self.simulator.submits) == before:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.001)
        return True

    def _disarm(self) -> None:
        """The quiet period has no faults: what was armed and not yet served is dropped."""
        for _, fault in self.injected:
            fault.times = fault.hits
        # The simulator offers no public way to drop armed misbehaviours.
        for queue in self.simulator._overrides.values():
            queue.clear()


def acknowledgement(call: RecordedCall) -> bool:
    return call.ok and call.method == "POST" and call.path.endswith("/callback")


def clip_upload(call: RecordedCall) -> bool:
    return call.ok and any(f.filename.endswith(".mp4") for f in call.files)


def build_world(members: int, *, bot_token: str) -> FakeWorld:
    """The default guild plus a second channel and the soak's members."""
    world = FakeWorld.default()
    world.token = bot_token
    world.guild.add_text_channel("studio")
    for number in range(members):
        world.guild.add_member(f"member{number:03d}")
    return world


def find_button(fake: FakeDiscord, ask: Ask, action: str) -> tuple[StoredMessage, str] | None:
    """A button of the ask's job the member can see and click: on the progress message
    (Cancel; a private clip replaces it, Re-roll included) or on the public clip (Re-roll)."""
    jobs = ask_jobs(fake, ask)
    for message in reversed(list(fake.store.messages.values())):
        if message.deleted or not message.visible_for(ask.member.id):
            continue
        for custom_id in message.custom_ids():
            match = JOB_IN_CUSTOM_ID.match(custom_id)
            if match and match[1] == action and int(match[2]) in jobs:
                return message, custom_id
    return None


def ask_jobs(fake: FakeDiscord, ask: Ask) -> set[int]:
    """The jobs the bot started for an ask, as its own answers name them."""
    jobs: set[int] = set()
    for record in ask.records:
        for message_id in (record.original_message_id, *record.followup_ids):
            message = fake.store.message(message_id) if message_id else None
            if message is not None:
                jobs |= jobs_named(message)
    return jobs


def jobs_named(message: StoredMessage) -> set[int]:
    """Job ids a message names: its embed footer, its buttons, its clip's file name."""
    jobs = {int(m[1]) for e in message.embeds for m in [JOB_IN_FOOTER.search(_footer(e))] if m}
    for custom_id in message.custom_ids():
        match = JOB_IN_CUSTOM_ID.match(custom_id)
        if match:
            jobs.add(int(match[2]))
    for attachment in message.attachments:
        match = JOB_IN_FILENAME.match(attachment.filename)
        if match:
            jobs.add(int(match[1]))
    return jobs


def _job_in_filename(filename: str) -> int | None:
    match = JOB_IN_FILENAME.match(filename)
    return int(match[1]) if match else None


def _footer(embed: dict[str, Any]) -> str:
    return str((embed.get("footer") or {}).get("text") or "")


# --- judging -------------------------------------------------------------------------------


@dataclass
class JobTrace:
    """Everything Discord shows of one job: which request it is, its messages."""

    job: int
    tag: int | None = None  # the request's index, from the prompt on its embeds
    seed: int | None = None
    messages: list[StoredMessage] = field(default_factory=list)


@dataclass
class Verdict:
    """How one ask ended, as its member and the server owner see it."""

    key: str
    member: str
    private: bool
    reroll: bool
    outcome: str  # delivered | failed | lost
    how: str  # the route of the clip, or why it failed
    clips: int
    submits: int
    jobs: list[int]
    corrupt: int = 0  # clips whose bytes are not the clip Segmind made
    pinged: bool = True  # a clip posted as a new channel message pinged its member


def trace_jobs(fake: FakeDiscord) -> dict[int, JobTrace]:
    traces: dict[int, JobTrace] = {}
    for message in fake.store.messages.values():
        if message.deleted:
            continue
        for job in jobs_named(message):
            trace = traces.setdefault(job, JobTrace(job))
            trace.messages.append(message)
            for embed in message.embeds:
                tag = TAG_IN_PROMPT.search(str(embed.get("description") or ""))
                seed = SEED_IN_FOOTER.search(_footer(embed))
                if tag and seed:
                    trace.tag, trace.seed = int(tag[1]), int(seed[1])
    return traces


class Judge:
    """Reads the fake's and the simulator's records; never the bot's database."""

    def __init__(self, soak: Soak) -> None:
        self.soak = soak
        self.fake = soak.fake
        self.traces = trace_jobs(soak.fake)
        self.submits: Counter[tuple[int, int]] = Counter()
        self.stray_submits = 0
        for payload in soak.simulator.submits:
            tag = TAG_IN_PROMPT.search(str(payload.get("prompt", "")))
            if tag is None:
                self.stray_submits += 1
            else:
                self.submits[(int(tag[1]), int(payload.get("seed", -1)))] += 1
        self.now = self.fake.clock.monotonic()
        self.callbacks: dict[int, list[RecordedCall]] = {}
        for call in self.fake.calls:
            if call.path.startswith("/interactions/") and call.path.endswith("/callback"):
                self.callbacks.setdefault(int(call.path.split("/")[2]), []).append(call)

    def verdicts(self) -> list[Verdict]:
        return [self.judge(story, ask) for story in self.soak.stories for ask in story.asks()]

    def jobs_of(self, ask: Ask) -> list[JobTrace]:
        """The ask's jobs: named by its own answers, or found by its prompt and seed."""
        planned = ask.planned
        named = ask_jobs(self.fake, ask)
        found = []
        for trace in self.traces.values():
            by_prompt = trace.tag == planned.index and (trace.seed == planned.seed) != ask.reroll
            if by_prompt or trace.job in named:
                found.append(trace)
        return found

    def submits_of(self, ask: Ask) -> int:
        planned = ask.planned
        return sum(
            n
            for (index, seed), n in self.submits.items()
            if index == planned.index and (seed == planned.seed) != ask.reroll
        )

    def judge(self, story: Story, ask: Ask) -> Verdict:
        traces = self.jobs_of(ask)
        seen = [m for t in traces for m in t.messages if self.visible(m, ask.member.id)]
        clips = clip_messages(traces, seen)
        verdict = Verdict(
            key=ask.key,
            member=ask.member.user.username,
            private=ask.planned.private,
            reroll=ask.reroll,
            outcome="lost",
            how="nothing shown",
            clips=len(clips),
            submits=self.submits_of(ask),
            jobs=sorted(t.job for t in traces),
            corrupt=sum(1 for m, _ in clips if not clip_intact(m)),
            pinged=all(ask.member.id in m.pinged_user_ids for m, how in clips if how == "channel"),
        )
        if clips:
            verdict.outcome, verdict.how = "delivered", clips[0][1]
            return verdict
        reason = self.failure_shown(ask, seen)
        if reason is not None:
            verdict.outcome, verdict.how = "failed", reason
        else:
            verdict.how = self.last_shown(ask, seen)
        return verdict

    def visible(self, message: StoredMessage, member_id: int) -> bool:
        """The member sees it: in a channel (theirs if ephemeral), or in their own DMs."""
        recipient = self.fake.store.dm_recipients.get(message.channel_id)
        if recipient is not None:
            return recipient == member_id and not message.deleted
        return message.visible_for(member_id)

    def failure_shown(self, ask: Ask, seen: list[StoredMessage]) -> str | None:
        """Why the member knows it failed, or None: a failure card, a reply, Discord's error."""
        for message in seen:
            for embed in message.embeds:
                if embed.get("title") == CANCELLED:
                    return "cancelled"
                if embed.get("title") == FAILED:
                    return "failure card: " + why_field(embed)
        for record in ask.records:
            for text in replies(self.fake, record):
                if POINTER not in text:
                    return f"reply: {text[:60]}"
        if ask.records and all(r.missed_acknowledgement(self.now) for r in ask.records):
            return "not answered: " + self.unanswered_because(ask.records[-1])
        return None

    def unanswered_because(self, record: InteractionRecord) -> str:
        """Why Discord told the member "The application did not respond"."""
        answers = self.callbacks.get(record.id, [])
        injected = [c for c in answers if c.status >= 500 or c.status == 429]
        if injected:
            return "Discord failed the bot's answer"
        created = record.created_at - self.soak.timeline.started
        if any(created - 1.0 <= at <= created + 3.0 for at in self.soak.kill_times):
            return "the bot was killed"
        if answers:
            return "the bot answered after 3 s"
        return "no answer within 3 s"

    def last_shown(self, ask: Ask, seen: list[StoredMessage]) -> str:
        """What a lost request still shows the member, for the report."""
        if not ask.records:
            return "never sent"
        if not seen:
            acked = any(r.acknowledged for r in ask.records)
            return "acknowledged, then nothing" if acked else "not acknowledged yet"
        message = seen[-1]
        title = message.embeds[0].get("title") if message.embeds else None
        status = progress_field(message)
        return f"{title or message.content[:40]!r} {status}".strip()


def clip_messages(
    traces: list[JobTrace], seen: list[StoredMessage]
) -> list[tuple[StoredMessage, str]]:
    """The messages that give the member the clip, with their route; each message once."""
    jobs = {t.job for t in traces}
    found: dict[int, tuple[StoredMessage, str]] = {}
    for message in seen:
        route = clip_route(message, jobs)
        if route is not None:
            found[message.id] = (message, route)
    return list(found.values())


def clip_route(message: StoredMessage, jobs: set[int]) -> str | None:
    if any(_job_in_filename(a.filename) in jobs for a in message.attachments):
        if message.guild_id is None:
            return "DM"
        return "private message" if message.ephemeral else "channel"
    if LINK_MARK in message.content:
        return "expiring link"
    if any(c.startswith(f"vjob:open:{job}:") for c in message.custom_ids() for job in jobs):
        return "notice"
    return None


def clip_intact(message: StoredMessage) -> bool:
    return all(a.data == SAMPLE for a in message.attachments if a.filename.endswith(".mp4"))


def why_field(embed: dict[str, Any]) -> str:
    for item in embed.get("fields") or []:
        if item.get("name") == "Why":
            return str(item.get("value"))[:70]
    return ""


def progress_field(message: StoredMessage) -> str:
    for embed in message.embeds:
        for item in embed.get("fields") or []:
            if item.get("name") == "Progress":
                return str(item.get("value")).split("\n")[0]
    return ""


def replies(fake: FakeDiscord, record: InteractionRecord) -> Iterator[str]:
    """Plain-text answers to an interaction (no job card): refusals, errors, pointers."""
    for message_id in (record.original_message_id, *record.followup_ids):
        message = fake.store.message(message_id) if message_id else None
        if message is not None and not message.loading and not message.embeds and message.content:
            yield message.content


def judge(soak: Soak) -> list[Verdict]:
    return Judge(soak).verdicts()


def all_settled(verdicts: Iterable[Verdict]) -> bool:
    return all(v.outcome != "lost" for v in verdicts)


# --- secrets ---------------------------------------------------------------------------------

WINDOW = 20  # characters of a secret that, found anywhere, count as showing it
CANDIDATE = re.compile(rf"[A-Za-z0-9_\-.=]{{{WINDOW},}}")


class SecretScan:
    """Finds any 20-character piece of a secret in a text, quickly, for many secrets at once.

    Interaction tokens all begin with base64 of "interaction:<id>:", which is not secret
    (and which the bot's own log filter looks for); only their random part is searched.
    """

    def __init__(self, secrets: dict[str, Iterable[str]]) -> None:
        self._pieces: dict[str, str] = {}
        for kind, values in secrets.items():
            for value in values:
                start = 44 if kind == "interaction token" else 0
                for offset in range(start, len(value) - WINDOW + 1):
                    self._pieces[value[offset : offset + WINDOW]] = kind

    def kinds_in(self, text: str) -> set[str]:
        found = set()
        for run in CANDIDATE.findall(text):
            for offset in range(len(run) - WINDOW + 1):
                kind = self._pieces.get(run[offset : offset + WINDOW])
                if kind is not None:
                    found.add(kind)
        return found


@dataclass
class SecretFindings:
    messages_scanned: int = 0
    log_lines_scanned: int = 0
    debug_lines: int = 0
    redacted_lines: int = 0  # lines where the bot's own filter blanked something
    found: list[str] = field(default_factory=list)


def scan_for_secrets(soak: Soak) -> SecretFindings:
    tokens = [r.token for r in soak.fake.store.interactions.values()]
    scan = SecretScan(
        {
            "bot token": [soak.world.token],
            "Segmind key": [soak.key],
            "interaction token": tokens,
        }
    )
    findings = SecretFindings()
    for message in soak.fake.store.messages.values():
        findings.messages_scanned += 1
        for kind in sorted(scan.kinds_in(message_text(message))):
            findings.found.append(f"message {message.id} in channel {message.channel_id}: {kind}")
    assert soak.bot is not None
    for path in soak.bot.logs:
        debug = path in soak.bot.debug_logs
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            findings.log_lines_scanned += 1
            findings.debug_lines += debug
            findings.redacted_lines += "[redacted]" in line
            for kind in sorted(scan.kinds_in(line)):
                findings.found.append(f"{path.name}:{number}: {kind}")
    return findings


def message_text(message: StoredMessage) -> str:
    """Everything a member can read of a message, every version of it."""
    parts = [message.content, json.dumps(message.embeds), json.dumps(message.components)]
    parts += [f"{a.filename} {a.description or ''}" for a in message.attachments]
    for revision in message.revisions:
        parts += [revision.content, json.dumps(revision.embeds)]
    return "\n".join(parts)


# --- report ----------------------------------------------------------------------------------


def report(soak: Soak, verdicts: list[Verdict], secrets: SecretFindings, elapsed: float) -> bool:
    """Print the figures and the targets; True when every target is met."""
    options = soak.options
    outcomes = Counter(v.outcome for v in verdicts)
    print(f"seed {options.seed} (replay with --seed {options.seed}: the same requests, clicks,")
    print("  faults and kills; how the two processes interleave still varies run to run)")
    _print_workload(soak, verdicts)
    _print_chaos(soak)
    print(
        f"outcomes: {outcomes['delivered']} delivered, {outcomes['failed']} failed with a "
        f"message the member saw, {outcomes['lost']} lost"
    )
    _print_breakdown("  delivered by", [v.how for v in verdicts if v.outcome == "delivered"])
    _print_breakdown(
        "  failed because", [_reason(v.how) for v in verdicts if v.outcome == "failed"]
    )
    unpinged = sum(1 for v in verdicts if not v.pinged)
    print(f"  {unpinged} clips posted in a channel without pinging their member")
    _print_billing(soak, verdicts)
    _print_cross_check(soak, verdicts)
    print(
        f"secrets: {secrets.messages_scanned} messages and {secrets.log_lines_scanned} log lines "
        f"scanned ({secrets.debug_lines} at DEBUG, {secrets.redacted_lines} blanked by the bot's "
        "own filter)"
    )
    print(
        f"time: chaos {soak.chaos_seconds:.0f}s, quiet {soak.quiet_seconds:.0f}s "
        f"(bound {options.quiet_bound:.0f}s, settled: {'yes' if soak.settled else 'NO'}), "
        f"total {elapsed:.0f}s; the last bot process exited with {soak.exit_code}"
    )
    print(
        "not reached in a compressed run: Discord's 15-minute interaction tokens and Segmind's "
        "one-hour retention (the 3-second acknowledgement window is real time)"
    )
    _print_problems(verdicts, secrets)
    met = _print_targets(verdicts, secrets)
    if soak.fake.internal_errors:
        print(
            f"FAIL: the fake Discord failed {len(soak.fake.internal_errors)} times (a harness bug)"
        )
    if not soak.settled:
        print(f"FAIL: not settled within {options.quiet_bound:.0f}s of quiet")
    return met and soak.settled and not soak.fake.internal_errors


def _print_billing(soak: Soak, verdicts: list[Verdict]) -> None:
    submitted = sum(v.submits for v in verdicts)
    billed_undelivered = [v for v in verdicts if v.submits and v.outcome != "delivered"]
    reasons = Counter(_reason(v.how) for v in billed_undelivered)
    print(
        f"billing: {submitted} accepted submits for {len(verdicts)} asks "
        f"({soak.simulator.submit_attempts} attempts), {Judge(soak).stray_submits} matching "
        f"no request; billed but not delivered {len(billed_undelivered)}, each told why:"
    )
    for reason, count in reasons.most_common():
        print(f"    {count:4} {reason}")


def _print_cross_check(soak: Soak, verdicts: list[Verdict]) -> None:
    """The bot's own records beside what members see: a disagreement is a lost clip or a
    job left behind."""
    states = bot_job_states(soak.folder / "bot.db")
    thinks_delivered = [
        v.key
        for v in verdicts
        if v.outcome != "delivered" and any(states.get(j) == "delivered" for j in v.jobs)
    ]
    unfinished = sorted(j for j, state in states.items() if state not in TERMINAL_STATES)
    print(
        f"the bot's database: {len(states)} jobs, {len(unfinished)} unfinished "
        f"{unfinished[:10] or ''}; {len(thinks_delivered)} marked delivered that no member "
        f"sees {thinks_delivered[:10] or ''}"
    )


TERMINAL_STATES = frozenset({"delivered", "failed", "cancelled", "expired", "unknown"})


def bot_job_states(database: Path) -> dict[int, str]:
    """Job id -> state, read after the bot stopped (a cross-check, never the verdict)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT id, state FROM jobs").fetchall())


def _print_workload(soak: Soak, verdicts: list[Verdict]) -> None:
    schedule = soak.schedule
    rerolls = [s for s in soak.stories if s.reroll is not None]
    doubles = sum(1 for s in rerolls if s.reroll and len(s.reroll.records) > 1)
    cancels = sum(1 for s in soak.stories if s.cancel is not None)
    private = sum(1 for p in schedule.requests if p.private)
    print(
        f"workload: {len(schedule.requests)} /video ({private} private), {len(rerolls)} Re-rolls "
        f"({doubles} double clicks), {cancels} Cancel clicks, from {soak.options.members} members "
        f"in 2 channels; {len(verdicts)} asks judged"
    )
    print(
        f"time compressed: Segmind queue {schedule.queue_seconds}s + processing "
        f"{schedule.processing_seconds}s; POLL_INTERVAL_SECONDS={POLL_FLOOR_SECONDS} (its floor), "
        f"MAX_CONCURRENT_JOBS={MAX_CONCURRENT_JOBS}, DEFAULT_LIMIT={DEFAULT_LIMIT}"
    )


def _print_chaos(soak: Soak) -> None:
    schedule = soak.schedule
    assert soak.bot is not None
    routes = Counter(f.route for f in schedule.segmind_faults)
    discord_hits = sum(fault.hits for _, fault in soak.injected)
    uploads_hit = sum(
        1 for c in soak.fake.calls if c.status >= 400 and any(f.filename for f in c.files)
    )
    print(
        f"Segmind faults: {len(schedule.segmind_faults)} "
        f"({', '.join(f'{r} {n}' for r, n in sorted(routes.items())) or 'none'})"
    )
    print(
        f"Discord faults: {len(schedule.discord_faults)} armed, outages "
        f"{', '.join(f'{o.seconds}s' for o in schedule.outages) or 'none'}; {discord_hits} "
        f"requests answered with an injected error ({uploads_hit} of them clip uploads)"
    )
    kills = ", ".join(f"{moment} {n}" for moment, n in sorted(soak.kills.items()))
    restarts = sorted(soak.restarts)
    slowest = f"; restarts took {restarts[len(restarts) // 2]:.1f}s (median) to {restarts[-1]:.1f}s"
    print(
        f"kills: {sum(soak.kills.values())} SIGKILLs ({kills or 'none'}); "
        f"{soak.bot.incarnations} bot processes{slowest if restarts else ''}"
    )


def _reason(how: str) -> str:
    """A failure's kind, without the details that make every line unique."""
    return how.split(":")[0] if how.startswith("reply") else how[:60]


def _print_breakdown(title: str, items: list[str]) -> None:
    if items:
        parts = ", ".join(f"{what} {n}" for what, n in Counter(items).most_common())
        print(f"{title}: {parts}")


def _print_problems(verdicts: list[Verdict], secrets: SecretFindings) -> None:
    problems = [v for v in verdicts if v.outcome == "lost" or v.clips > 1 or v.submits > 1]
    for verdict in problems[:20]:
        kind = "private" if verdict.private else "public"
        print(
            f"  PROBLEM {verdict.key} ({verdict.member}, {kind}, jobs {verdict.jobs}): "
            f"{verdict.outcome}, {verdict.clips} clips, {verdict.submits} submits; "
            f"shows {verdict.how}"
        )
    for finding in secrets.found[:20]:
        print(f"  SECRET {finding}")
    corrupt = sum(v.corrupt for v in verdicts)
    if corrupt:
        print(f"  {corrupt} clips do not hold the bytes Segmind served")


def _print_targets(verdicts: list[Verdict], secrets: SecretFindings) -> bool:
    figures = [
        ("lost requests", sum(1 for v in verdicts if v.outcome == "lost")),
        ("requests submitted twice", sum(1 for v in verdicts if v.submits > 1)),
        ("clips posted twice", sum(1 for v in verdicts if v.clips > 1)),
        ("secrets in a message or log line", len(secrets.found)),
    ]
    print("targets:")
    for name, value in figures:
        print(f"  {name:<34} {value:>5}   target 0   {'ok' if value == 0 else 'MISSED'}")
    slow = sum(1 for v in verdicts if v.how.endswith(("no answer within 3 s", "after 3 s")))
    print(f"  (also watched: {slow} requests not answered in 3 s with no fault or kill to blame)")
    met = all(value == 0 for _, value in figures)
    print("every target met" if met else "FAIL: a target was missed")
    return met


def write_details(soak: Soak, verdicts: list[Verdict], path: Path) -> None:
    """Every verdict, every chaos event, and the bot's log lines for each problem: for diagnosis."""
    notes = {s.planned.tag: s.note for s in soak.stories if s.note}
    with path.open("w") as out:
        for verdict in verdicts:
            note = notes.get(verdict.key, "") if not verdict.reroll else ""
            print(
                f"{verdict.key:<18} {verdict.member} {'private' if verdict.private else 'public '} "
                f"{verdict.outcome:<9} clips={verdict.clips} submits={verdict.submits} "
                f"jobs={verdict.jobs} {verdict.how}" + (f" [{note}]" if note else ""),
                file=out,
            )
        print("\ntimeline:", file=out)
        for at, text in soak.timeline.events:
            print(f"{at:8.2f}s {text}", file=out)
        assert soak.bot is not None
        for verdict in verdicts:
            if verdict.outcome == "lost" or verdict.clips > 1 or verdict.submits > 1:
                print(f"\n{verdict.key}: the bot's log", file=out)
                for line in log_lines_of(soak.bot.logs, verdict.jobs):
                    print(line[:300], file=out)


def write_calls(soak: Soak, path: Path) -> None:
    """Every REST call the bot made to Discord, tokens blanked: when, what, and the answer."""
    started = soak.timeline.started
    with path.open("w") as out:
        for call in soak.fake.calls:
            shown = TOKEN_IN_PATH.sub(r"\1<token>", call.path)
            files = f" files={[f.filename for f in call.files]}" if call.files else ""
            code = f" code={call.error_code}" if call.error_code else ""
            print(
                f"{call.at - started:8.3f}s #{call.seq} {call.method} {shown} -> {call.status}"
                f"{code}{files}",
                file=out,
            )


TOKEN_IN_PATH = re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/]+")


def log_lines_of(logs: list[Path], jobs: list[int]) -> Iterator[str]:
    marks = tuple(f"job={job} " for job in jobs)
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            if any(mark in line for mark in marks):
                yield f"{path.name}: {line}"


# --- main ------------------------------------------------------------------------------------


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="/video commands to send")
    parser.add_argument("--seed", type=int, default=None, help="replay this run's schedule")
    parser.add_argument("--members", type=int, default=30)
    parser.add_argument("--rate", type=float, default=2.0, help="requests per second")
    parser.add_argument("--no-faults", action="store_true", help="no Segmind or Discord faults")
    parser.add_argument("--no-kills", action="store_true", help="never kill the bot")
    parser.add_argument("--quiet-bound", type=float, default=60.0, help="seconds to settle")
    parser.add_argument("--keep", action="store_true", help="keep the bot's logs and database")
    args = parser.parse_args(argv)
    return Options(
        requests=max(1, args.requests),
        seed=args.seed if args.seed is not None else random.SystemRandom().randrange(10**9),
        members=max(1, args.members),
        rate=args.rate,
        faults=not args.no_faults,
        kills=not args.no_kills,
        quiet_bound=args.quiet_bound,
        keep=args.keep,
    )


async def soak(options: Options, folder: Path) -> bool:
    rng = random.Random(options.seed)
    schedule = plan(rng, options)
    # Made up for this run, distinctive, so that any piece of them is found wherever it shows.
    secrets = (
        f"soak-bot-token.{rng.getrandbits(128):032x}",
        f"sg-soak-{rng.getrandbits(128):032x}",
    )
    started = time.monotonic()
    run = Soak(options, schedule, folder, secrets)
    print(f"chaos soak: seed {options.seed}, {options.requests} requests; working in {folder}")
    await run.run()
    verdicts = judge(run)
    findings = scan_for_secrets(run)
    write_details(run, verdicts, folder / "details.txt")
    write_calls(run, folder / "discord-calls.txt")
    return report(run, verdicts, findings, time.monotonic() - started)


def main() -> int:
    options = parse_options()
    folder = Path(tempfile.mkdtemp(prefix="videobot-soak-"))
    # This process's own logs (the fake Discord, the simulator, aiohttp noting the connections
    # a kill cut mid-request) go to a file: the terminal gets the figures only.
    logging.basicConfig(filename=folder / "soak-process.log", level=logging.INFO)
    met = asyncio.run(soak(options, folder))
    print("PASS" if met else "FAIL")
    if options.keep or not met:
        print(f"logs and database kept in {folder}")
    else:
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
