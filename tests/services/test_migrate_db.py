"""`bot.py migrate-db`: a whole database copied between SQLite and PostgreSQL, ids and all."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services import migrate_db
from services.app import only_process_using
from services.finish_estimate import Timing
from services.migrate_db import MigrationRefused, migrate
from services.models import GalleryMode, JobOrigin, JobState, VideoRequest
from services.periods import LimitSpec
from services.settings import Settings
from services.storage import NewJob, Storage, copy
from tests.postgres_server import PostgresServer

GUILD, MOD = 111, 2
ROOT = Path(__file__).resolve().parents[2]


def sqlite_settings(path: Path) -> Settings:
    return Settings(discord_token="t", segmind_api_key="k", database_path=path)


def postgres_settings(url: str) -> Settings:
    return Settings(discord_token="t", segmind_api_key="k", database_url=url)


def settings_for(location: Path | str) -> Settings:
    if isinstance(location, Path):
        return sqlite_settings(location)
    return postgres_settings(location)


def url_of(location: Path | str) -> str:
    return f"sqlite:///{location}" if isinstance(location, Path) else location


async def populate(storage: Storage) -> None:
    """A bot's worth of data: jobs in several states, limits and their history, and the rest."""
    jobs = []
    for number, prompt in enumerate(["a fox", "a cat", "a boat", "a tree", "a kite"]):
        request = VideoRequest.create(prompt, seed=number + 1)
        new = NewJob(GUILD, 20, 7 + number, request, created_at=100.0 + number, cost_usd=0.36)
        jobs.append(await storage.jobs.insert(new))
    done = dict(state=JobState.DELIVERED, request_id="req-1", finished_at=210.5)
    await storage.jobs.update(jobs[0].id, now=200.0, cost_usd=0.41, cost_reported=True, **done)
    await storage.jobs.update(jobs[1].id, now=201.0, state=JobState.FAILED, error="no credits")
    await storage.jobs.update(
        jobs[2].id, now=202.0, state=JobState.PROCESSING, request_id="req-3", submitted_at=150.0
    )
    await storage.jobs.update(jobs[4].id, now=203.0, state=JobState.CANCELLED, cancelled_by=MOD)
    for user, count in ((7, 3), (8, 4), (9, 5)):  # several batches of a two-column key
        spec = LimitSpec(count, 86400)
        await storage.limits.set_user_limit(GUILD, user, spec, actor_id=MOD, at=50.0)
    await storage.limits.set_role_limit(GUILD, 55, LimitSpec(10, 3600), actor_id=MOD, at=51.0)
    await storage.limits.update_guild_settings(
        GUILD, actor_id=MOD, at=52.0, action="cap", daily_clip_cap=40, monthly_budget_usd=12.5
    )
    await storage.blocklist.add(
        GUILD, "gore", actor_id=MOD, at=53.0, max_terms=50, same_as=lambda _: False
    )
    await storage.blocklist.add(
        GUILD, "spam", actor_id=MOD, at=53.5, max_terms=50, same_as=lambda _: False
    )
    await storage.blocklist.add(
        GUILD + 1, "gore", actor_id=MOD, at=53.6, max_terms=50, same_as=lambda _: False
    )
    await storage.blocklist.record_refusal(GUILD, 20, 9, "gore", at=54.0)
    await storage.channels.add(GUILD, 20, actor_id=MOD, now=55.0, most=25)
    await storage.gallery.set(GUILD, (30, GalleryMode.MANUAL), actor_id=MOD, now=56.0)
    assert await storage.gallery.claim(jobs[0].id, GUILD, 30, by=7, now=57.0)
    assert await storage.gallery.posted(jobs[0].id, 9000)
    origin = JobOrigin(guild_id=GUILD, channel_id=20, user_id=12, role_ids=(55,), private=False)
    held = await storage.approvals.hold(
        VideoRequest.create("a red fox", seed=4), origin, now=58.0, expires_at=3658.0
    )
    assert held is not None
    await storage.timings.add(Timing(50, 25, 12.0, 80.5), now=59.0)
    await storage.meta.set("command_schema:1:global", "abc123")


async def everything(storage: Storage) -> dict[str, Any]:
    """What the stores read back, and every table's rows as they are."""
    read: dict[str, Any] = {
        "jobs": [await storage.jobs.get(job_id) for job_id in range(1, 7)],
        "unfinished": await storage.jobs.unfinished(),
        "audit": await storage.limits.audit_log(GUILD, limit=100),
        "guild": await storage.limits.guild_settings(GUILD),
        "user_limits": await storage.limits.user_limits(GUILD),
        "role_limits": await storage.limits.role_limits(GUILD),
        "terms": await storage.blocklist.terms(GUILD),
        "refusals": await storage.blocklist.refusals(GUILD),
        "channels": await storage.channels.list(GUILD),
        "gallery": await storage.gallery.get(GUILD),
        "post": await storage.gallery.post_of(1),
        "held": await storage.approvals.get(1),
        "timings": await storage.timings.recent(),
        "meta": await storage.meta.get("command_schema:1:global"),
    }
    for table in await copy.tables(storage.db):
        read[table.name] = [
            tuple(row) async for rows in copy.batches(storage.db, table, 2) for row in rows
        ]
    return read


@pytest.fixture
async def sqlite_source(tmp_path: Path) -> Path:
    path = tmp_path / "bot.db"
    storage = await Storage.open(path)
    try:
        await populate(storage)
    finally:
        await storage.close()
    return path


async def read_all(location: Path | str) -> dict[str, Any]:
    storage = await Storage.open(location)
    try:
        return await everything(storage)
    finally:
        await storage.close()


async def test_a_populated_sqlite_file_reads_back_the_same_from_postgresql(
    sqlite_source: Path, postgres_server: PostgresServer
) -> None:
    target = await postgres_server.empty_database()
    copied = await migrate(sqlite_settings(sqlite_source), target, batch_rows=2)
    by_table = {entry.table: entry for entry in copied}
    assert by_table["jobs"].rows == 5 and by_table["jobs"].top_id == 5
    assert by_table["audit_log"].rows >= 4
    assert "schema_version" not in by_table and not any(t.startswith("sqlite_") for t in by_table)
    # Parents first: a post and a held request refer to their job.
    names = [entry.table for entry in copied]
    assert names.index("jobs") < names.index("gallery_posts")
    assert names.index("jobs") < names.index("approval_requests")
    assert await read_all(target) == await read_all(sqlite_source)


async def test_the_next_insert_on_postgresql_gets_a_new_id(
    sqlite_source: Path, postgres_server: PostgresServer
) -> None:
    target = await postgres_server.empty_database()
    await migrate(sqlite_settings(sqlite_source), target)
    storage = await Storage.open(target)
    try:
        job = await storage.jobs.insert(
            NewJob(GUILD, 20, 7, VideoRequest.create("a new one"), created_at=300.0)
        )
        entry = await storage.limits.audit(
            GUILD, actor_id=MOD, action="x", target="y", detail="", at=301.0
        )
        audited = await storage.limits.audit_log(GUILD, limit=100)
    finally:
        await storage.close()
    assert job.id == 6
    assert entry == max(item.id for item in audited)
    assert len({item.id for item in audited}) == len(audited)


async def test_postgresql_copies_back_to_sqlite(
    sqlite_source: Path, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    middle = await postgres_server.empty_database()
    await migrate(sqlite_settings(sqlite_source), middle)
    back = tmp_path / "back" / "bot.db"
    copied = await migrate(postgres_settings(middle), f"sqlite:///{back}")
    assert {entry.table: entry.rows for entry in copied}["jobs"] == 5
    assert await read_all(back) == await read_all(sqlite_source)
    storage = await Storage.open(back)
    try:
        job = await storage.jobs.insert(
            NewJob(GUILD, 20, 7, VideoRequest.create("next"), created_at=300.0)
        )
    finally:
        await storage.close()
    assert job.id == 6


async def test_a_target_holding_rows_is_refused_and_left_untouched(
    sqlite_source: Path, database_location: Path | str
) -> None:
    storage = await Storage.open(database_location)
    try:
        await storage.meta.set("mine", "keep me")
    finally:
        await storage.close()
    before = await read_all(database_location)
    with pytest.raises(MigrationRefused, match=r"already holds rows \(table meta\)"):
        await migrate(sqlite_settings(sqlite_source), url_of(database_location))
    assert await read_all(database_location) == before


async def test_the_source_itself_is_refused_as_a_target(
    sqlite_source: Path, database_location: Path | str
) -> None:
    await (await Storage.open(database_location)).close()
    with pytest.raises(MigrationRefused, match="is the database DATABASE_URL names"):
        await migrate(settings_for(database_location), url_of(database_location))
    with pytest.raises(MigrationRefused, match="is the database DATABASE_URL names"):
        await migrate(sqlite_settings(sqlite_source), f"sqlite:///{sqlite_source}")


async def test_a_source_file_that_does_not_exist_is_refused_not_created(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    missing = tmp_path / "typo.db"
    target = await postgres_server.empty_database()
    with pytest.raises(MigrationRefused, match=r"typo\.db does not exist"):
        await migrate(sqlite_settings(missing), target)
    assert not missing.exists()


async def test_a_running_bot_on_the_source_is_refused(
    sqlite_source: Path, postgres_server: PostgresServer
) -> None:
    target = await postgres_server.empty_database()
    with only_process_using(sqlite_source), pytest.raises(MigrationRefused, match="running"):
        await migrate(sqlite_settings(sqlite_source), target)
    source = await postgres_server.new_database()
    running = await Storage.open(source)
    try:
        assert await running.db.join_runners()
        with pytest.raises(MigrationRefused, match="a bot process is running on the source"):
            await migrate(postgres_settings(source), f"sqlite:///{sqlite_source}.copy")
    finally:
        await running.close()
    # Refused before a row moved: the target is still empty.
    storage = await Storage.open(target)
    try:
        assert await copy.first_filled(storage.db, ["jobs", "meta"]) is None
    finally:
        await storage.close()


async def test_a_wrong_password_is_one_line_without_the_password(
    sqlite_source: Path, postgres_server: PostgresServer
) -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{postgres_server.port}/no_such_database"
    out, err = io.StringIO(), io.StringIO()
    code = await migrate_db.run(sqlite_settings(sqlite_source), url, out=out, err=err)
    assert code == migrate_db.EXIT_REFUSED
    assert err.getvalue().count("\n") == 1 and "cannot be opened" in err.getvalue()
    assert "hunter2" not in err.getvalue() and "***" in err.getvalue()


async def test_a_target_that_is_not_a_database_url_is_refused(sqlite_source: Path) -> None:
    err = io.StringIO()
    code = await migrate_db.run(sqlite_settings(sqlite_source), "mysql://x/y", err=err)
    assert code == migrate_db.EXIT_REFUSED
    assert err.getvalue().startswith("Nothing was copied: TARGET_URL:")


def test_the_command_copies_and_prints_the_summary(
    sqlite_source: Path, postgres_server: PostgresServer
) -> None:
    import asyncio

    target = asyncio.run(postgres_server.empty_database())
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEGMIND")}
    env.update(DATABASE_URL=f"sqlite:///{sqlite_source}", DISCORD_TOKEN="", SEGMIND_API_KEY="")
    done = subprocess.run(
        [sys.executable, "bot.py", "migrate-db", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "every table's rows match" in done.stdout
    assert "  jobs" in done.stdout and "5 rows, highest id 5" in done.stdout
    again = subprocess.run(
        [sys.executable, "bot.py", "migrate-db", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "Traceback" not in again.stderr
    assert "already holds rows" in again.stderr


def test_settings_for_the_target_show_no_password(sqlite_source: Path) -> None:
    shown = migrate_db.target_settings(
        sqlite_settings(sqlite_source), "postgresql://bot:s3cret@db.example/videobot"
    ).database_shown
    assert "s3cret" not in shown and "db.example/videobot" in shown
    assert dataclasses.replace(sqlite_settings(sqlite_source)).database_url is None
