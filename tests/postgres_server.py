"""A real PostgreSQL server on loopback for the tests: initdb and pg_ctl into a temporary
folder, started once per test run and thrown away after it.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user
(``runuser``), which Debian's package creates. Each test gets its own database, copied
from a migrated template (``CREATE DATABASE ... TEMPLATE``), so tests start from the same
schema as a fresh bot without paying for the migrations each time.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import asyncpg
import pytest

# Set by .ci/run: there, a machine without PostgreSQL is a failure, not a reason to skip.
REQUIRED = os.environ.get("VIDEOBOT_REQUIRE_POSTGRES") == "1"
TEMPLATE = "videobot_template"


def bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, or in Debian's versioned folder."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One throwaway cluster: ``start()``, ``dsn(name)``, ``new_database()``, ``stop()``."""

    def __init__(self, bindir: Path) -> None:
        self._bindir = bindir
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._root = Path(tempfile.mkdtemp(prefix="videobot-pg-"))
        self.data = self._root / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        self._template_ready = False

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as_user, *args], check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

    def start(self) -> None:
        if self._as_user:
            shutil.chown(self._root, "postgres", "postgres")
        # fsync off: a test cluster that a crash may lose, started fast. The C locale sorts
        # text by bytes, as SQLite does.
        self._run(
            str(self._bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self._bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self._root / "server.log"), "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        try:
            self._run(str(self._bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def new_database(self) -> str:
        """A new, empty-but-migrated database; its URL."""
        if not self._template_ready:
            await self._make_template()
        name = f"test_{os.getpid()}_{next(self._names)}"
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        finally:
            await conn.close()
        return self.dsn(name)

    async def empty_database(self) -> str:
        """A new database without even the bot's schema; its URL."""
        name = f"empty_{os.getpid()}_{next(self._names)}"
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        return self.dsn(name)

    async def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()

    async def _make_template(self) -> None:
        from services.storage.database import Database

        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await conn.close()
        db = await Database.open(self.dsn(TEMPLATE))
        await db.close()
        self._template_ready = True


# For a test about SQLite itself (its file, its pragmas, data only its loose typing lets in).
SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
