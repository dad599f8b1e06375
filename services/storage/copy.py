"""Whole tables from one database to another, for ``bot.py migrate-db``; either engine each side.

The tables come from the database's own catalog, not from a list here: a later migration's
table is copied without anyone remembering to add it. Rows are read in primary-key order a
batch at a time (keyset, so a large jobs table is never held in memory, and each batch costs
the same), and written with their ids as they were, many rows to a statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from services.storage.database import Database, Executor, Row

# PostgreSQL's bookkeeping of applied migrations; SQLite keeps the version in a PRAGMA.
NOT_COPIED = frozenset({"schema_version"})
# Parameters in one statement: PostgreSQL and SQLite since 3.32 take 32,766; an older
# SQLite (long-term distributions) only 999.
MAX_PARAMS = 30_000 if sqlite3.sqlite_version_info >= (3, 32) else 999
_INTEGER_TYPES = frozenset({"integer", "bigint", "int", "smallint"})


@dataclass(frozen=True)
class Table:
    """One table of the bot's schema as the catalog describes it."""

    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]  # lower case, as the catalog writes them (``integer``, ``bigint``)
    key: tuple[str, ...]  # primary key columns, in the key's order; empty: none
    parents: frozenset[str]  # tables its foreign keys point at

    @property
    def integer_key(self) -> str | None:
        """The one integer primary key column, whose highest value the copy checks."""
        if len(self.key) != 1:
            return None
        return (
            self.key[0] if self.types[self.columns.index(self.key[0])] in _INTEGER_TYPES else None
        )


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def tables(db: Executor) -> list[Table]:
    """Every table of the bot's schema, each after the tables its foreign keys point at."""
    if db.dialect == "postgresql":
        rows = await db.fetchall(
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    else:
        rows = await db.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%'"
            " ESCAPE '\\'"
        )
    names = sorted(str(row[0]) for row in rows if str(row[0]) not in NOT_COPIED)
    found = [await _describe(db, name) for name in names]
    return _parents_first(found)


async def _describe(db: Executor, name: str) -> Table:
    if db.dialect == "postgresql":
        columns = await db.fetchall(
            "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT)"
            " FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND CAST(table_name AS TEXT) = ?"
            " ORDER BY ordinal_position",
            (name,),
        )
        key = await db.fetchall(
            "SELECT CAST(k.column_name AS TEXT) FROM information_schema.table_constraints c"
            " JOIN information_schema.key_column_usage k"
            " ON k.constraint_name = c.constraint_name AND k.table_schema = c.table_schema"
            " AND k.table_name = c.table_name"
            " WHERE c.table_schema = current_schema() AND CAST(c.table_name AS TEXT) = ?"
            " AND c.constraint_type = 'PRIMARY KEY' ORDER BY k.ordinal_position",
            (name,),
        )
        parents = await db.fetchall(
            "SELECT DISTINCT CAST(u.table_name AS TEXT) FROM information_schema.table_constraints c"
            " JOIN information_schema.constraint_column_usage u"
            " ON u.constraint_name = c.constraint_name"
            " AND u.constraint_schema = c.constraint_schema"
            " WHERE c.table_schema = current_schema() AND CAST(c.table_name AS TEXT) = ?"
            " AND c.constraint_type = 'FOREIGN KEY'",
            (name,),
        )
        return Table(
            name=name,
            columns=tuple(str(row[0]) for row in columns),
            types=tuple(str(row[1]).lower() for row in columns),
            key=tuple(str(row[0]) for row in key),
            parents=frozenset(str(row[0]) for row in parents),
        )
    columns = await db.fetchall(
        "SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid", (name,)
    )
    parents = await db.fetchall('SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)', (name,))
    in_key = sorted((int(row[2]), str(row[0])) for row in columns if int(row[2]) > 0)
    return Table(
        name=name,
        columns=tuple(str(row[0]) for row in columns),
        types=tuple(str(row[1]).lower() for row in columns),
        key=tuple(column for _, column in in_key),
        parents=frozenset(str(row[0]) for row in parents),
    )


def _parents_first(found: list[Table]) -> list[Table]:
    """Tables ordered so each comes after those it refers to (a table may refer to itself)."""
    ordered: list[Table] = []
    placed: set[str] = set()
    waiting = list(found)
    while waiting:
        ready = [t for t in waiting if t.parents - {t.name} <= placed]
        if not ready:  # a cycle between tables; the schema has none, so keep the rest as is
            ready = waiting[:1]
        for table in ready:
            ordered.append(table)
            placed.add(table.name)
            waiting.remove(table)
    return ordered


async def first_filled(db: Executor, names: Sequence[str]) -> str | None:
    """The first of these tables that holds a row, or None when all are empty."""
    for name in names:
        if await db.fetchone(f"SELECT 1 FROM {quoted(name)} LIMIT 1") is not None:
            return name
    return None


async def batches(db: Executor, table: Table, size: int) -> AsyncIterator[list[Row]]:
    """The table's rows, ``size`` at a time, in primary-key order (its columns in ``columns``)."""
    select = f"SELECT {', '.join(map(quoted, table.columns))} FROM {quoted(table.name)}"
    if not table.key:
        # No key to resume after: page by position in a total order of every column.
        order = ", ".join(str(i + 1) for i in range(len(table.columns)))
        offset = 0
        while rows := await db.fetchall(
            f"{select} ORDER BY {order} LIMIT ? OFFSET ?", (size, offset)
        ):
            yield rows
            offset += len(rows)
        return
    key = ", ".join(map(quoted, table.key))
    marks = ", ".join("?" for _ in table.key)
    after = f"({key}) > ({marks})" if len(table.key) > 1 else f"{key} > ?"
    positions = [table.columns.index(column) for column in table.key]
    last: list[Any] | None = None
    while True:
        if last is None:
            rows = await db.fetchall(f"{select} ORDER BY {key} LIMIT ?", (size,))
        else:
            rows = await db.fetchall(
                f"{select} WHERE {after} ORDER BY {key} LIMIT ?", (*last, size)
            )
        if not rows:
            return
        yield rows
        last = [rows[-1][i] for i in positions]


async def insert_rows(
    tx: Executor, table: Table, target_types: Sequence[str], rows: Sequence[Row]
) -> None:
    """Write ``rows`` (in ``table.columns`` order) as they are, ids included."""
    per_statement = max(1, MAX_PARAMS // len(table.columns))
    columns = ", ".join(map(quoted, table.columns))
    one = "(" + ", ".join("?" for _ in table.columns) + ")"
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        values: list[Any] = []
        for row in chunk:
            values.extend(_fit(value, kind) for value, kind in zip(row, target_types, strict=True))
        await tx.execute(
            f"INSERT INTO {quoted(table.name)} ({columns}) VALUES {', '.join([one] * len(chunk))}",
            values,
        )


def _fit(value: Any, kind: str) -> Any:
    """A value in the type PostgreSQL's column takes; SQLite takes any and keeps what it gets.

    SQLite may hand a whole number back as a float (REAL arithmetic stored in an INTEGER
    column), which PostgreSQL's BIGINT refuses; a fraction stays a float and is refused.
    """
    if kind == "bigint" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "double precision" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


async def count_and_top(db: Executor, table: Table) -> tuple[int, int | None]:
    """How many rows, and the highest integer key (None: no such key, or no rows)."""
    top = f"MAX({quoted(table.integer_key)})" if table.integer_key else "NULL"
    row = await db.fetchone(f"SELECT COUNT(*), {top} FROM {quoted(table.name)}")
    assert row is not None
    return int(row[0]), (None if row[1] is None else int(row[1]))


async def continue_ids(tx: Executor, table: Table) -> None:
    """Move PostgreSQL's identity sequences past the copied ids, so the next insert is new.

    Copied ids were given explicitly, which a sequence does not see; left alone, it would
    hand out 1 again and collide with the first copied row. SQLite needs nothing: its next
    id is found from the rows (and AUTOINCREMENT's sqlite_sequence follows explicit ids).
    """
    if tx.dialect != "postgresql":
        return
    identities = await tx.fetchall(
        "SELECT CAST(column_name AS TEXT) FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND CAST(table_name AS TEXT) = ?"
        " AND is_identity = 'YES'",
        (table.name,),
    )
    for row in identities:
        column = str(row[0])
        await tx.fetchone(
            f"SELECT setval(pg_get_serial_sequence(CAST(? AS TEXT), CAST(? AS TEXT)),"
            f" MAX({quoted(column)})) FROM {quoted(table.name)}"
            f" HAVING MAX({quoted(column)}) IS NOT NULL",
            (quoted(table.name), column),
        )


async def identity(db: Database) -> tuple[str, ...]:
    """What tells two open databases apart: SQLite's file, or the server and database name.

    A server's start time (to the microsecond) stands for the server: two URLs may name one
    server differently (localhost, 127.0.0.1, a socket).
    """
    if db.dialect == "postgresql":
        row = await db.fetchone(
            "SELECT current_database(), CAST(pg_postmaster_start_time() AS TEXT),"
            " CAST(COALESCE(inet_server_port(), 0) AS TEXT)"
        )
        assert row is not None
        return ("postgresql", *(str(value) for value in row))
    assert db.path is not None
    return ("sqlite", str(db.path.resolve()))
