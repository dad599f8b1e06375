"""The doctor's checks that need no Discord: settings, database, Segmind key, the checklist."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from services import doctor
from services.doctor import (
    Check,
    Outcome,
    check_database,
    check_segmind,
    diagnose,
    exit_code,
    read_settings,
    render,
    segmind_target,
)
from services.doctor_postgres import _refused, check_postgres
from services.settings import load_settings
from services.storage import Storage
from services.storage.database import migrations


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as opened:
        yield opened


# --- database ---------------------------------------------------------------------------------


async def test_a_missing_database_is_fine_and_is_not_created(tmp_path):
    path = tmp_path / "data" / "bot.db"
    check = await check_database(path)
    assert check.outcome is Outcome.OK
    assert check.detail.endswith("does not exist yet: it will be created at first start")
    assert not path.exists() and not path.parent.exists()


async def test_a_migrated_database_is_current_and_writable(tmp_path):
    path = tmp_path / "bot.db"
    storage = await Storage.open(path)
    await storage.close()
    check = await check_database(path)
    assert check.outcome is Outcome.OK
    assert check.detail == f"{path} opens, schema current (version {len(migrations())}), writable"


async def test_an_older_schema_is_a_warning_and_is_left_as_it_was(tmp_path):
    path = tmp_path / "bot.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 1")
    check = await check_database(path)
    assert check.outcome is Outcome.WARNING
    assert f"schema version 1 of {len(migrations())}: the next start applies" in check.detail
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


async def test_a_newer_schema_is_a_problem(tmp_path):
    path = tmp_path / "bot.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    check = await check_database(path)
    assert check.outcome is Outcome.PROBLEM
    assert "newer than this bot knows" in check.detail
    assert check.fix == "update the bot, or point DATABASE_URL at another database"


async def test_a_file_that_is_not_a_database_is_a_problem(tmp_path):
    path = tmp_path / "bot.db"
    path.write_text("not a database " * 100)
    check = await check_database(path)
    assert check.outcome is Outcome.PROBLEM
    assert "is not a SQLite database" in check.detail


async def test_damaged_pages_behind_a_sound_header_are_reported_corrupt(tmp_path):
    path = tmp_path / "bot.db"
    storage = await Storage.open(path)
    await storage.close()
    with path.open("r+b") as file:  # keep the 100-byte header and page 1, wreck the rest
        file.seek(4096)
        file.write(b"\xa5" * (path.stat().st_size - 4096))
    check = await check_database(path)
    assert check.outcome is Outcome.PROBLEM
    assert "is corrupt" in check.detail
    assert check.fix == doctor.CORRUPT_FIX


async def test_a_sync_is_recorded_only_under_its_meta_key_and_nothing_is_created(tmp_path):
    path = tmp_path / "bot.db"
    assert not doctor.sync_recorded(path, "command_schema:1:global")
    assert not path.exists()
    storage = await Storage.open(path)
    await storage.meta.set("command_schema:1:global", "digest")
    await storage.close()
    assert doctor.sync_recorded(path, "command_schema:1:global")
    assert not doctor.sync_recorded(path, "command_schema:1:42")


async def test_a_database_busy_with_a_write_is_waited_for_then_left_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "BUSY_TIMEOUT_SECONDS", 0.05)
    path = tmp_path / "bot.db"
    storage = await Storage.open(path)
    await storage.close()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO meta (key, value) VALUES ('held', 'yes')")
        check = await check_database(path)
        holder.execute("COMMIT")  # the other writer's transaction was not disturbed
    finally:
        holder.close()
    assert check.outcome is Outcome.WARNING
    assert "stayed busy" in check.detail
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'held'").fetchone() == ("yes",)


# --- database on a PostgreSQL server ------------------------------------------------------------


async def test_a_migrated_server_database_is_current(postgres_server):
    url = await postgres_server.new_database()
    check = await check_postgres(url, "db")
    assert check == Check.ok(
        "Database", f"db answers, schema current (version {len(migrations())})"
    )


async def test_an_empty_server_database_is_fine_and_left_empty(postgres_server):
    url = await postgres_server.empty_database()
    check = await check_postgres(url, "db")
    assert check.outcome is Outcome.OK and "the bot creates its tables at start" in check.detail
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT to_regclass('schema_version')") is None
    finally:
        await conn.close()


async def test_an_older_server_schema_is_a_warning_that_the_bot_migrates_it(postgres_server):
    url = await postgres_server.empty_database()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
        await conn.execute("INSERT INTO schema_version VALUES (1)")
        check = await check_postgres(url, "db")
        assert await conn.fetchval("SELECT MAX(version) FROM schema_version") == 1
        await conn.execute("INSERT INTO schema_version VALUES (99)")
        newer = await check_postgres(url, "db")
    finally:
        await conn.close()
    assert check.outcome is Outcome.WARNING
    assert f"schema version 1 of {len(migrations())}: the next start applies" in check.detail
    assert newer.outcome is Outcome.PROBLEM and "newer than this bot knows" in newer.detail
    assert newer.fix == "update the bot, or point DATABASE_URL at another database"


async def test_a_server_that_is_down_says_to_start_it():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check = await check_postgres(f"postgresql://bot:pw@127.0.0.1:{port}/videobot", "db")
    assert check.outcome is Outcome.PROBLEM
    assert check.detail.startswith("db cannot be reached")
    assert check.fix == "start PostgreSQL, or correct the host and port in DATABASE_URL"


async def test_a_missing_server_database_says_how_to_create_it(postgres_server):
    check = await check_postgres(postgres_server.dsn("nowhere"), "db")
    assert check.outcome is Outcome.PROBLEM
    assert check.detail == "db: the server has no database nowhere"
    assert check.fix.startswith("create it (createdb nowhere, or CREATE DATABASE nowhere)")


async def test_a_user_the_server_refuses_never_shows_the_password(postgres_server):
    url = f"postgresql://stranger:hunter2@127.0.0.1:{postgres_server.port}/postgres"
    check = await check_postgres(url, "postgresql://stranger:***@127.0.0.1/postgres")
    assert check.outcome is Outcome.PROBLEM
    assert "does not let the user in" in check.detail
    assert "hunter2" not in render([check])


def test_a_wrong_password_says_to_correct_it_and_never_shows_it():
    error = asyncpg.InvalidPasswordError('password authentication failed for user "bot"')
    check = _refused(error, "postgresql://bot:hunter2@db.example/videobot", "shown")
    assert check == Check.problem(
        "Database",
        "shown refused the password for its user",
        "correct the password in DATABASE_URL (postgresql://user:password@host/database)",
    )


async def test_the_doctor_checks_the_server_database_url_names(postgres_server, tmp_path):
    url = await postgres_server.new_database()

    async def discord_checks(settings):
        return []

    env = {"DISCORD_TOKEN": "t", "DATABASE_URL": url}
    checks = await diagnose(env, simulate=True, discord_checks=discord_checks)
    [database] = [check for check in checks if check.name == "Database"]
    assert database.outcome is Outcome.OK and "schema current" in database.detail


async def test_a_sync_recorded_on_the_server_is_found_under_its_key(postgres_server):
    url = await postgres_server.new_database()
    settings = load_settings({"DATABASE_URL": url}, simulate=True, need_discord=False)
    assert not await doctor.sync_was_recorded(settings, "command_schema:1:global")
    storage = await Storage.open(url)
    await storage.meta.set("command_schema:1:global", "digest")
    await storage.close()
    assert await doctor.sync_was_recorded(settings, "command_schema:1:global")
    assert not await doctor.sync_was_recorded(settings, "command_schema:1:42")
    empty = await postgres_server.empty_database()
    bare = load_settings({"DATABASE_URL": empty}, simulate=True, need_discord=False)
    assert not await doctor.sync_was_recorded(bare, "command_schema:1:global")


async def test_a_sync_recorded_in_the_sqlite_file_is_found_through_the_settings(tmp_path):
    path = tmp_path / "bot.db"
    settings = load_settings(
        {"DATABASE_URL": f"sqlite:///{path}"}, simulate=True, need_discord=False
    )
    assert not await doctor.sync_was_recorded(settings, "command_schema:1:global")
    storage = await Storage.open(path)
    await storage.meta.set("command_schema:1:global", "digest")
    await storage.close()
    assert await doctor.sync_was_recorded(settings, "command_schema:1:global")


# --- Segmind ----------------------------------------------------------------------------------


async def test_a_good_key_is_accepted_with_one_status_request_and_no_submit(
    session, simulator, segmind_api_key
):
    check = await check_segmind(session, base_url=simulator.base_url, api_key=segmind_api_key)
    assert check.outcome is Outcome.OK
    assert check.detail == f"accepted by {simulator.base_url} (checked at no cost)"
    [call] = simulator.calls
    assert call.route == "status" and call.path.startswith("/v2/requests/doctor-")
    assert simulator.submit_attempts == 0


async def test_a_bad_key_is_refused_with_the_fix(session, simulator):
    check = await check_segmind(session, base_url=simulator.base_url, api_key="sg-wrong-key")
    assert check.outcome is Outcome.PROBLEM
    assert check.detail == f"refused by {simulator.base_url} (HTTP 401)"
    assert check.fix == doctor.KEY_FIX
    assert "sg-wrong-key" not in render([check])


async def test_an_unreachable_segmind_is_a_problem(session):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check = await check_segmind(session, base_url=f"http://127.0.0.1:{port}", api_key="sg-key")
    assert check.outcome is Outcome.PROBLEM
    assert "could not be reached" in check.detail
    assert "SEGMIND_BASE_URL" in (check.fix or "")


async def test_an_answer_that_proves_nothing_is_a_problem_not_a_pass(
    session, simulator, segmind_api_key
):
    simulator.inject("status", status=503, body="<html>Service Unavailable</html>")
    check = await check_segmind(session, base_url=simulator.base_url, api_key=segmind_api_key)
    assert check.outcome is Outcome.PROBLEM
    assert "cannot tell whether the key is accepted" in check.detail and "HTTP 503" in check.detail


async def test_an_html_404_from_a_wrong_base_url_does_not_pass_the_key(
    session, simulator, segmind_api_key
):
    simulator.inject("status", status=404, body="<html>Not Found</html>")
    check = await check_segmind(session, base_url=simulator.base_url, api_key=segmind_api_key)
    assert check.outcome is Outcome.PROBLEM
    assert check.detail.startswith("cannot tell whether the key is accepted")
    assert "SEGMIND_BASE_URL" in (check.fix or "")


async def test_a_control_character_in_the_key_is_a_line_not_a_traceback(session, simulator):
    check = await check_segmind(session, base_url=simulator.base_url, api_key="sg-key\x01x")
    assert check.outcome is Outcome.PROBLEM
    assert check.detail == "SEGMIND_API_KEY contains an invisible character: paste it again"
    assert simulator.calls == []


async def test_simulate_checks_against_a_simulator_started_for_the_doctor(session):
    settings = load_settings({"DISCORD_TOKEN": "t"}, simulate=True)
    async with segmind_target(settings) as (base_url, api_key):
        assert base_url.startswith("http://127.0.0.1:")
        check = await check_segmind(session, base_url=base_url, api_key=api_key, simulated=True)
    assert check.outcome is Outcome.OK
    assert check.detail == f"the simulator at {base_url} answers (no key, no cost)"


# --- settings and the whole run -------------------------------------------------------------


def test_every_settings_problem_is_its_own_line_and_the_valid_rest_is_kept(tmp_path):
    env = {
        "DISCORD_TOKEN": "t",
        "SEGMIND_API_KEY": "k",
        "MAX_CONCURRENT_JOBS": "0",
        "POLL_INTERVAL_SECONDS": "soon",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
    }
    reading = read_settings(env, simulate=None)
    assert [check.outcome for check in reading.checks] == [Outcome.PROBLEM, Outcome.PROBLEM]
    assert reading.checks[0].detail.startswith("MAX_CONCURRENT_JOBS='0' is invalid")
    assert reading.broken == {"MAX_CONCURRENT_JOBS", "POLL_INTERVAL_SECONDS"}
    assert reading.settings is not None
    assert reading.settings.database_path == tmp_path / "x.db"
    assert reading.settings.discord_token == "t"


async def test_missing_token_and_key_skip_their_checks_but_not_the_others(tmp_path):
    called = []

    async def discord_checks(settings):
        called.append(settings)
        return []

    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}"}
    checks = await diagnose(env, simulate=None, discord_checks=discord_checks)
    by_name = {check.name: check for check in checks if check.name != "Settings"}
    assert called == []
    assert by_name["Discord"].detail == "not checked: DISCORD_TOKEN is missing"
    assert by_name["Segmind key"].detail == "not checked: SEGMIND_API_KEY must be fixed first"
    assert by_name["Database"].outcome is Outcome.OK
    assert exit_code(checks) == 1


def test_a_missing_value_says_to_add_it_and_without_a_env_file_where_from():
    env = {"SEGMIND_API_KEY": "k", "MAX_CONCURRENT_JOBS": "0"}
    without = read_settings(env, simulate=None, env_file_found=False).checks
    fixes = {check.detail.split(" ")[0]: check.fix for check in without}
    assert fixes["DISCORD_TOKEN"] == "add DISCORD_TOKEN=… to .env (copy .env.example to .env first)"
    assert fixes["MAX_CONCURRENT_JOBS='0'"] == "change it in .env or the environment"
    [with_file, _] = read_settings(env, simulate=None).checks
    assert with_file.fix == "add DISCORD_TOKEN=… to .env"


async def test_an_invalid_guild_id_leaves_the_commands_unchecked_not_failed(tmp_path):
    async def discord_checks(settings):
        return [Check.problem("Commands", "not synced globally", "sync")]

    env = {
        "DISCORD_TOKEN": "t",
        "DISCORD_GUILD_ID": "not-a-number",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
    }
    checks = await diagnose(env, simulate=True, discord_checks=discord_checks)
    [commands] = [check for check in checks if check.name == "Commands"]
    assert commands == Check.warning("Commands", "not checked: fix DISCORD_GUILD_ID first")


def test_render_puts_the_fix_under_its_problem_and_counts():
    checks = [
        Check.ok("Settings", "all valid"),
        Check.problem("Segmind key", "refused", "copy it again"),
        Check.warning("Database", "schema behind"),
    ]
    assert render(checks).splitlines() == [
        "ok    Settings: all valid",
        "FAIL  Segmind key: refused",
        "      fix: copy it again",
        "warn  Database: schema behind",
        "1 problem and 1 warning: fix them, then run `python bot.py doctor` again.",
    ]
    assert exit_code(checks) == 1


def test_warnings_alone_exit_0():
    checks = [Check.ok("Settings", "all valid"), Check.warning("Database", "schema behind")]
    assert exit_code(checks) == 0
    assert render(checks).endswith("No problems; 1 warning worth a look.")


def test_the_checks_module_speaks_no_discord():
    source = Path(doctor.__file__).read_text()
    assert "import discord" not in source and "from discord" not in source


async def test_a_password_in_the_segmind_url_is_never_shown(session, simulator):
    with_password = simulator.base_url.replace("http://", "http://alice:S3cretPassw0rd@")
    check = await check_segmind(session, base_url=with_password, api_key="sg-wrong-key")
    assert check.outcome is Outcome.PROBLEM
    assert "S3cretPassw0rd" not in render([check]) and "alice" not in render([check])
    assert simulator.base_url.removeprefix("http://") in check.detail


def test_names_from_discord_cannot_forge_a_line_or_send_escape_codes():
    forged = 'x" (1)\nok    Commands: all synced\n\x1b[2J\u202eok'
    report = render([Check.problem(f"Server {forged}", f"no Embed Links in #{forged}", "give it")])
    assert "\x1b" not in report and "\u202e" not in report
    assert "\nok    Commands" not in report
    assert len(report.splitlines()) == 3  # the line, its fix, the sum
