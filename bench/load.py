"""Load: 500 jobs at once in one bot process; its memory, CPU, loop lag and refusal latency.

    .venv/bin/python bench/load.py                     # 500 jobs of 90 s from 31 members
    .venv/bin/python bench/load.py --quick             # 500 jobs of 20 s, about a minute
    .venv/bin/python bench/load.py --history 32        # a bot that has learned its clips' time
    .venv/bin/python bench/load.py --clip-check        # RSS with small and large clips
    .venv/bin/python bench/load.py --quick --profile cprofile   # or py-spy: where CPU goes
    .venv/bin/python bench/load.py --quick --postgres  # the bot on a throwaway PostgreSQL
    .venv/bin/python bench/load.py --database-url postgresql://…/empty   # or on yours

The real bot.py runs in a child process (bench/harness.py ``--as-bot``: the same two discord.py
seams as tests/harness/run_bot.py) against the in-process fake Discord, with the Segmind
simulator in this process. The bot is told MAX_CONCURRENT_JOBS=500 (above the setting's
ceiling of 100, which the child lifts for this run only) and a limit of 17 clips a member,
so that all 500 jobs (16 or 17 from each of 31 members) run at Segmind at the same time.

Measured for the bot process only:
- peak RSS: VmHWM from /proc/<pid>/status once the jobs are delivered;
- CPU per delivered job: utime+stime from /proc/<pid>/stat over the run, less what the bot
  burns idle (measured first, for ``IDLE_SECONDS``), divided by the clips delivered. The
  transfer is excluded by making it negligible: the clip is the 45 KB sample, and ffmpeg's
  decode check runs in a child process of the bot, not counted in its utime+stime. The
  refusal probe below is an instrument, not a job: once the run is over, member000's
  refusals one after another time what one costs (``PROBE_COST_REFUSALS``), and the run's
  refusals are taken out at that cost (the figure with them is printed beside);
- event-loop lag p99: the bot samples it itself (services/loop_lag.py, switched on by
  VIDEOBOT_LOOP_LAG_FILE), only the run's window is kept;
- acknowledgement latency of refused ``/video``: member000, at its limit once its 17 jobs
  are in, sends ``/video`` every ``PROBE_EVERY`` s while the 500 run; the fake Discord
  measures from the interaction's dispatch to the bot's callback. Its requests are left
  out of the requests per job.

With ``--postgres`` (or ``--database-url``) the bot keeps its state in PostgreSQL: jobs are
leased and MAX_CONCURRENT_JOBS is counted in the database, as with several processes. The
server's CPU is printed apart, since the bot's own figures no longer hold the database's work.

With ``--history N`` the bot starts with N earlier clips of the bench's kind in its database
(``job_timings``, as a bot that has run a while): it polls by what it learned, not by its
prior around EXPECTED_CLIP_SECONDS, and its progress bar moves through every cell. Without
it the bot is new, and the bench's clips are far shorter than its prior expects.

This process's own loop lag is printed too: a fake Discord that is itself late would make
the bot look slow.

``--clip-check`` runs a few jobs in fresh bot processes with the sample clip and with large
ones (padded with an MP4 ``free`` box: 9 MiB is uploaded as it is, 60 MiB is re-encoded to
fit Discord's upload limit) and prints each process's peak RSS: a download kept in memory
would add the clip's size per job.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    BenchDatabase,
    BotChild,
    add_database_options,
    base_env,
    bench_database,
    children_cpu_seconds,
    cpu_seconds,
    engine_of,
    load_average,
    main_thread_cpu_seconds,
    percentile,
    status_kib,
    system_cpu_seconds,
)

MEMBERS = 31
CHANNELS = 10  # the members' requests are spread over this many channels of one server
JOBS = 500
IDLE_SECONDS = 5.0
PROBE_EVERY = 0.3
# After the run, this many refusals one after another time what one costs the bot: the probe
# is an instrument, and its refusals are not jobs (in the 90-s run, about one per job).
PROBE_COST_REFUSALS = 150
PROBE_COST_GAP = 0.05
SETTLE_SECONDS = 20.0  # at most, after the last delivery, for the bot's last edits
RAMP_SECONDS = 10.0  # the 500 /video arrive over this long
STEPS = 30  # every request's steps (and the default 49 frames): one kind of clip
TARGETS = {"rss_mib": 150.0, "cpu_ms": 20.0, "lag_p99_ms": 50.0}


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Options:
    jobs: int
    processing: float
    ramp: float
    profile: str | None
    keep: bool
    clip_check: bool
    database_url: str | None = None  # None: a SQLite file in the working folder
    history: int = 0  # earlier clips of the bench's kind in the bot's database at start
    postgres: bool = False  # a throwaway PostgreSQL server for the run


@dataclass
class Figures:
    delivered: int = 0
    run_seconds: float = 0.0
    cpu_run: float = 0.0
    cpu_run_main: float = 0.0
    cpu_run_system: float = 0.0
    cpu_children: float = 0.0
    idle_rate: float = 0.0
    hwm_kib: int = 0
    rss_before_kib: int = 0
    lag: list[float] = field(default_factory=list)
    own_lag: list[float] = field(default_factory=list)
    admit_latency: list[float] = field(default_factory=list)
    refusal_latency: list[float] = field(default_factory=list)
    refusals_unanswered: int = 0
    not_refused: int = 0
    probe_cpu: float | None = None  # the bot's CPU seconds per refusal, timed after the run
    # Requests the bot made over the run, by kind: what its CPU per job mostly pays for.
    discord_calls: dict[str, int] = field(default_factory=dict)
    segmind_calls: int = 0
    cpu_server: float | None = None  # a PostgreSQL server's, which the bot's CPU leaves out
    load_before: str = ""  # /proc/loadavg: others share these cores
    load_after: str = ""


def build_world(members: int) -> Any:
    from tests.fakediscord import FakeWorld

    world = FakeWorld.default()
    for number in range(1, CHANNELS):
        world.guild.add_text_channel(f"studio-{number}")
    for number in range(members):
        world.guild.add_member(f"member{number:03d}")
    return world


def per_member(jobs: int) -> int:
    """Each member's share, rounded up: member000 reaches its limit with its own share."""
    return -(-jobs // MEMBERS)


def bot_env(
    folder: Path, fake: Any, simulator: Any, key: str, jobs: int, database_url: str | None
) -> dict[str, str]:
    return {
        **base_env(folder, fake, database_url),
        "SEGMIND_API_KEY": key,
        "SEGMIND_BASE_URL": simulator.base_url,
        "DISCORD_GUILD_ID": str(fake.world.guild.id),
        "MAX_CONCURRENT_JOBS": str(jobs),
        "MAX_JOBS_PER_MEMBER": str(per_member(jobs)),
        "DEFAULT_LIMIT": f"{per_member(jobs)}/1d",
        "LOG_LEVEL": "INFO",
        "VIDEOBOT_LOOP_LAG_FILE": str(folder / "loop-lag.json"),
    }


class Load:
    """One bot process, ``jobs`` clips asked for at once, and the figures while they run."""

    def __init__(
        self,
        options: Options,
        folder: Path,
        clip: bytes | None = None,
        database: BenchDatabase | None = None,
    ) -> None:
        from services.simulator import SegmindSimulator, SimulatorConfig
        from tests.fakediscord import FakeDiscord

        self.options = options
        self.folder = folder
        self.database = database or BenchDatabase(None)
        self.key = "sg-load-bench-key"
        self.fake = FakeDiscord(build_world(MEMBERS))
        self.simulator = SegmindSimulator(
            SimulatorConfig(
                queue_seconds=0.5,
                processing_seconds=options.processing,
                api_key=self.key,
                video_bytes=clip,
            )
        )
        self.members = [
            m for m in self.fake.world.guild.members if m.user.username.startswith("member")
        ]
        self.channels = self.fake.world.guild.channels[:CHANNELS]
        self.figures = Figures()
        self._seen_calls = 0
        self._probe_parts: set[str] = set()  # the probe's interactions, left out of the counts

    async def run(self) -> Figures:
        from services.loop_lag import LoopLagSampler

        await self.fake.start()
        await self.simulator.start("127.0.0.1", 0)
        options = self.options
        env = bot_env(
            self.folder, self.fake, self.simulator, self.key, options.jobs, options.database_url
        )
        if self.options.profile == "cprofile":
            env["BENCH_CPROFILE"] = str(self.folder / "bot.prof")
        if options.history:
            await self._seed_history(env["DATABASE_URL"])
        bot = BotChild(self.folder, env, "bot")
        own = LoopLagSampler()
        own.start()
        try:
            await bot.start(self.fake)
            await self._measure(bot)
        finally:
            await own.stop()
            if bot.process is not None and bot.process.returncode is None:
                await bot.stop()
            await self.simulator.stop()
            await self.fake.stop()
        window = (self._started, self._ended)
        self.figures.own_lag = [lag for at, lag in own.samples if window[0] <= at <= window[1]]
        self.figures.lag = self._bot_lag(window)
        return self.figures

    async def _seed_history(self, url: str) -> None:
        """Earlier clips of the kind the bench asks for, timed as the simulator serves them."""
        from services.finish_estimate import Timing
        from services.models import DEFAULT_INPUT_FRAMES
        from services.storage import Storage

        storage = await Storage.open(url)
        try:
            for n in range(self.options.history):
                spread = 1 + 0.005 * (n % 5 - 2)  # within a poll of each other, as measured
                timing = Timing(DEFAULT_INPUT_FRAMES, STEPS, 0.5, self.options.processing * spread)
                await storage.timings.add(timing, now=time.time())
        finally:
            await storage.close()

    async def _measure(self, bot: BotChild) -> None:
        figures = self.figures
        idle_cpu = cpu_seconds(bot.pid)
        await asyncio.sleep(IDLE_SECONDS)
        figures.idle_rate = (cpu_seconds(bot.pid) - idle_cpu) / IDLE_SECONDS
        figures.load_before = load_average()
        figures.rss_before_kib = status_kib(bot.pid, "VmRSS")
        spy = await self._start_py_spy(bot.pid)
        self._started = time.monotonic()
        cpu_start = cpu_seconds(bot.pid)
        server_start = self.database.server_cpu_seconds()
        main_start = main_thread_cpu_seconds(bot.pid)
        system_start = system_cpu_seconds(bot.pid)
        children_start = children_cpu_seconds(bot.pid)
        first_call = (len(self.fake.calls), len(self.simulator.calls))
        records = await self._send_all()
        await self.fake.wait_until(lambda: all(r.acknowledged for r in records), timeout=60)
        figures.admit_latency = [r.ack_latency for r in records if r.ack_latency is not None]
        prober = asyncio.create_task(self._probe_refusals())
        deadline = time.monotonic() + self.options.processing + 180
        while figures.delivered < len(records) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            figures.delivered += self._new_deliveries()
        prober.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await prober
        self._ended = time.monotonic()
        figures.cpu_run = cpu_seconds(bot.pid) - cpu_start
        server_end = self.database.server_cpu_seconds()
        if server_start is not None and server_end is not None:
            figures.cpu_server = server_end - server_start
        self._count_calls(first_call)
        figures.cpu_run_main = main_thread_cpu_seconds(bot.pid) - main_start
        figures.cpu_run_system = system_cpu_seconds(bot.pid) - system_start
        figures.cpu_children = children_cpu_seconds(bot.pid) - children_start
        figures.run_seconds = self._ended - self._started
        figures.hwm_kib = status_kib(bot.pid, "VmHWM")
        figures.load_after = load_average()
        if not self.options.clip_check:
            figures.probe_cpu = await self._time_one_refusal(bot)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await spy.wait()

    def _count_calls(self, first: tuple[int, int]) -> None:
        kinds = self.figures.discord_calls
        for call in self.fake.calls[first[0] :]:
            if not self._probe_parts.isdisjoint(call.path.split("/")):
                continue  # the probe's refusals are no job's
            kind = "progress edits" if call.method == "PATCH" else "other"
            if call.route.endswith("/callback"):
                kind = "interaction answers"
            elif call.method == "POST" and call.route.startswith("/channels/"):
                kind = "channel posts"
            elif call.method == "POST" and call.route.startswith("/webhooks/"):
                kind = "follow-ups"
            kinds[kind] = kinds.get(kind, 0) + 1
        self.figures.segmind_calls = len(self.simulator.calls) - first[1]

    async def _start_py_spy(self, pid: int) -> asyncio.subprocess.Process | None:
        if self.options.profile != "py-spy":
            return None
        py_spy = Path(sys.executable).with_name("py-spy")
        return await asyncio.create_subprocess_exec(
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--threads",
            "--output",
            str(self.folder / "py-spy.txt"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=(self.folder / "py-spy.log").open("w"),
        )

    async def _send_all(self) -> list[Any]:
        """Every member's share, round robin, spread over the ramp."""
        jobs = self.options.jobs
        gap = self.options.ramp / jobs
        start = time.monotonic()
        records = []
        for index in range(jobs):
            await asyncio.sleep(max(0.0, start + index * gap - time.monotonic()))
            member = self.members[index % len(self.members)]
            channel = self.channels[index % len(self.channels)]
            options = {"prompt": f"load {index:04d} a paper boat on a river", "steps": STEPS}
            records.append(
                await self.fake.dispatch_slash_command(
                    "video", options, user=member, channel=channel
                )
            )
        return records

    async def _probe_refusals(self) -> None:
        """member000 holds its whole limit: every further /video is refused."""
        figures = self.figures
        for number in range(10**6):
            latency = await self._refusal(f"one more, please ({number})")
            if latency is None:
                figures.refusals_unanswered += 1
            elif latency is False:
                figures.not_refused += 1
            else:
                figures.refusal_latency.append(latency)
            await asyncio.sleep(PROBE_EVERY)

    async def _refusal(self, prompt: str) -> float | bool | None:
        """One /video from member000: its acknowledgement latency, False if it was not
        refused for the limit, None if unanswered in 3.5 s."""
        from tests.fakediscord import FakeTimeout

        # Each prompt its own: the same one again would be answered as a double click.
        options = {"prompt": prompt, "steps": STEPS}
        record = await self.fake.dispatch_slash_command(
            "video", options, user=self.members[0], channel=self.channels[0]
        )
        self._probe_parts.update((str(record.id), record.token))
        try:
            await self.fake.wait_until(lambda: record.acknowledged, timeout=3.5)
        except FakeTimeout:
            return None
        assert record.ack_latency is not None
        return record.ack_latency if self._refused_for_limit(record) else False

    async def _time_one_refusal(self, bot: BotChild) -> float | None:
        """The bot's CPU seconds per refusal, once its last edits are done: member000's
        refusals one after another, less what the bot burns idle meanwhile."""
        settle_until = time.monotonic() + SETTLE_SECONDS
        seen = -1
        while len(self.fake.calls) != seen and time.monotonic() < settle_until:
            seen = len(self.fake.calls)
            await asyncio.sleep(2.0)  # the finished-progress edits trail the deliveries
        started, cpu_start = time.monotonic(), cpu_seconds(bot.pid)
        refused = 0
        for number in range(PROBE_COST_REFUSALS):
            latency = await self._refusal(f"and another one ({number})")
            refused += isinstance(latency, float)
            await asyncio.sleep(PROBE_COST_GAP)
        idle = self.figures.idle_rate * (time.monotonic() - started)
        spent = cpu_seconds(bot.pid) - cpu_start - idle
        return spent / refused if refused == PROBE_COST_REFUSALS else None

    def _refused_for_limit(self, record: Any) -> bool:
        if record.original_message_id is None:
            return False
        message = self.fake.message(record.original_message_id)
        text = message.content + json.dumps(message.embeds)
        return "reached" in text and "limit" in text

    def _new_deliveries(self) -> int:
        calls = self.fake.calls
        fresh, self._seen_calls = calls[self._seen_calls :], len(calls)
        return sum(1 for c in fresh if c.ok and any(f.filename.endswith(".mp4") for f in c.files))

    def _bot_lag(self, window: tuple[float, float]) -> list[float]:
        path = self.folder / "loop-lag.json"
        if not path.exists():
            return []
        samples = json.loads(path.read_text())["samples"]
        return [lag for at, lag in samples if window[0] <= at <= window[1]]


# --- the clip check ---------------------------------------------------------------------------


def padded_clip(sample: bytes, size: int) -> bytes:
    """The sample clip grown to ``size`` bytes with a trailing MP4 ``free`` box."""
    pad = size - len(sample)
    if pad < 16:
        return sample
    return sample + _free_box(pad)


def _free_box(size: int) -> bytes:
    if size < 2**32:
        return struct.pack(">I4s", size, b"free") + bytes(size - 8)
    return struct.pack(">I4sQ", 1, b"free", size) + bytes(size - 16)


async def clip_check(folder: Path) -> list[str]:
    from services.simulator import DEFAULT_VIDEO_PATH

    sample = DEFAULT_VIDEO_PATH.read_bytes()
    jobs = 4
    lines = []
    sizes = [("sample 45 KB", None), ("9 MiB", 9 << 20), ("60 MiB", 60 << 20)]
    base_hwm = 0
    for label, size in sizes:
        clip = None if size is None else padded_clip(sample, size)
        sub = folder / label.split()[0]
        sub.mkdir()
        options = Options(jobs, 3.0, 0.1, None, False, True)
        figures = await Load(options, sub, clip=clip).run()
        hwm = figures.hwm_kib / 1024
        base_hwm = base_hwm or hwm
        lines.append(
            f"  clip {label:>12} x{jobs} at once: delivered {figures.delivered}/{jobs}, "
            f"peak RSS {hwm:6.1f} MiB ({hwm - base_hwm:+.1f} MiB beside the sample clip; "
            f"buffered in memory would add ~{jobs * (size or 0) / 2**20:.0f} MiB)"
        )
    return lines


# --- report -----------------------------------------------------------------------------------


def verdict(value: float, target: float) -> str:
    return "ok" if value < target else "MISSED"


def report(options: Options, figures: Figures) -> bool:
    delivered = max(1, figures.delivered)
    idle = figures.idle_rate * figures.run_seconds
    cpu_all_ms = 1000 * (figures.cpu_run - idle) / delivered
    # Only what was answered as a refusal: an unanswered or admitted probe is no refusal.
    refused = len(figures.refusal_latency)
    probes_ms = 1000 * refused * (figures.probe_cpu or 0.0) / delivered
    cpu_ms = cpu_all_ms - probes_ms
    rss = figures.hwm_kib / 1024
    lag99 = 1000 * percentile(figures.lag, 0.99)
    print(
        f"load: {options.jobs} /video from {MEMBERS} members in {CHANNELS} channels over "
        f"{options.ramp:.0f}s, Segmind processing {options.processing:.0f}s; "
        f"{figures.delivered} delivered in {figures.run_seconds:.0f}s"
    )
    learned = f"{options.history} earlier clips of this kind" if options.history else "none"
    print(f"  the bot's history at start: {learned} (--history)")
    print(
        f"  database {engine_of(options.database_url)}; machine load average before/after "
        f"{figures.load_before} / {figures.load_after}"
    )
    print(
        f"  bot CPU over the run {figures.cpu_run:.1f}s ({figures.cpu_run_main:.1f}s of it in the "
        f"event loop's thread, {figures.cpu_run_system:.1f}s in the kernel; idle "
        f"{1000 * figures.idle_rate:.1f} "
        f"ms/s, {idle:.1f}s of it); RSS before the load {figures.rss_before_kib / 1024:.1f} MiB"
    )
    print(
        f"  not counted above: ffmpeg children {figures.cpu_children:.1f}s "
        f"({1000 * figures.cpu_children / delivered:.0f} ms per clip, the decode check)"
    )
    if figures.cpu_server is not None:
        print(
            f"  nor the PostgreSQL server: {figures.cpu_server:.1f}s "
            f"({1000 * figures.cpu_server / delivered:.1f} ms per delivered job)"
        )
    per_job = ", ".join(
        f"{count / delivered:.1f} {kind}" for kind, count in sorted(figures.discord_calls.items())
    )
    to_discord = sum(figures.discord_calls.values()) / delivered
    print(
        f"  requests per delivered job: Discord {to_discord:.1f} ({per_job}), "
        f"Segmind {figures.segmind_calls / delivered:.1f}"
    )
    print(f"  peak RSS (VmHWM)            {rss:8.1f} MiB  target < 150   {verdict(rss, 150)}")
    print(f"  CPU per delivered job       {cpu_ms:8.1f} ms   target < 20    {verdict(cpu_ms, 20)}")
    if figures.probe_cpu is None:
        print("    (the probe's refusals could not be timed: they are counted in the figure)")
    else:
        print(
            f"    (less the probe's {refused} refusals, "
            f"{1000 * figures.probe_cpu:.1f} ms each as timed after the run: "
            f"{cpu_all_ms:.1f} ms with them)"
        )
    print(
        f"  event-loop lag p99          {lag99:8.1f} ms   target < 50    {verdict(lag99, 50)}"
        f"   (p50 {1000 * percentile(figures.lag, 0.5):.1f}, max "
        f"{1000 * max(figures.lag, default=0):.0f}, {len(figures.lag)} samples)"
    )
    ref = figures.refusal_latency
    ref50, ref99 = 1000 * percentile(ref, 0.5), 1000 * percentile(ref, 0.99)
    print(
        f"  refused /video ack p50/p99  {ref50:6.0f}/{ref99:<6.0f} ms  ({len(ref)} refusals, "
        f"{figures.refusals_unanswered} unanswered in 3.5 s, {figures.not_refused} not refused)"
    )
    adm = figures.admit_latency
    print(
        f"  admitted /video ack p50/p99 {1000 * percentile(adm, 0.5):6.0f}/"
        f"{1000 * percentile(adm, 0.99):<6.0f} ms  ({len(adm)})"
    )
    own = figures.own_lag
    print(
        f"  (this process's own loop lag p50/p99 {1000 * percentile(own, 0.5):.1f}/"
        f"{1000 * percentile(own, 0.99):.1f} ms: the fake Discord and the simulator)"
    )
    return rss < 150 and cpu_ms < 20 and lag99 < 50 and figures.delivered == options.jobs


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--processing", type=float, default=90.0, help="Segmind seconds per job")
    parser.add_argument("--ramp", type=float, default=RAMP_SECONDS)
    parser.add_argument("--quick", action="store_true", help="processing 20 s")
    parser.add_argument("--profile", choices=("cprofile", "py-spy"))
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument("--clip-check", action="store_true", help="RSS with large clips")
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        metavar="N",
        help="start the bot with N earlier clips of the bench's kind in its database",
    )
    add_database_options(parser)
    args = parser.parse_args(argv)
    if args.clip_check and (args.postgres or args.database_url):
        # Each clip size starts a fresh bot whose members would find the last one's uses.
        parser.error("--clip-check runs on fresh SQLite files only")
    return Options(
        jobs=args.jobs,
        processing=20.0 if args.quick else args.processing,
        ramp=args.ramp,
        profile=args.profile,
        keep=args.keep or args.profile is not None,
        clip_check=args.clip_check,
        database_url=args.database_url,
        postgres=args.postgres,
        history=max(0, args.history),
    )


async def main_async(options: Options, folder: Path) -> bool:
    if options.clip_check:
        for line in await clip_check(folder):
            print(line)
        return True
    async with bench_database(options.database_url, options.postgres) as database:
        options.database_url = database.url
        figures = await Load(options, folder, database=database).run()
    return report(options, figures)


def main() -> int:
    options = parse_options()
    folder = Path(tempfile.mkdtemp(prefix="videobot-load-"))
    logging.basicConfig(filename=folder / "load-process.log", level=logging.WARNING)
    met = asyncio.run(main_async(options, folder))
    if options.keep:
        print(f"kept: {folder}")
    else:
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
