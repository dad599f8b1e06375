"""What the one-process benches share: the bot as a child process, /proc figures, the database.

Run as ``harness.py --as-bot`` it is that child: the real ``bot.main()`` with discord.py's two
seams pointed at the fake Discord (as tests/harness/run_bot.py), and the setting's ceiling of
100 jobs at once lifted for the bench only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLK_TCK = os.sysconf("SC_CLK_TCK")


def as_bot() -> int:
    """The child: the real bot.main(), discord.py pointed at the fake, up to 1000 jobs allowed."""
    import yarl
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    Route.BASE = os.environ["FAKE_DISCORD_API"]
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["FAKE_DISCORD_GATEWAY"])

    import bot
    from services import settings

    settings.MAX_CONCURRENT_JOBS = settings.Bounds(1, 1000, "jobs", whole=True)
    profile = os.environ.get("BENCH_CPROFILE")
    if not profile:
        return bot.main([])
    import cProfile
    import time

    # The event loop's thread's CPU, not wall time: on a shared machine, wall time also counts
    # the waits for a core, which land on whatever code happened to be running.
    profiler = cProfile.Profile(time.thread_time)
    try:
        return profiler.runcall(bot.main, [])
    finally:
        profiler.dump_stats(profile)


# --- /proc ------------------------------------------------------------------------------------


def _stat_fields(path: str) -> list[str]:
    text = Path(path).read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (its children, ffmpeg, are not counted)."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_cpu_seconds(pid: int) -> float:
    """stime alone: the kernel's share (sockets, files, the loopback's delivery to the fakes)."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    return int(fields[12]) / CLK_TCK


def children_cpu_seconds(pid: int) -> float:
    """cutime + cstime: the CPU of the bot's finished children (ffmpeg's decode checks)."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    return (int(fields[13]) + int(fields[14])) / CLK_TCK


def main_thread_cpu_seconds(pid: int) -> float:
    """utime + stime of the main thread alone: the event loop (other threads: SQLite, DNS)."""
    fields = _stat_fields(f"/proc/{pid}/task/{pid}/stat")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_average() -> str:
    """The machine's 1/5/15-minute load: others' tests share these 2 cores while we measure."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- the bot process --------------------------------------------------------------------------


class BotChild:
    """bot.py in a child process (this file with ``--as-bot``)."""

    def __init__(self, folder: Path, env: dict[str, str], name: str) -> None:
        self.folder = folder
        self.env = env
        self.log_path = folder / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self._log: TextIO | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, fake: Any, up: Callable[[], bool] | None = None) -> None:
        """Start it and wait until ``up`` (default: connected, with its commands synced)."""
        self._log = self.log_path.open("w")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).resolve()),
            "--as-bot",
            cwd=self.folder,
            env=self.env,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )
        process = self.process

        def ready() -> bool:
            if process.returncode is not None:
                raise RuntimeError(f"the bot exited with {process.returncode}; see {self.log_path}")
            if up is not None:
                return up()
            return bool(fake.gateway.identify_payloads) and bool(fake.commands(fake.world.guild.id))

        await fake.wait_until(ready, timeout=300)

    async def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), 60)
        except TimeoutError:
            self.process.send_signal(signal.SIGKILL)
            code = await self.process.wait()
        if self._log is not None:
            self._log.close()
        return code


def base_env(folder: Path, fake: Any, database_url: str | None) -> dict[str, str]:
    """The child's environment: the fake Discord's, and the bench's database if it names one."""
    from tests.harness.env import fake_discord_env

    # PYTHONASYNCIODEBUG=1 passes through: asyncio then logs each callback that held the loop.
    passed = ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONASYNCIODEBUG")
    env = {k: os.environ[k] for k in passed if k in os.environ}
    env.update(fake_discord_env(folder, fake))
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- the database -----------------------------------------------------------------------------


def add_database_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--database-url",
        metavar="URL",
        help="the bot's database, e.g. an empty postgresql://… (default: a new SQLite file)",
    )
    group.add_argument(
        "--postgres",
        action="store_true",
        help="start a throwaway PostgreSQL server (initdb, pg_ctl) for the run, stopped after",
    )


def engine_of(url: str | None) -> str:
    return "PostgreSQL" if url is not None and url.startswith("postgres") else "SQLite"


@dataclass
class BenchDatabase:
    """The run's database URL (None: the SQLite file in the working folder) and, for a server
    this bench started, how to read its CPU: SQLite's work is in the bot's own figures,
    PostgreSQL's in the server's processes."""

    url: str | None
    postmaster: Path | None = None  # the server's postmaster.pid
    server: Any = None  # the PostgresServer this bench started, for another database on it

    async def another(self) -> str | None:
        """A further empty database on the started server (else the same URL), for a new run."""
        if self.server is None:
            return self.url
        return str(await self.server.empty_database())

    def server_cpu_seconds(self) -> float | None:
        """utime+stime of the server and its backends, live and exited; None if not ours."""
        if self.postmaster is None:
            return None
        main = int(self.postmaster.read_text().split()[0])
        total = cpu_seconds(main) + children_cpu_seconds(main)
        for child in Path(f"/proc/{main}/task/{main}/children").read_text().split():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += cpu_seconds(int(child))
        return total


@contextlib.asynccontextmanager
async def bench_database(url: str | None, postgres: bool) -> AsyncIterator[BenchDatabase]:
    """The database for the run: ``url`` as given, or one on a throwaway server.

    The test suite's server (tests/postgres_server.py) runs without fsync to start fast; here
    PostgreSQL's own durable defaults are put back, so its commits wait for the disk as a
    production server's do (SQLite's WAL with synchronous=NORMAL is the bot's default beside).
    """
    if not postgres:
        yield BenchDatabase(url)
        return
    import asyncpg

    from tests.postgres_server import PostgresServer, bin_dir

    found = bin_dir()
    if found is None:
        raise SystemExit("--postgres: PostgreSQL (initdb, pg_ctl) is not installed")
    server = PostgresServer(found)
    await asyncio.to_thread(server.start)
    try:
        conn = await asyncpg.connect(server.dsn())
        try:
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                await conn.execute(f"ALTER SYSTEM SET {name} = on")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()
        url = await server.empty_database()
        yield BenchDatabase(url, server.data / "postmaster.pid", server)
    finally:
        await asyncio.to_thread(server.stop)


if __name__ == "__main__":
    if sys.argv[1:2] != ["--as-bot"]:
        sys.exit(__doc__)
    sys.exit(as_bot())
