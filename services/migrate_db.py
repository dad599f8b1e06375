"""`python bot.py migrate-db TARGET_URL`: the bot's database, copied whole to another one.

How an operator moves up from SQLite to PostgreSQL (and back, or between servers): both
databases are opened, which migrates each to the schema this bot knows, so they hold the
same tables; then every row of every table is copied with its id in one transaction on the
target, and the counts are checked before it commits. Nothing is ever written to the source.

A bot running on either side meanwhile would write rows the copy misses (or that collide
with it), so both are held as a running bot holds them: SQLite's lock file, PostgreSQL's
runner lock. A target that already holds rows is refused rather than merged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import urlsplit

from services.app import only_process_using
from services.database_url import database_from_url
from services.settings import Settings, SettingsError
from services.storage import copy
from services.storage.database import DATABASE_ERRORS, Database, Transaction

EXIT_FAILED = 1
EXIT_REFUSED = 2
BATCH_ROWS = 500
# Why a database cannot be opened: the engine refuses, or the file or server is unreachable.
OPEN_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, OSError)


class MigrationRefused(Exception):
    """Nothing was copied, for a reason the operator can act on (one plain line)."""


class MigrationFailed(Exception):
    """The copy went wrong and was rolled back: the target holds none of it."""


@dataclass(frozen=True)
class Copied:
    """One table's line of the summary: rows on both sides, and the highest id."""

    table: str
    rows: int
    top_id: int | None


async def migrate(
    source: Settings, target_url: str, *, batch_rows: int = BATCH_ROWS
) -> list[Copied]:
    """Copy the database ``source`` names into ``target_url``; what was copied, per table."""
    target = target_settings(source, target_url)
    if source.database_url is None and not source.database_path.is_file():
        # Opening it would create an empty database, and copy that.
        raise MigrationRefused(f"{source.database_shown} does not exist: check DATABASE_URL")
    async with contextlib.AsyncExitStack() as stack:
        source_db = await _open(source)
        stack.push_async_callback(source_db.close)
        target_db = await _open(target)
        stack.push_async_callback(target_db.close)
        if await copy.identity(source_db) == await copy.identity(target_db):
            raise MigrationRefused(
                f"{target.database_shown} is the database DATABASE_URL names: "
                "name another database as the target"
            )
        for side, db, settings in (("source", source_db, source), ("target", target_db, target)):
            await _hold(stack, db, settings, side)
        tables = await copy.tables(source_db)
        await _same_tables(tables, target_db, target)
        filled = await copy.first_filled(target_db, [table.name for table in tables])
        if filled is not None:
            raise MigrationRefused(
                f"{target.database_shown} already holds rows (table {filled}): "
                "migrate-db copies only into an empty database"
            )
        return await _copy_all(source_db, target_db, tables, batch_rows)
    raise AssertionError("unreachable")  # for mypy: the stack does not swallow errors


def target_settings(source: Settings, target_url: str) -> Settings:
    """The settings as if DATABASE_URL were the target: how it is opened, locked and shown."""
    try:
        path, url = database_from_url(target_url)
    except ValueError as error:
        raise MigrationRefused(f"TARGET_URL: {error}") from None
    if path is None:
        return dataclasses.replace(source, database_url=url)
    return dataclasses.replace(source, database_url=None, database_path=path)


async def _open(settings: Settings) -> Database:
    try:
        return await Database.open(settings.database_location)
    except OPEN_ERRORS as error:
        raise MigrationRefused(
            f"{settings.database_shown} cannot be opened: {_without_password(error, settings)}"
        ) from None
    except RuntimeError as error:  # a schema newer than this bot knows
        raise MigrationRefused(f"{settings.database_shown}: {error}") from None


async def _hold(
    stack: contextlib.AsyncExitStack, db: Database, settings: Settings, side: str
) -> None:
    """Keep any bot from running on this database until the copy is done."""
    busy = MigrationRefused(
        f"a bot process is running on the {side} {settings.database_shown}: "
        "stop it first (rows it writes during the copy would be lost)"
    )
    if settings.database_url is None:
        try:
            stack.enter_context(only_process_using(settings.database_path))
        except SettingsError:
            raise busy from None
    elif not await db.claim_exclusive():
        raise busy


async def _same_tables(tables: list[copy.Table], target_db: Database, target: Settings) -> None:
    theirs = {table.name: table for table in await copy.tables(target_db)}
    for table in tables:
        other = theirs.get(table.name)
        if other is None or set(other.columns) != set(table.columns):
            raise MigrationRefused(
                f"{target.database_shown} has no table {table.name} with the source's columns: "
                "is it another program's database?"
            )


async def _copy_all(
    source_db: Database, target_db: Database, tables: list[copy.Table], batch_rows: int
) -> list[Copied]:
    copied: list[Copied] = []
    target_types = {table.name: table for table in await copy.tables(target_db)}
    # The source's transaction freezes what is copied (no writer slips in between batches),
    # and the target's makes the copy all or nothing.
    try:
        async with source_db.transaction() as read, target_db.transaction() as write:
            for table in tables:
                theirs = target_types[table.name]
                copied.append(await _copy_table(read, write, table, theirs, batch_rows))
    except DATABASE_ERRORS as error:
        raise MigrationFailed(str(error)) from None
    return copied


async def _copy_table(
    read: Transaction, write: Transaction, table: copy.Table, theirs: copy.Table, batch_rows: int
) -> Copied:
    kinds = [theirs.types[theirs.columns.index(column)] for column in table.columns]
    try:
        async for rows in copy.batches(read, table, batch_rows):
            await copy.insert_rows(write, table, kinds, rows)
        await copy.continue_ids(write, table)
    except DATABASE_ERRORS as error:
        raise MigrationFailed(f"table {table.name}: {error}") from None
    expected = await copy.count_and_top(read, table)
    found = await copy.count_and_top(write, table)
    if found != expected:
        raise MigrationFailed(
            f"table {table.name}: the target holds {found[0]} rows (highest id"
            f" {found[1]}) where the source has {expected[0]} (highest id {expected[1]})"
        )
    return Copied(table.name, expected[0], expected[1])


def _without_password(error: BaseException, settings: Settings) -> str:
    text = str(error) or type(error).__name__
    url = settings.database_url
    if url:
        password = urlsplit(url).password
        if password:
            text = text.replace(password, "***")
    return text


def summary(copied: list[Copied]) -> list[str]:
    """The per-table lines printed after a copy: rows, and the highest id where there is one."""
    width = max((len(entry.table) for entry in copied), default=0)
    lines = []
    for entry in copied:
        top = f", highest id {entry.top_id}" if entry.top_id is not None else ""
        rows = "1 row" if entry.rows == 1 else f"{entry.rows} rows"
        lines.append(f"  {entry.table:<{width}}  {rows}{top}")
    return lines


async def run(
    settings: Settings,
    target_url: str,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """`bot.py migrate-db`: copy, print the summary; the process's exit code."""
    try:
        copied = await migrate(settings, target_url)
    except MigrationRefused as refusal:
        print(f"Nothing was copied: {refusal}", file=err)
        return EXIT_REFUSED
    except MigrationFailed as failure:
        print(f"The copy failed and was undone, the target is left empty: {failure}", file=err)
        return EXIT_FAILED
    shown = target_settings(settings, target_url).database_shown
    print(f"Copied {settings.database_shown} to {shown}; every table's rows match:", file=out)
    for line in summary(copied):
        print(line, file=out)
    print("Point DATABASE_URL at the new database, then start the bot.", file=out)
    return 0
