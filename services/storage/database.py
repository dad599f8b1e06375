"""What every store sees of the database, whichever engine holds it.

Two engines sit behind one API: SQLite (``sqlite_database``), the embedded default for one
process, and PostgreSQL (``postgres_database``), shared by several. Both give the same
guarantees the stores rely on:

- one statement is atomic, and a write waits its turn behind every other write;
- ``transaction()`` runs several statements as one, with no other write in between, so
  "check the limit, then record the use" is atomic across every process;
- a failed statement inside a transaction undoes itself, or, where the engine cannot,
  the transaction reports ``active`` False and its caller gives up the whole of it.

The stores write one SQL text for both, in the subset the engines share (``dialect``).
"""

from __future__ import annotations

import abc
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

import asyncpg

from services.database_url import is_postgres

Params = Sequence[Any] | dict[str, Any]
Dialect = Literal["sqlite", "postgresql"]

# What a statement may raise from either engine (a full disk, a lost server, a bad row).
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.Error,
    OverflowError,  # sqlite3's answer to a number past 64 bits (asyncpg's is a DataError)
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def is_duplicate(error: BaseException) -> bool:
    """Whether ``error`` is a unique index refusing a second row with the same key."""
    if isinstance(error, asyncpg.UniqueViolationError):
        return True
    return isinstance(error, sqlite3.IntegrityError) and "UNIQUE" in str(error)


class Row(Protocol):
    """A result row: by position or by column name (sqlite3.Row and asyncpg.Record are)."""

    def __getitem__(self, key: Any, /) -> Any: ...

    def keys(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


class Executor(Protocol):
    """What a store needs: run a statement, read rows. Both Database and Transaction are one."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, sql: str, params: Params = ()) -> int: ...

    async def insert(self, sql: str, params: Params = ()) -> int: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...


def migrations() -> list[tuple[int, str]]:
    """The numbered SQL files under migrations/, in order: (version, sql)."""
    found = []
    for entry in resources.files("services.storage").joinpath("migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 0001, 0002, ... without gaps: {versions}")
    return found


def too_new(current: int) -> RuntimeError:
    return RuntimeError(
        f"the database is at schema version {current}, newer than this bot knows; "
        "update the bot or use another DATABASE_URL"
    )


class Transaction(abc.ABC):
    """Statements inside one transaction that no other write can interleave with."""

    dialect: Dialect

    @property
    @abc.abstractmethod
    def active(self) -> bool:
        """False once the engine ended or spoiled the transaction after an error."""

    @abc.abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int: ...

    @abc.abstractmethod
    async def insert(self, sql: str, params: Params = ()) -> int: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    @abc.abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...


class Database(abc.ABC):
    """A migrated database. Open with ``await Database.open(location)``; close when done."""

    dialect: Dialect
    # The SQLite file, None for a server. Beside it live the one-process lock and the clips.
    path: Path | None = None

    @staticmethod
    async def open(location: Path | str) -> Database:
        """A SQLite file (a Path, or a sqlite:/// URL) or a postgresql:// server, migrated."""
        if isinstance(location, str) and is_postgres(location):
            from services.storage.postgres_database import PostgresDatabase

            return await PostgresDatabase.connect(location)
        from services.database_url import database_path_from_url
        from services.storage.sqlite_database import SqliteDatabase

        path = database_path_from_url(location) if isinstance(location, str) else location
        return await SqliteDatabase.connect(path)

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def trace(self, callback: Callable[[str], object] | None) -> None:
        """Have ``callback`` see each SQL statement run (None: stop); for tests and diagnosis."""

    @abc.abstractmethod
    async def schema_version(self) -> int: ...

    async def join_runners(self) -> bool:
        """Say that this process runs jobs here; False while another holds it exclusively.

        SQLite: one process only, which the lock file beside it decides (services/app.py).
        """
        return True

    async def claim_exclusive(self) -> bool:
        """Whether no bot process runs here, holding it so until close (SQLite: the lock file)."""
        return True

    @abc.abstractmethod
    def transaction(self, *, durable: bool = False) -> AbstractAsyncContextManager[Transaction]:
        """Several statements as one: all or nothing, and no other write in between.

        ``durable``: the commit reaches the disk before this returns, so a power cut cannot
        undo it.
        """

    @abc.abstractmethod
    async def execute(self, sql: str, params: Params = (), *, durable: bool = False) -> int: ...

    @abc.abstractmethod
    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT into a table with an ``id`` column; the new row's id."""

    @abc.abstractmethod
    async def change(self, sql: str, params: Params = (), *, durable: bool = False) -> list[Row]:
        """One writing statement with ``RETURNING``: its rows."""

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    @abc.abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...
