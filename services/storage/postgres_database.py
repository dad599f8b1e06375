"""The PostgreSQL engine: one database shared by several bot processes, through asyncpg.

SQLite lets one writer in at a time, and the stores were written for that: "check the
limit, then record the use" in one transaction is atomic because no other write can run
in between. Here every writing transaction first takes one transaction-level advisory
lock, so the same holds across every process on the database, and a reader never waits.
Writes are short (the bot never holds a transaction across a call to Discord or
Segmind), so one lock costs little next to the round trips themselves.

PostgreSQL gives up a whole transaction when one of its statements fails, where SQLite
undoes only that statement. Inside a savepoint the caller can still undo just its part;
outside one, the transaction reports ``active`` False and its caller gives it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.storage.database import Database, Params, Row, Transaction, migrations, too_new
from services.storage.dialect import postgres_ddl, rowcount, to_postgres, writes

log = logging.getLogger(__name__)

# Advisory lock keys: any two numbers no other program on the database uses.
WRITE_LOCK = 0x7669_6465_6F00  # "video"
MIGRATION_LOCK = WRITE_LOCK + 1
RUNNER_LOCK = WRITE_LOCK + 2
# Connections per process: enough for the runner's reads beside one writer; a burst waits
# for a free connection rather than opening more than the server allows.
POOL_SIZE = 10

Tracer = Callable[[str], object] | None
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


def _number(text: str) -> int | float:
    """NUMERIC as SQLite gives it: SUM of integers is an int, anything with a fraction a float."""
    try:
        return int(text)
    except ValueError:
        return float(text)


async def _prepare(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "numeric", schema="pg_catalog", encoder=str, decoder=_number, format="text"
    )


class PostgresTransaction(Transaction):
    """Statements on one connection inside BEGIN ... COMMIT, the write lock taken."""

    dialect = "postgresql"

    def __init__(self, conn: Connection, tracer: Tracer) -> None:
        self._conn = conn
        self._tracer = tracer
        self._savepoints = 0
        self._spoiled = False

    @property
    def active(self) -> bool:
        return not self._spoiled

    async def _run(self, call: Callable[..., Awaitable[Any]], sql: str, params: Params) -> Any:
        text, args = to_postgres(sql, params)
        if self._tracer is not None:
            self._tracer(text)
        try:
            result = await call(text, *args)
        except BaseException:
            if self._savepoints == 0:
                self._spoiled = True
            raise
        head = sql.lstrip()[:9].upper()
        if head.startswith("SAVEPOINT"):
            self._savepoints += 1
        elif head.startswith("RELEASE"):
            self._savepoints -= 1
        return result

    async def execute(self, sql: str, params: Params = ()) -> int:
        return rowcount(await self._run(self._conn.execute, sql, params))

    async def insert(self, sql: str, params: Params = ()) -> int:
        if "RETURNING" not in sql.upper():
            sql += " RETURNING id"
        return int(await self._run(self._conn.fetchval, sql, params) or 0)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return cast(list[Row], await self._run(self._conn.fetch, sql, params))


class PostgresDatabase(Database):
    """A PostgreSQL database, for one process or several."""

    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self._tracer: Tracer = None
        self._runner_lock: asyncpg.Connection | None = None

    @classmethod
    async def connect(cls, dsn: str) -> PostgresDatabase:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=POOL_SIZE, init=_prepare)
        db = cls(pool, dsn)
        try:
            await db._migrate()
        except BaseException:
            await pool.close()
            raise
        return db

    async def close(self) -> None:
        if self._runner_lock is not None:
            await self._runner_lock.close()
            self._runner_lock = None
        await self._pool.close()

    async def join_runners(self) -> bool:
        """Say that this process runs jobs here, beside any others; False while ``migrate-db``
        holds the database for itself (rows written meanwhile would not be copied)."""
        return await self._hold_lock("pg_try_advisory_lock_shared")

    async def claim_exclusive(self) -> bool:
        """Whether no bot process runs here; if so, none can start until this one closes."""
        return await self._hold_lock("pg_try_advisory_lock")

    async def _hold_lock(self, function: str) -> bool:
        # A session-level advisory lock on a connection of its own: a process that dies, even
        # killed, loses its connection and with it the lock.
        conn = await asyncpg.connect(self._dsn)
        try:
            held = bool(await conn.fetchval(f"SELECT {function}($1)", RUNNER_LOCK))
        except BaseException:
            await conn.close()
            raise
        if not held:
            await conn.close()
            return False
        self._runner_lock = conn
        return True

    async def trace(self, callback: Callable[[str], object] | None) -> None:
        self._tracer = callback

    async def schema_version(self) -> int:
        async with self._pool.acquire() as conn:
            return await _version(conn)

    async def _migrate(self) -> None:
        async with self._pool.acquire() as conn:
            # Two processes starting together: the second waits, then finds nothing to do.
            await conn.execute(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)"
                )
                current = await _version(conn)
                if current > len(migrations()):
                    raise too_new(current)
                for version, sql in migrations():
                    if version <= current:
                        continue
                    log.info("applying database migration %04d", version)
                    async with conn.transaction():
                        await conn.execute(postgres_ddl(sql))
                        await conn.execute("INSERT INTO schema_version VALUES ($1)", version)
            finally:
                await conn.execute(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")

    @asynccontextmanager
    async def transaction(self, *, durable: bool = False) -> AsyncIterator[Transaction]:
        # ``durable`` needs nothing more: a PostgreSQL commit is on disk when it returns
        # (synchronous_commit, on by default).
        async with self._pool.acquire() as conn:
            tx = PostgresTransaction(conn, self._tracer)
            try:
                # BEGIN and the lock in one round trip; inside the try, since waiting for the
                # lock is where a cancel most often lands.
                await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")
                yield tx
                if not tx.active:
                    raise RuntimeError("a statement failed and the transaction was given up")
                # A failed statement in a savepoint the caller never undid: PostgreSQL
                # answers COMMIT with a rollback and no error. That must not pass as saved.
                if await conn.execute("COMMIT") != "COMMIT":
                    raise RuntimeError("the transaction was rolled back: a statement failed")
            except BaseException:
                await _rollback(conn)
                raise

    async def execute(self, sql: str, params: Params = (), *, durable: bool = False) -> int:
        return int(await self._one(PostgresTransaction.execute, sql, params))

    async def insert(self, sql: str, params: Params = ()) -> int:
        return int(await self._one(PostgresTransaction.insert, sql, params))

    async def change(self, sql: str, params: Params = (), *, durable: bool = False) -> list[Row]:
        return cast(list[Row], await self._one(PostgresTransaction.fetchall, sql, params))

    async def _one(self, run: Callable[..., Awaitable[Any]], sql: str, params: Params) -> Any:
        """One writing statement in its own transaction, tried once more on a stale plan.

        Another process that applied a migration (a rolling upgrade) changes a table under
        this one's cached statements; asyncpg re-prepares those by itself only outside a
        transaction. The statement alone is safe to run again: nothing of it was kept.
        """
        for attempt in (1, 2):
            try:
                async with self.transaction() as tx:
                    return await run(tx, sql, params)
            except asyncpg.InvalidCachedStatementError:
                if attempt == 2:
                    raise
                log.info("a table changed under a cached statement; running it again")
        raise AssertionError("unreachable")

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        if writes(sql):
            return await self.change(sql, params)
        text, args = to_postgres(sql, params)
        if self._tracer is not None:
            self._tracer(text)
        return cast(list[Row], await self._pool.fetch(text, *args))


async def _version(conn: Connection) -> int:
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def _rollback(conn: Connection) -> None:
    # Shielded so a second cancel cannot skip it; a broken connection is closed by the
    # pool instead, which ends the transaction just the same.
    with contextlib.suppress(Exception):
        await asyncio.shield(conn.execute("ROLLBACK"))
