"""The doctor's database check when DATABASE_URL names a PostgreSQL server.

One short connection, reads only: is the server there, does it let the bot's user in, does
the database exist, and is its schema one this bot can run (an older one it migrates at
start). Each failure says its fix in a line; the password is never part of any line.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import asyncpg

from services.doctor import Check
from services.storage.database import migrations

CONNECT_TIMEOUT_SECONDS = 5.0
NAME = "Database"
CONNECT_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
# Connecting may also raise ValueError: URL options the driver refuses.
REFUSALS: tuple[type[Exception], ...] = (*CONNECT_ERRORS, ValueError)


async def check_postgres(url: str, shown: str) -> Check:
    """Reachable, the user let in, the database there, the schema one this bot knows."""
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_SECONDS)
    except REFUSALS as error:
        return _refused(error, url, shown)
    try:
        version = await _schema_version(conn)
        standby = bool(await conn.fetchval("SELECT pg_is_in_recovery()"))
    except CONNECT_ERRORS as error:
        return Check.problem(
            NAME,
            f"{shown} answers, but reading it failed: {_safe(error, url)}",
            "give DATABASE_URL's user the right to read and write that database",
        )
    finally:
        await conn.close()
    if standby:
        return Check.problem(
            NAME,
            f"{shown} is a read-only standby: the bot could not write a job",
            "point DATABASE_URL at the primary server",
        )
    known = len(migrations())
    if version > known:
        return Check.problem(
            NAME,
            f"{shown} is at schema version {version}, newer than this bot knows ({known})",
            "update the bot, or point DATABASE_URL at another database",
        )
    if version == 0:
        return Check.ok(NAME, f"{shown} answers and is empty: the bot creates its tables at start")
    if version < known:
        return Check.warning(
            NAME,
            f"{shown} answers; schema version {version} of {known}: "
            "the next start applies the rest",
        )
    return Check.ok(NAME, f"{shown} answers, schema current (version {version})")


def _refused(error: Exception, url: str, shown: str) -> Check:
    """Why the server did not let the bot in, and what the operator changes for each."""
    database = urlsplit(url).path.strip("/")
    if isinstance(error, asyncpg.InvalidPasswordError):
        return Check.problem(
            NAME,
            f"{shown} refused the password for its user",
            "correct the password in DATABASE_URL (postgresql://user:password@host/database)",
        )
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError):
        return Check.problem(
            NAME,
            f"{shown} does not let the user in: {_safe(error, url)}",
            "create that role on the server, or correct the user in DATABASE_URL",
        )
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return Check.problem(
            NAME,
            f"{shown}: the server has no database {database}",
            f"create it (createdb {database}, or CREATE DATABASE {database}), "
            "or correct its name in DATABASE_URL",
        )
    if isinstance(error, asyncpg.PostgresError):
        return Check.problem(
            NAME,
            f"{shown} refused the connection: {_safe(error, url)}",
            "check DATABASE_URL and the server's log",
        )
    if isinstance(error, TimeoutError):
        detail = f"no answer within {CONNECT_TIMEOUT_SECONDS:g} s"
    else:
        detail = _safe(error, url)
    return Check.problem(
        NAME,
        f"{shown} cannot be reached: {detail}",
        "start PostgreSQL, or correct the host and port in DATABASE_URL",
    )


async def _schema_version(conn: asyncpg.Connection) -> int:
    if not await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def sync_recorded_on_server(url: str, key: str) -> bool:
    """Whether the bot recorded a command sync under ``key`` in the server's meta table.

    Anything unreadable counts as not recorded: the database check says why on its own line.
    """
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_SECONDS)
    except CONNECT_ERRORS:
        return False
    try:
        if not await conn.fetchval("SELECT to_regclass('meta') IS NOT NULL"):
            return False
        return await conn.fetchval("SELECT 1 FROM meta WHERE key = $1", key) is not None
    except CONNECT_ERRORS:
        return False
    finally:
        await conn.close()


def _safe(error: BaseException, url: str) -> str:
    """The error in words, without the password even if a driver echoed the URL."""
    text = str(error) or type(error).__name__
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text
