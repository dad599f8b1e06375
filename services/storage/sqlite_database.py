"""The SQLite engine: WAL, numbered migrations, and one lock for every statement.

aiosqlite runs one connection on its own thread. Statements from different
coroutines would interleave inside each other's transactions on that shared
connection, so every statement and every transaction goes through one asyncio lock.
``transaction()`` holds it for several statements, which is what makes "check the
limit, then record the use" atomic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import aiosqlite

from services.storage.database import Database, Params, Row, Transaction, migrations, too_new

log = logging.getLogger(__name__)


class SqliteTransaction(Transaction):
    """Statements inside one BEGIN IMMEDIATE ... COMMIT, with the lock already held."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    @property
    def active(self) -> bool:
        """False once SQLite ended the transaction itself (some errors roll all of it back)."""
        return self._conn.in_transaction

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def insert(self, sql: str, params: Params = ()) -> int:
        cursor = await self._conn.execute(sql, params)
        return int(cursor.lastrowid or 0)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        # One trip to aiosqlite's thread, not three (execute, fetch, close): under a burst
        # the trips, not SQLite, are where the time goes.
        return cast(list[Row], list(await self._conn.execute_fetchall(sql, params)))


class SqliteDatabase(Database):
    """One SQLite file, for one process."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.path = path

    @classmethod
    async def connect(cls, path: Path) -> SqliteDatabase:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so nothing is implicit.
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        db = cls(conn, path)
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is safe in WAL mode (no corruption) and cheap; the few writes whose loss
            # in a power cut would cost money ask for a sync themselves (``durable``).
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            await db._migrate()
        except BaseException:
            await conn.close()
            raise
        return db

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()

    async def trace(self, callback: Callable[[str], object] | None) -> None:
        """Have ``callback`` see each SQL statement run (None: stop); for tests and diagnosis."""
        # sqlite3 takes None to stop; aiosqlite's annotation forgets that case.
        await self._conn.set_trace_callback(callback)  # type: ignore[arg-type]

    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        current = await self.schema_version()
        pending = [(v, sql) for v, sql in migrations() if v > current]
        if current > len(migrations()):
            raise too_new(current)
        for version, sql in pending:
            log.info("applying database migration %04d to %s", version, self.path)
            async with self._lock:
                # executescript commits first, so run the whole file as one explicit transaction.
                await self._conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
                )

    @asynccontextmanager
    async def transaction(self, *, durable: bool = False) -> AsyncIterator[Transaction]:
        """Several statements as one: all or nothing, and no other statement in between.

        ``durable``: the commit reaches the disk before this returns, so a power cut cannot
        undo it (the WAL is synced, with every commit before it).
        """
        async with self._lock:
            if durable:
                await self._conn.execute("PRAGMA synchronous=FULL")
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                yield SqliteTransaction(self._conn)
                await self._conn.execute("COMMIT")
            except BaseException:
                # Also when BEGIN or COMMIT was cancelled: aiosqlite still runs it on its
                # thread, and a transaction left open would fail every later write.
                await self._rollback()
                raise
            finally:
                if durable:
                    await asyncio.shield(self._conn.execute("PRAGMA synchronous=NORMAL"))

    async def _rollback(self) -> None:
        # Queued after whatever the cancelled statement was, so it runs last; shielded so a
        # second cancel cannot skip it. "No transaction is active" just means nothing to undo.
        with contextlib.suppress(sqlite3.OperationalError):
            await asyncio.shield(self._conn.execute("ROLLBACK"))

    async def execute(self, sql: str, params: Params = (), *, durable: bool = False) -> int:
        if durable:
            async with self.transaction(durable=True) as tx:
                return await tx.execute(sql, params)
        # One statement is atomic on its own (autocommit): one trip to aiosqlite's thread
        # instead of three (BEGIN, the statement, COMMIT). Each trip hands the GIL to that
        # thread and back, which under load costs more than SQLite's own work.
        async with self._lock:
            cursor = await self._conn.execute(sql, params)
            return cursor.rowcount

    async def insert(self, sql: str, params: Params = ()) -> int:
        async with self._lock:
            cursor = await self._conn.execute(sql, params)
            return int(cursor.lastrowid or 0)

    async def change(self, sql: str, params: Params = (), *, durable: bool = False) -> list[Row]:
        """One writing statement with ``RETURNING``: its rows, in one trip unless ``durable``."""
        if durable:
            async with self.transaction(durable=True) as tx:
                return await tx.fetchall(sql, params)
        return await self.fetchall(sql, params)  # autocommit: the statement is its own commit

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._lock:
            return cast(list[Row], list(await self._conn.execute_fetchall(sql, params)))
