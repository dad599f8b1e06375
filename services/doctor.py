"""`python bot.py doctor`: the checks that need no Discord, and the checklist they print.

Each check returns a ``Check``: ok, a warning (worth knowing, nothing broken) or a problem
with the fix for it. Nothing here changes what it looks at: the database is neither
created nor migrated nor locked, and Segmind is asked only for the status of a request id
nobody made, which costs nothing. The Discord checks live in ``cogs.doctor`` and come in
through ``diagnose``'s ``discord_checks``, so this module never imports discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp

from services.http_text import MAX_ERROR_BODY, parse_json, read_capped
from services.segmind import API_KEY_HEADER, RetryPolicy, SegmindClient
from services.settings import Settings, SettingsError, load_settings
from services.simulator import SegmindSimulator, SimulatorConfig
from services.storage.database import migrations

# One request, no retries: the doctor reports what it saw rather than waiting it out.
PROBE_POLICY = RetryPolicy(request_timeout=15.0, connect_timeout=10.0)
BUSY_TIMEOUT_SECONDS = 5.0  # how long to wait for a running bot's write to finish
EXIT_PROBLEMS = 1
_SETTING_NAME = re.compile(r"^([A-Z][A-Z0-9_]+)\b")
CORRUPT_FIX = "restore a backup, or move the file away (the bot then starts a new one)"
KEY_FIX = "copy the key again from segmind.com (API keys) into SEGMIND_API_KEY"


class Outcome(enum.Enum):
    OK = "ok"
    WARNING = "warn"
    PROBLEM = "FAIL"


@dataclass(frozen=True)
class Check:
    """One line of the checklist; a problem always says how to fix it."""

    name: str
    outcome: Outcome
    detail: str
    fix: str | None = None

    @classmethod
    def ok(cls, name: str, detail: str) -> Check:
        return cls(name, Outcome.OK, detail)

    @classmethod
    def warning(cls, name: str, detail: str, fix: str | None = None) -> Check:
        return cls(name, Outcome.WARNING, detail, fix)

    @classmethod
    def problem(cls, name: str, detail: str, fix: str) -> Check:
        return cls(name, Outcome.PROBLEM, detail, fix)


DiscordChecks = Callable[[Settings], Awaitable[list[Check]]]


# --- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingsReading:
    """The settings check, and what the other checks can still use.

    ``settings`` holds every valid value (defaults in place of the broken ones), so a bad
    MAX_CONCURRENT_JOBS does not hide a rejected token; ``broken`` names the settings that
    are missing or invalid, whose checks are skipped.
    """

    checks: list[Check]
    settings: Settings | None
    broken: frozenset[str]


def read_settings(
    env: Mapping[str, str], *, simulate: bool | None, env_file_found: bool = True
) -> SettingsReading:
    try:
        settings = load_settings(env, simulate=simulate)
    except SettingsError as error:
        checks = [
            Check.problem("Settings", problem, _settings_fix(problem, env_file_found))
            for problem in error.problems
        ]
        broken = frozenset(
            match.group(1) for problem in error.problems if (match := _SETTING_NAME.match(problem))
        )
        return SettingsReading(checks, _valid_part(env, simulate, broken), broken)
    mode = "simulating Segmind" if settings.simulate else "using Segmind"
    return SettingsReading([Check.ok("Settings", f"all valid ({mode})")], settings, frozenset())


def _settings_fix(problem: str, env_file_found: bool) -> str:
    match = _SETTING_NAME.match(problem)
    if match is None or not problem.startswith(f"{match.group(1)} is missing"):
        return "change it in .env or the environment"
    fix = f"add {match.group(1)}=… to .env"
    # Without a .env the operator may not know where settings live: point at the template.
    return fix if env_file_found else f"{fix} (copy .env.example to .env first)"


def _valid_part(
    env: Mapping[str, str], simulate: bool | None, broken: frozenset[str]
) -> Settings | None:
    valid = {name: value for name, value in env.items() if name not in broken}
    try:
        return load_settings(valid, simulate=simulate, need_discord=False)
    except SettingsError:
        pass
    try:
        # Still refused: the Segmind key is missing while not simulating. Its check is
        # skipped, so read the rest as if simulating and say that we are not.
        return replace(load_settings(valid, simulate=True, need_discord=False), simulate=False)
    except SettingsError:
        return None


# --- database ---------------------------------------------------------------------------------


async def check_database(path: Path) -> Check:
    """Opens, schema known, writable; a missing file is fine (the bot creates it)."""
    return await asyncio.to_thread(_inspect_database, path)


def _inspect_database(path: Path) -> Check:
    name = "Database"
    if not path.exists():
        folder = _nearest_existing(path.parent)
        if not os.access(folder, os.W_OK | os.X_OK):
            return Check.problem(
                name,
                f"{path} does not exist and cannot be created: {folder} is not writable",
                "let the bot's user write that folder, or point DATABASE_URL elsewhere",
            )
        return Check.ok(name, f"{path} does not exist yet: it will be created at first start")
    known = len(migrations())
    try:
        version = _probe_database(path)
    except sqlite3.DatabaseError as error:  # OperationalError too, and CorruptDatabase
        return _unreadable(path, error)
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return Check.problem(
            name,
            f"{path.parent} is not writable: SQLite's journal and the clips folder live there",
            f"let the bot's user write {path.parent}",
        )
    if version > known:
        return Check.problem(
            name,
            f"{path} is at schema version {version}, newer than this bot knows ({known})",
            "update the bot, or point DATABASE_URL at another database",
        )
    if version < known:
        return Check.warning(
            name,
            f"{path} opens and is writable; schema version {version} of {known}: "
            "the next start applies the rest",
        )
    return Check.ok(name, f"{path} opens, schema current (version {version}), writable")


def _unreadable(path: Path, error: sqlite3.DatabaseError) -> Check:
    name, text = "Database", str(error)
    if "locked" in text or "busy" in text:
        return Check.warning(
            name,
            f"{path} stayed busy for {BUSY_TIMEOUT_SECONDS:g} s, so writing was not tried",
            "run the doctor again; a running bot holds the database only for moments",
        )
    if "readonly" in text:
        return Check.problem(
            name,
            f"{path} opens but cannot be written ({text})",
            f"let the bot's user write {path} and its folder {path.parent}",
        )
    if isinstance(error, sqlite3.OperationalError):
        return Check.problem(
            name,
            f"{path} cannot be opened: {text}",
            "check the file's permissions, or point DATABASE_URL elsewhere",
        )
    if "not a database" in text:
        return Check.problem(
            name,
            f"{path} is not a SQLite database ({error})",
            "point DATABASE_URL at the bot's database, or move this file away",
        )
    # Damaged pages behind a sound header ("database disk image is malformed").
    return Check.problem(name, f"{path} is corrupt ({error})", CORRUPT_FIX)


class CorruptDatabase(sqlite3.DatabaseError):
    """SQLite's quick_check found damage that opening the file did not show."""


def _probe_database(path: Path) -> int:
    """The schema version, after a write rolled back: proves the file takes writes.

    ``mode=rw`` never creates a file; setting user_version to itself is the smallest write
    and the rollback undoes it. A running bot's own write makes this wait a moment, no more.
    The header alone can look fine over damaged pages: parsing the schema and SQLite's
    quick_check (read-only) find those before the bot trips over them mid-job.
    """
    uri = f"{path.resolve().as_uri()}?mode=rw"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        row = conn.execute("PRAGMA user_version").fetchone()
        version = int(row[0]) if row else 0
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        verdict = conn.execute("PRAGMA quick_check(1)").fetchone()
        if verdict is None or verdict[0] != "ok":
            raise CorruptDatabase(verdict[0] if verdict else "quick_check gave no answer")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA user_version = {version}")
        finally:
            conn.execute("ROLLBACK")
        return version
    finally:
        conn.close()


def sync_recorded(path: Path, key: str) -> bool:
    """Whether the bot recorded a command sync under ``key`` (cogs.sync's meta entry).

    Read-only and never creating the file; anything unreadable counts as not recorded,
    since the database check reports that on its own line.
    """
    if not path.is_file():
        return False
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return row is not None


async def sync_was_recorded(settings: Settings, key: str) -> bool:
    """Whether the bot recorded a command sync under ``key``, in whichever database it uses."""
    if settings.database_url is not None:
        # Imported here: it imports this module's Check.
        from services.doctor_postgres import sync_recorded_on_server

        return await sync_recorded_on_server(settings.database_url, key)
    return await asyncio.to_thread(sync_recorded, settings.database_path, key)


def _nearest_existing(folder: Path) -> Path:
    folder = folder.resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


# --- Segmind ----------------------------------------------------------------------------------


async def check_segmind(
    session: aiohttp.ClientSession, *, base_url: str, api_key: str, simulated: bool = False
) -> Check:
    """Ask for the status of a request id nobody made: Segmind's JSON 404 means the key passed.

    Segmind checks the key before it looks the id up (401/403 for a bad key), and a status
    request starts nothing, so this costs nothing. Only a JSON 404 counts: a wrong
    SEGMIND_BASE_URL answers 404 too, with a web server's HTML page.
    """
    name = "Segmind key"
    client = SegmindClient(session, api_key=api_key, base_url=base_url, policy=PROBE_POLICY)
    shown = client.display_url
    url = f"{client.base_url}/v2/requests/doctor-{uuid.uuid4().hex}/status"
    headers = {API_KEY_HEADER: api_key} if api_key else {}
    timeout = aiohttp.ClientTimeout(
        total=PROBE_POLICY.request_timeout, connect=PROBE_POLICY.connect_timeout
    )
    try:
        async with session.get(
            url, headers=headers, allow_redirects=False, timeout=timeout
        ) as resp:
            status = resp.status
            body = await read_capped(resp, MAX_ERROR_BODY)
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        return Check.problem(
            name,
            f"{shown} could not be reached: {describe_error(error)}",
            "check the network, and SEGMIND_BASE_URL if you set it",
        )
    except ValueError:  # aiohttp refuses a header value with a control character in it
        return Check.problem(
            name, "SEGMIND_API_KEY contains an invisible character: paste it again", KEY_FIX
        )
    if status == 404 and isinstance(parse_json(body), dict):
        if simulated:
            return Check.ok(name, f"the simulator at {shown} answers (no key, no cost)")
        return Check.ok(name, f"accepted by {shown} (checked at no cost)")
    if status in (401, 403):
        return Check.problem(name, f"refused by {shown} (HTTP {status})", KEY_FIX)
    if status == 406:
        return Check.problem(
            name,
            f"accepted, but the account is out of credits (HTTP 406 from {shown})",
            "add credits at segmind.com",
        )
    if status == 404:
        return Check.problem(
            name,
            f"cannot tell whether the key is accepted: {shown} answered a 404 that is not "
            "Segmind's (no JSON body)",
            f"check SEGMIND_BASE_URL: it should be Segmind's API root, {Settings.segmind_base_url}",
        )
    if 200 <= status < 300:
        return Check.problem(
            name,
            f"cannot tell whether the key is accepted: {shown} knew a made-up request id",
            "check that SEGMIND_BASE_URL points at Segmind's API",
        )
    return Check.problem(
        name,
        f"cannot tell whether the key is accepted: {shown} answered HTTP {status} "
        "to a status request",
        "run the doctor again in a minute; check SEGMIND_BASE_URL if it persists",
    )


def describe_error(error: BaseException) -> str:
    """An exception as words; some (a bare TimeoutError) have none, so say their kind."""
    return str(error) or type(error).__name__


@contextlib.asynccontextmanager
async def segmind_target(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """The base URL and key the bot would use; with --simulate, a simulator started here."""
    if not settings.simulate:
        yield settings.segmind_base_url, settings.segmind_api_key
        return
    simulator = SegmindSimulator(
        SimulatorConfig(
            queue_seconds=settings.simulator_queue_seconds,
            processing_seconds=settings.simulator_processing_seconds,
        )
    )
    base_url = await simulator.start()
    try:
        yield base_url, settings.segmind_api_key or "simulated"
    finally:
        await simulator.stop()


# --- the whole run ------------------------------------------------------------------------------


async def diagnose(
    env: Mapping[str, str],
    *,
    simulate: bool | None,
    discord_checks: DiscordChecks,
    env_file_found: bool = True,
) -> list[Check]:
    """Every check in the checklist's order: settings, database, Discord, Segmind."""
    reading = read_settings(env, simulate=simulate, env_file_found=env_file_found)
    checks = list(reading.checks)
    settings = reading.settings
    if settings is None:
        return [*checks, Check.warning("Other checks", "not run: fix the settings first")]
    broken = reading.broken

    if "DATABASE_URL" in broken:
        checks.append(Check.warning("Database", "not checked: DATABASE_URL is invalid"))
    elif settings.database_url is not None:
        from services.doctor_postgres import check_postgres

        checks.append(await check_postgres(settings.database_url, settings.database_shown))
    else:
        checks.append(await check_database(settings.database_path))

    if "DISCORD_TOKEN" in broken:
        checks.append(Check.warning("Discord", "not checked: DISCORD_TOKEN is missing"))
    else:
        found = await discord_checks(settings)
        if "DISCORD_GUILD_ID" in broken:
            # Without it the commands were read globally, not where the bot would sync them.
            skipped = Check.warning("Commands", "not checked: fix DISCORD_GUILD_ID first")
            found = [skipped if check.name == "Commands" else check for check in found]
        checks.extend(found)

    segmind_broken = broken & {"SEGMIND_API_KEY", "SEGMIND_BASE_URL"}
    if segmind_broken:
        names = " and ".join(sorted(segmind_broken))
        checks.append(Check.warning("Segmind key", f"not checked: {names} must be fixed first"))
    else:
        async with segmind_target(settings) as (base_url, api_key), aiohttp.ClientSession() as s:
            checks.append(
                await check_segmind(
                    s, base_url=base_url, api_key=api_key, simulated=settings.simulate
                )
            )
    return checks


# --- the checklist ------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in text)


def render(checks: Sequence[Check]) -> str:
    """One line per check, the fix under each problem, and a last line that sums it up."""
    lines = []
    for check in checks:
        # Server, role and channel names are anyone's text: no line breaks or escape
        # sequences that would forge a line of this checklist or clear the screen.
        lines.append(
            f"{check.outcome.value:<4}  {_one_line(check.name)}: {_one_line(check.detail)}"
        )
        if check.fix:
            lines.append(f"      fix: {_one_line(check.fix)}")
    problems = sum(check.outcome is Outcome.PROBLEM for check in checks)
    warnings = sum(check.outcome is Outcome.WARNING for check in checks)
    if problems:
        counted = _count(problems, "problem") + (
            f" and {_count(warnings, 'warning')}" if warnings else ""
        )
        lines.append(f"{counted}: fix them, then run `python bot.py doctor` again.")
    elif warnings:
        lines.append(f"No problems; {_count(warnings, 'warning')} worth a look.")
    else:
        lines.append("All is well.")
    return "\n".join(lines)


def exit_code(checks: Sequence[Check]) -> int:
    """0 only when no check found a problem (warnings do not count)."""
    return EXIT_PROBLEMS if any(c.outcome is Outcome.PROBLEM for c in checks) else 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
