"""Servers: how many one bot process holds; its start to READY, its memory, its /video answers.

    .venv/bin/python bench/servers.py                 # 100, 1000, 2500, 10000 servers, ~2 min
    .venv/bin/python bench/servers.py --quick         # 100 and 1000 servers
    .venv/bin/python bench/servers.py --servers 2500 --channels 30 --roles 15   # bigger servers
    .venv/bin/python bench/servers.py --postgres      # the bot on a throwaway PostgreSQL

For each count N, the real bot.py starts in a fresh child process (bench/harness.py
``--as-bot``, as bench/load.py runs it) against the in-process fake Discord holding N servers,
each with a few channels, roles and members, and the Segmind simulator in this process. Past
2,500 servers (Discord's most on one shard, the fake closes with 4011 beyond it) the process is
given SHARD_COUNT = N / 2,500 rounded up and runs every shard itself.

Measured for the bot process:
- start to IDENTIFY: Python and discord.py loaded, the database opened and migrated, the
  commands synced (to the first server, DISCORD_GUILD_ID);
- start to READY: discord.py's on_ready, which comes once every GUILD_CREATE is handled and
  no further one came for ``guild_ready_timeout`` (2 s, the bot's setting): the
  "handled" column is that instant less the 2 s quiet wait;
- CPU to READY, and peak RSS (VmHWM) at READY and after the /video;
- the acknowledgement latency of ``PROBES`` /video in the first server once ready, one after
  another (from the fake's dispatch to the bot's callback; Discord's window is 3 s), and the
  clips delivered for them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
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
    cpu_seconds,
    engine_of,
    load_average,
    percentile,
    status_kib,
)

DEFAULT_COUNTS = (100, 1000, 2500, 10000)
QUICK_COUNTS = (100, 1000)
PER_SHARD = 2500  # Discord's most servers on one gateway connection
GUILD_READY_TIMEOUT = 2.0  # discord.py's quiet wait after the last GUILD_CREATE (VideoBot's)
MEMBERS = 5  # besides the owner and the bot
PROBES = 10
READY_LINE = " ready as "  # the bot's start-up line, logged from on_ready


@dataclass(frozen=True)
class Shape:
    """What each server holds besides the bot: what discord.py keeps in memory per server."""

    channels: int = 4
    roles: int = 3  # @everyone and the bot's own role come on top


@dataclass
class Run:
    servers: int
    shards: int
    identify: float = math.nan  # seconds from the child's start
    ready: float = math.nan
    cpu_ready: float = math.nan
    rss_ready_mib: float = math.nan
    hwm_ready_mib: float = math.nan
    hwm_end_mib: float = math.nan
    acks: list[float] = field(default_factory=list)
    unanswered: int = 0
    delivered: int = 0
    load: str = ""


def build_world(servers: int, shape: Shape) -> Any:
    """The default world's server (where the probes ask) and ``servers - 1`` of ``shape``."""
    from tests.fakediscord import FakeWorld, Perm

    world = FakeWorld.default()
    first = world.guild
    for number in range(PROBES):
        first.add_member(f"probe{number:02d}")
    for number in range(1, servers):
        guild = world.add_guild(f"server {number:05d}")
        for channel in range(shape.channels):
            guild.add_text_channel(f"channel-{channel}")
        moderator = guild.add_role("Moderator", Perm.MANAGE_GUILD | Perm.MANAGE_MESSAGES)
        others = [guild.add_role(f"role-{r}", mentionable=True) for r in range(1, shape.roles)]
        guild.add_member(f"mod{number:05d}", roles=[moderator])
        for member in range(1, MEMBERS):
            guild.add_member(f"user{number:05d}-{member}", roles=others[:1])
    return world


class ServersRun:
    """One bot process against a fake Discord with ``servers`` servers."""

    def __init__(self, servers: int, shape: Shape, folder: Path, database_url: str | None) -> None:
        from services.simulator import SegmindSimulator, SimulatorConfig
        from tests.fakediscord import FakeDiscord

        self.folder = folder
        self.database_url = database_url
        self.key = "sg-servers-bench-key"
        self.fake = FakeDiscord(build_world(servers, shape))
        self.simulator = SegmindSimulator(
            SimulatorConfig(queue_seconds=0.2, processing_seconds=1.0, api_key=self.key)
        )
        self.result = Run(servers, shards=-(-servers // PER_SHARD))

    def env(self) -> dict[str, str]:
        env = {
            **base_env(self.folder, self.fake, self.database_url),
            "SEGMIND_API_KEY": self.key,
            "SEGMIND_BASE_URL": self.simulator.base_url,
            "DISCORD_GUILD_ID": str(self.fake.world.guild.id),
            "LOG_LEVEL": "INFO",
        }
        if self.result.shards > 1:
            env["SHARD_COUNT"] = str(self.result.shards)
        return env

    async def run(self) -> Run:
        await self.fake.start()
        await self.simulator.start("127.0.0.1", 0)
        bot = BotChild(self.folder, self.env(), "bot")
        try:
            await self._start(bot)
            await self._probe(bot)
        finally:
            if bot.process is not None and bot.process.returncode is None:
                await bot.stop()
            await self.simulator.stop()
            await self.fake.stop()
        return self.result

    async def _start(self, bot: BotChild) -> None:
        result = self.result
        started = time.monotonic()
        await bot.start(self.fake, up=lambda: True)
        timeout = started + 300
        while not self._ready(bot):
            if bot.process is not None and bot.process.returncode is not None:
                raise RuntimeError(f"the bot exited; see {bot.log_path}")
            if time.monotonic() > timeout:
                raise TimeoutError(f"no READY in 300 s; see {bot.log_path}")
            if math.isnan(result.identify) and self.fake.gateway.identify_payloads:
                result.identify = time.monotonic() - started
            await asyncio.sleep(0.02)
        result.ready = time.monotonic() - started
        result.cpu_ready = cpu_seconds(bot.pid)
        result.rss_ready_mib = status_kib(bot.pid, "VmRSS") / 1024
        result.hwm_ready_mib = status_kib(bot.pid, "VmHWM") / 1024
        result.load = load_average()

    def _ready(self, bot: BotChild) -> bool:
        with bot.log_path.open() as log:
            return READY_LINE in log.read()

    async def _probe(self, bot: BotChild) -> None:
        from tests.fakediscord import FakeTimeout

        result = self.result
        guild = self.fake.world.guild
        channel = guild.channels[0]
        probes = [m for m in guild.members if m.user.username.startswith("probe")]
        for number, member in enumerate(probes):
            options = {"prompt": f"servers probe {number} a lighthouse at dusk", "steps": 30}
            record = await self.fake.dispatch_slash_command(
                "video", options, user=member, channel=channel
            )
            try:
                await self.fake.wait_until(lambda r=record: r.acknowledged, timeout=3.5)
            except FakeTimeout:
                result.unanswered += 1
            else:
                result.acks.append(record.ack_latency)
            await asyncio.sleep(0.2)
        deadline = time.monotonic() + 60
        while result.delivered < len(probes) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            result.delivered = self._clips()
        result.hwm_end_mib = status_kib(bot.pid, "VmHWM") / 1024

    def _clips(self) -> int:
        return sum(
            1 for c in self.fake.calls if c.ok and any(f.filename.endswith(".mp4") for f in c.files)
        )


ROW = "  {:>7} {:>6} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6}  {}"


def row(*cells: object) -> str:
    return ROW.format(*cells).rstrip()


def print_header(engine: str, shape: Shape) -> None:
    print(
        f"servers: one bot process, database {engine}; each server {shape.channels} text "
        f"channels, {shape.roles} roles, {MEMBERS} members; {PROBES} /video in the first server "
        "once ready, one after another"
    )
    print(
        "  times in s from the bot's start; handled = READY less discord.py's 2 s quiet wait "
        "after the last GUILD_CREATE; RSS in MiB; /video acknowledgement in ms"
    )
    print(row("", "", "", "every", "", "CPU", "RSS", "peak", "peak", "/video", "/video", "", ""))
    print(
        row(
            "servers", "shards", "IDENTIFY", "handled", "READY", "to", "at", "RSS at", "RSS at",
            "ack", "ack", "clips", "load average",
        )
    )  # fmt: skip
    print(
        row("", "", "", "", "", "READY", "READY", "READY", "end", "median", "max", "", "at READY")
    )


def print_row(run: Run) -> None:
    """One server count's figures, printed as soon as it is measured."""
    median, most = 1000 * percentile(run.acks, 0.5), 1000 * max(run.acks, default=math.nan)
    unanswered = f" ({run.unanswered} unanswered in 3.5 s)" if run.unanswered else ""
    print(
        row(
            run.servers, run.shards, f"{run.identify:.1f}",
            f"{run.ready - GUILD_READY_TIMEOUT:.1f}", f"{run.ready:.1f}",
            f"{run.cpu_ready:.1f}", f"{run.rss_ready_mib:.0f}", f"{run.hwm_ready_mib:.0f}",
            f"{run.hwm_end_mib:.0f}", f"{median:.0f}", f"{most:.0f}",
            f"{run.delivered}/{PROBES}", run.load + unanswered,
        ),
        flush=True,
    )  # fmt: skip


async def main_async(
    counts: list[int], shape: Shape, database: BenchDatabase, folder: Path
) -> list[Run]:
    runs: list[Run] = []
    for count in counts:
        sub = folder / f"servers-{count}"
        sub.mkdir()
        url = database.url if not runs else await database.another()
        runs.append(await ServersRun(count, shape, sub, url).run())
        print_row(runs[-1])
    return runs


async def measure(args: argparse.Namespace, folder: Path) -> None:
    counts = args.servers or (QUICK_COUNTS if args.quick else DEFAULT_COUNTS)
    shape = Shape(channels=args.channels, roles=args.roles)
    async with bench_database(args.database_url, args.postgres) as database:
        print_header(engine_of(database.url), shape)
        await main_async(list(counts), shape, database, folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, nargs="+", metavar="N", help="server counts")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_COUNTS} servers")
    parser.add_argument("--channels", type=int, default=Shape.channels, help="per server")
    parser.add_argument("--roles", type=int, default=Shape.roles, help="per server")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    add_database_options(parser)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="videobot-servers-"))
    logging.basicConfig(filename=folder / "servers-process.log", level=logging.WARNING)
    try:
        asyncio.run(measure(args, folder))
    finally:
        if args.keep:
            print(f"kept: {folder}")
        else:
            for path in sorted(folder.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            folder.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
