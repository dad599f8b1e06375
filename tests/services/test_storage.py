"""Storage on both engines (reopen, audit, jobs), and SQLite's own file, WAL and migrations."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from services.errors import ValidationError
from services.models import (
    NEGATIVE_PROMPT_MAX,
    PROMPT_MAX,
    AuditChange,
    JobState,
    VideoRequest,
)
from services.periods import LimitSpec
from services.storage import NewJob, Storage, job_totals
from services.storage.database import DATABASE_ERRORS, migrations
from services.storage.jobs import stored_request
from services.storage.limits import read_audit_detail

GUILD = 111
DAY = 86400

OLD_REQUEST_JSON = (
    '{"prompt": "old job", "seed": 3, "negative_prompt": "", "input_frames": 49,'
    ' "steps": 45, "guidance_scale": 6, "frame_rate": 8}'
)
TABLES_0002 = {"guild_settings", "user_limits", "role_limits", "audit_log", "alerts_sent"}


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row[0] for row in rows}


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def _new_job(user_id: int = 7, created_at: float = 1000.0) -> NewJob:
    return NewJob(
        guild_id=GUILD,
        channel_id=5,
        user_id=user_id,
        request=VideoRequest.create("a cat on a skateboard", seed=1),
        created_at=created_at,
    )


async def test_migrates_an_empty_file_to_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "bot.db"  # directories are created
    storage = await Storage.open(path)
    try:
        assert await storage.db.schema_version() == len(migrations()) >= 2
    finally:
        await storage.close()
    assert TABLES_0002 | {"jobs", "meta"} <= _tables(path)
    assert _user_version(path) == len(migrations())


async def test_database_runs_in_wal_mode(tmp_path: Path) -> None:
    storage = await Storage.open(tmp_path / "bot.db")
    try:
        row = await storage.db.fetchone("PRAGMA journal_mode")
        assert row is not None and row[0].lower() == "wal"
    finally:
        await storage.close()


async def test_migrates_from_0001_and_keeps_jobs(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    version, sql_0001 = migrations()[0]
    assert version == 1
    with sqlite3.connect(path) as conn:
        conn.executescript(sql_0001 + "\nPRAGMA user_version = 1;")
        conn.execute(
            "INSERT INTO jobs (guild_id, channel_id, user_id, request_json, state, created_at,"
            " updated_at, request_id, cost_usd)"
            " VALUES (?, 5, 7, ?, 'delivered', 1000, 1000, 'r-1', 0.36)",
            (GUILD, OLD_REQUEST_JSON),
        )
    assert not (TABLES_0002 & _tables(path))

    storage = await Storage.open(path)
    try:
        assert await storage.db.schema_version() == len(migrations())
        job = await storage.jobs.get(1)
        assert job is not None and job.request.prompt == "old job" and job.cost_usd == 0.36
        assert await storage.jobs.guild_counted(GUILD, 0) == (1, 0.36)
        # The new tables work on the migrated file.
        await storage.limits.set_user_limit(GUILD, 7, LimitSpec(2, DAY), actor_id=9, at=2000.0)
        assert (await storage.limits.user_limit(GUILD, 7)).spec == LimitSpec(2, DAY)
    finally:
        await storage.close()
    assert _tables(path) >= TABLES_0002


async def test_reopen_keeps_limits_settings_audit_and_jobs(database_location: Path | str) -> None:
    storage = await Storage.open(database_location)
    try:
        await storage.jobs.insert(_new_job())
        await storage.limits.set_user_limit(GUILD, 7, LimitSpec(3, DAY), actor_id=9, at=10.0)
        await storage.limits.set_role_limit(GUILD, 55, LimitSpec(10, 3600), actor_id=9, at=11.0)
        await storage.limits.update_guild_settings(
            GUILD,
            actor_id=9,
            at=12.0,
            action="set_budget",
            daily_clip_cap=20,
            monthly_budget_usd=50.0,
        )
        assert await storage.limits.mark_alert_sent(GUILD, "budget:daily:x", at=13.0)
    finally:
        await storage.close()

    storage = await Storage.open(database_location)
    try:
        assert await storage.db.schema_version() == len(migrations())
        assert len(await storage.jobs.recent(GUILD)) == 1
        assert (await storage.limits.user_limit(GUILD, 7)).spec == LimitSpec(3, DAY)
        roles = await storage.limits.role_limits(GUILD, [55, 56])
        assert [(r.target_id, r.spec) for r in roles] == [(55, LimitSpec(10, 3600))]
        settings = await storage.limits.guild_settings(GUILD)
        assert (settings.daily_clip_cap, settings.monthly_budget_usd) == (20, 50.0)
        assert settings.default_limit is None
        assert not await storage.limits.mark_alert_sent(GUILD, "budget:daily:x", at=14.0)
        actions = [e.action for e in await storage.limits.audit_log(GUILD)]
        assert actions == ["set_budget", "set_role_limit", "set_user_limit"]
    finally:
        await storage.close()


async def test_every_change_is_audited_with_who_what_when(database_location: Path | str) -> None:
    storage = await Storage.open(database_location)
    try:
        limits = storage.limits
        await limits.set_user_limit(GUILD, 7, LimitSpec(3, DAY), actor_id=9, at=10.0)
        await limits.set_user_limit(GUILD, 7, LimitSpec(0, DAY), actor_id=8, at=11.0)
        await limits.clear_user_limit(GUILD, 7, actor_id=8, at=12.0)
        await limits.set_role_limit(GUILD, 55, LimitSpec(1, 3600), actor_id=9, at=13.0)
        await limits.clear_role_limit(GUILD, 55, actor_id=9, at=14.0)
        await limits.update_guild_settings(
            GUILD, actor_id=9, at=15.0, action="set_moderator_role", moderator_role_id=77
        )
        entries = list(reversed(await limits.audit_log(GUILD)))
        assert [(e.actor_id, e.action, e.target, e.detail, e.at) for e in entries] == [
            (9, "set_user_limit", "user:7", "unset -> 3/1d", 10.0),
            (8, "set_user_limit", "user:7", "3/1d -> 0/1d", 11.0),
            (8, "clear_user_limit", "user:7", "0/1d -> unset", 12.0),
            (9, "set_role_limit", "role:55", "unset -> 1/1h", 13.0),
            (9, "clear_role_limit", "role:55", "1/1h -> unset", 14.0),
            (9, "set_moderator_role", "server", "moderator_role_id: unset -> 77", 15.0),
        ]
        assert await limits.audit_log(GUILD + 1) == []
    finally:
        await storage.close()


async def test_a_change_that_changes_nothing_is_not_audited(database_location: Path | str) -> None:
    storage = await Storage.open(database_location)
    try:
        limits = storage.limits
        assert await limits.clear_user_limit(GUILD, 7, actor_id=9, at=1.0) is None
        assert await limits.clear_role_limit(GUILD, 55, actor_id=9, at=2.0) is None
        await limits.update_guild_settings(
            GUILD,
            actor_id=9,
            at=3.0,
            action="clear_server_default",
            default_count=None,
            default_period_seconds=None,
        )
        await limits.update_guild_settings(
            GUILD, actor_id=9, at=4.0, action="set_alert_channel", alert_channel_id=None
        )
        assert await limits.audit_log(GUILD) == []

        await limits.set_user_limit(GUILD, 7, LimitSpec(3, DAY), actor_id=9, at=5.0)
        await limits.set_user_limit(GUILD, 7, LimitSpec(3, DAY), actor_id=8, at=6.0)
        assert (await limits.user_limit(GUILD, 7)).set_by == 9  # the one who really set it
        await limits.update_guild_settings(
            GUILD, actor_id=9, at=7.0, action="set_budget", daily_clip_cap=20
        )
        await limits.update_guild_settings(
            GUILD,
            actor_id=9,
            at=8.0,
            action="set_budget",
            daily_clip_cap=20,
            monthly_budget_usd=50.0,
        )
        entries = list(reversed(await limits.audit_log(GUILD)))
        assert [(e.action, e.detail) for e in entries] == [
            ("set_user_limit", "unset -> 3/1d"),
            ("set_budget", "daily_clip_cap: unset -> 20"),
            ("set_budget", "monthly_budget_usd: unset -> 50.0"),  # the cap was already 20
        ]
    finally:
        await storage.close()


async def test_a_default_whose_period_alone_changes_is_recorded_whole(
    database_location: Path | str,
) -> None:
    storage = await Storage.open(database_location)
    try:
        for at, period in ((1.0, DAY), (2.0, 7 * DAY)):
            await storage.limits.update_guild_settings(
                GUILD,
                actor_id=9,
                at=at,
                action="set_server_default",
                default_count=5,
                default_period_seconds=period,
            )
        [latest, _] = await storage.limits.audit_log(GUILD)
        assert latest.detail == "default: 5/1d -> 5/1w"
        assert (await storage.limits.guild_settings(GUILD)).default_limit == LimitSpec(5, 7 * DAY)
    finally:
        await storage.close()


@pytest.mark.parametrize(
    ("target", "detail", "changes"),
    [
        ("user:7", "unset -> 3/1d", (AuditChange("limit", None, LimitSpec(3, DAY)),)),
        ("role:55", "1/1h -> unset", (AuditChange("limit", LimitSpec(1, 3600), None),)),
        ("server", "default: unset -> unset", (AuditChange("default", None, None),)),
        (
            "server",
            "daily_clip_cap: unset -> 20, monthly_budget_usd: 50.0 -> 12.5",
            (
                AuditChange("daily_clip_cap", None, 20),
                AuditChange("monthly_budget_usd", 50.0, 12.5),
            ),
        ),
        (
            "server",
            "alert_channel_id: unset -> 1576243369028485134",
            (AuditChange("alert_channel_id", None, 1576243369028485134),),
        ),
        ("server", "moderator_role_id: 77 -> unset", (AuditChange("moderator_role_id", 77, None),)),
        ("server", "something else entirely", None),
        ("user:7", "3 per day", None),
    ],
)
def test_stored_audit_details_read_back_as_changes(
    target: str, detail: str, changes: tuple[AuditChange, ...] | None
) -> None:
    # The detail format has not changed since the first release: old rows read the same way.
    assert read_audit_detail(target, detail) == changes


async def test_a_failed_change_leaves_no_audit_entry(database_location: Path | str) -> None:
    storage = await Storage.open(database_location)
    try:
        with pytest.raises(DATABASE_ERRORS):
            # count < 0 violates the table's CHECK: the change and its audit roll back together.
            await storage.limits.set_user_limit(GUILD, 7, LimitSpec(-1, DAY), actor_id=9, at=1.0)
        assert await storage.limits.user_limit(GUILD, 7) is None
        assert await storage.limits.audit_log(GUILD) == []
    finally:
        await storage.close()


async def test_limits_are_per_server(database_location: Path | str) -> None:
    storage = await Storage.open(database_location)
    try:
        await storage.limits.set_user_limit(GUILD, 7, LimitSpec(3, DAY), actor_id=9, at=1.0)
        await storage.limits.set_role_limit(GUILD, 55, LimitSpec(3, DAY), actor_id=9, at=1.0)
        assert await storage.limits.user_limit(GUILD + 1, 7) is None
        assert await storage.limits.role_limits(GUILD + 1, [55]) == []
        assert (await storage.limits.guild_settings(GUILD + 1)).default_limit is None
    finally:
        await storage.close()


async def test_unknown_server_setting_is_rejected(database_location: Path | str) -> None:
    storage = await Storage.open(database_location)
    try:
        with pytest.raises(ValueError, match="not a server setting"):
            await storage.limits.update_guild_settings(
                GUILD, actor_id=1, at=1.0, action="x", evil=1
            )
    finally:
        await storage.close()


async def test_a_write_cancelled_while_waiting_for_the_file_lock_leaves_no_open_transaction(
    tmp_path: Path,
) -> None:
    """A member's Cancel or a shutdown can land while BEGIN waits on another process's lock."""
    storage = await Storage.open(tmp_path / "bot.db")
    other = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # e.g. `bot.py generate` or a backup holding the lock
        write = asyncio.create_task(storage.jobs.insert(_new_job()))
        async with asyncio.timeout(5):
            while not storage.db._lock.locked():  # BEGIN is queued in the same step
                await asyncio.sleep(0)
        write.cancel()
        other.execute("COMMIT")  # the cancelled BEGIN now succeeds on aiosqlite's thread
        with pytest.raises(asyncio.CancelledError):
            await write

        job = await storage.jobs.insert(_new_job(user_id=8))
        assert (await storage.jobs.get(job.id)).user_id == 8
    finally:
        other.close()
        await storage.close()


async def test_a_durable_write_is_synced_and_others_stay_cheap(tmp_path: Path) -> None:
    """The 'submitting' mark must survive a power cut; everyday writes need not pay for it."""
    storage = await Storage.open(tmp_path / "bot.db")
    full, normal = 2, 1  # SQLite's values for PRAGMA synchronous
    try:
        assert (await storage.db.fetchone("PRAGMA synchronous"))[0] == normal
        async with storage.db.transaction(durable=True) as tx:
            assert (await tx.fetchone("PRAGMA synchronous"))[0] == full
        assert (await storage.db.fetchone("PRAGMA synchronous"))[0] == normal
        job = await storage.jobs.insert(_new_job())
        marked = await storage.jobs.update(job.id, now=2.0, state="submitting", durable=True)
        assert marked.state.value == "submitting"
        assert (await storage.db.fetchone("PRAGMA synchronous"))[0] == normal
    finally:
        await storage.close()


async def test_an_everyday_write_is_one_statement(database_location: Path | str) -> None:
    """Each statement is a trip to aiosqlite's thread; a job's updates are the busiest writes."""
    storage = await Storage.open(database_location)
    statements: list[str] = []
    try:
        job = await storage.jobs.insert(_new_job())
        await storage.db.trace(statements.append)
        updated = await storage.jobs.update(job.id, now=2.0, state="processing", message_id=9)
        changed = await storage.db.execute(
            "UPDATE jobs SET cost_usd = 0.36 WHERE id = ?", (job.id,)
        )
        await storage.db.trace(None)
        assert len(statements) == 2  # no BEGIN, COMMIT or read-back around either
        assert (updated.state.value, updated.message_id) == ("processing", 9)
        assert changed == 1 and (await storage.jobs.get(job.id)).cost_usd == 0.36
        with pytest.raises(LookupError):
            await storage.jobs.update(job.id + 1, now=3.0, state="failed")
    finally:
        await storage.close()


# --- the same clip, asked again (issue 12.4) -----------------------------------------------


async def _delivered(storage: Storage, new: NewJob, **fields: object) -> int:
    job = await storage.jobs.insert(new)
    changes = {"state": JobState.DELIVERED, "result_message_id": 900 + job.id, **fields}
    await storage.jobs.update(job.id, now=new.created_at, **changes)
    return job.id


async def test_delivered_request_lookup_matches_the_whole_request(
    database_location: Path | str,
) -> None:
    storage = await Storage.open(database_location)
    try:
        # Non-ASCII text and a whole-number guidance scale: stored and sought the same way.
        request = VideoRequest.create("un chat sur un toit, é 🐈", seed=9, guidance_scale=6)
        job_id = await _delivered(storage, replace(_new_job(), request=request))
        same = VideoRequest.create("un chat sur un toit, é 🐈", seed=9, guidance_scale=6.0)
        found = await storage.jobs.delivered_with_request(GUILD, same, viewer_id=1)
        assert [job.id for job in found] == [job_id]
        for other in (
            same.with_seed(10),
            replace(same, negative_prompt="fog"),
            replace(same, steps=30),
            replace(same, prompt="un chat sur un toit"),
        ):
            assert await storage.jobs.delivered_with_request(GUILD, other, viewer_id=1) == []
        assert await storage.jobs.delivered_with_request(GUILD + 1, same, viewer_id=1) == []
    finally:
        await storage.close()


@pytest.mark.parametrize(
    "state", [s for s in JobState if s is not JobState.DELIVERED], ids=lambda s: s.value
)
async def test_only_delivered_clips_are_offered_again(
    database_location: Path | str, state: JobState
) -> None:
    storage = await Storage.open(database_location)
    try:
        new = _new_job()
        await _delivered(storage, new, state=state)
        assert await storage.jobs.delivered_with_request(GUILD, new.request, viewer_id=1) == []
    finally:
        await storage.close()


async def test_a_private_clip_is_found_only_for_its_requester_until_shared(
    database_location: Path | str,
) -> None:
    storage = await Storage.open(database_location)
    try:
        new = replace(_new_job(user_id=7), private=True)
        job_id = await _delivered(storage, new)
        jobs = storage.jobs
        assert await jobs.delivered_with_request(GUILD, new.request, viewer_id=8) == []
        assert [j.id for j in await jobs.delivered_with_request(GUILD, new.request, viewer_id=7)]
        await jobs.update(job_id, now=2000.0, shared_message_id=555)
        assert [j.id for j in await jobs.delivered_with_request(GUILD, new.request, viewer_id=8)]
    finally:
        await storage.close()


async def test_the_delivered_request_lookup_reads_an_index_not_every_job(tmp_path: Path) -> None:
    """It runs inside the database's one lock: a scan of every prompt would stall the bot."""
    storage = await Storage.open(tmp_path / "bot.db")
    try:
        statements: list[str] = []
        await storage.db.trace(statements.append)
        await storage.jobs.delivered_with_request(GUILD, _new_job().request, viewer_id=1)
        await storage.db.trace(None)
        [lookup] = [sql for sql in statements if "request_json" in sql]
        rows = await storage.db.fetchall("EXPLAIN QUERY PLAN " + lookup)
        plans = [row[3] for row in rows]
        # The prefix too, not only the server: a busy server has many delivered clips.
        index = "USING INDEX jobs_delivered_request (guild_id=? AND <expr>=?)"
        assert any(index in plan for plan in plans), plans
    finally:
        await storage.close()


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "sqlite-before-3.35"])
async def test_an_update_returns_the_job_as_stored_with_or_without_returning(
    database_location: Path | str, returning: bool
) -> None:
    storage = await Storage.open(database_location)
    storage.jobs.returning = returning
    try:
        job = await storage.jobs.insert(_new_job())
        statements: list[str] = []
        await storage.db.trace(statements.append)
        updated = await storage.jobs.update(job.id, now=2.0, state="submitting", durable=True)
        await storage.db.trace(None)
        assert any("RETURNING" in sql for sql in statements) == returning
        assert updated == await storage.jobs.get(job.id)
        assert updated.state.value == "submitting"
        with pytest.raises(LookupError):
            await storage.jobs.update(job.id + 1, now=3.0, state="failed")
    finally:
        await storage.close()


# --- a deleted post is not offered again (issue 12 review) ---------------------------------


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "sqlite-before-3.35"])
async def test_a_deleted_post_is_recorded_on_the_post_it_was(
    database_location: Path | str, returning: bool
) -> None:
    storage = await Storage.open(database_location)
    storage.jobs.returning = returning
    try:
        job_id = await _delivered(storage, replace(_new_job(), private=True))
        await storage.jobs.update(job_id, now=2000.0, shared_message_id=555)

        unrelated = await storage.jobs.mark_post_deleted(job_id, 1, now=3000.0)
        shared = await storage.jobs.mark_post_deleted(job_id, 555, now=4000.0)
        result = await storage.jobs.mark_post_deleted(job_id, 900 + job_id, now=5000.0)

        assert unrelated is not None and shared is not None and result is not None
        assert (unrelated.result_deleted_at, unrelated.shared_deleted_at) == (None, None)
        assert (shared.result_deleted_at, shared.shared_deleted_at) == (None, 4000.0)
        assert (result.result_deleted_at, result.shared_deleted_at) == (5000.0, 4000.0)
        assert await storage.jobs.get(job_id) == result
        assert await storage.jobs.mark_post_deleted(job_id + 1, 555, now=6000.0) is None
    finally:
        await storage.close()


async def test_a_clip_whose_post_was_deleted_is_not_found_by_others(
    database_location: Path | str,
) -> None:
    storage = await Storage.open(database_location)
    try:
        jobs = storage.jobs
        public = await _delivered(storage, _new_job(user_id=7))
        private = await _delivered(storage, replace(_new_job(user_id=7), private=True))
        await jobs.update(private, now=2000.0, shared_message_id=555)
        request = _new_job().request
        assert [j.id for j in await jobs.delivered_with_request(GUILD, request, viewer_id=8)] == [
            private,
            public,
        ]

        await jobs.mark_post_deleted(public, 900 + public, now=3000.0)
        await jobs.mark_post_deleted(private, 555, now=3000.0)

        assert await jobs.delivered_with_request(GUILD, request, viewer_id=8) == []
        # Its requester can still be shown the stored file of her private clip.
        mine = await jobs.delivered_with_request(GUILD, request, viewer_id=7)
        assert [j.id for j in mine] == [private]
    finally:
        await storage.close()


async def test_the_longest_request_is_delivered_and_found_again(
    database_location: Path | str,
) -> None:
    """Both prompts at their limit, in text that neither compresses nor stays one byte a
    character: the delivered-request index must still take the row."""
    letters = "abcdefghijklmnopqrstuvwxyzéßøłżčğ🐈"
    pick = random.Random(12).choice
    prompt = "".join(pick(letters) for _ in range(PROMPT_MAX))
    negative = "".join(pick(letters) for _ in range(NEGATIVE_PROMPT_MAX))
    request = VideoRequest.create(prompt, seed=5, negative_prompt=negative)
    storage = await Storage.open(database_location)
    try:
        job_id = await _delivered(storage, replace(_new_job(), request=request))
        found = await storage.jobs.delivered_with_request(GUILD, request, viewer_id=1)
        assert [job.id for job in found] == [job_id]
    finally:
        await storage.close()


async def test_totals_over_every_job_read_the_same_on_both_engines(
    database_location: Path | str,
) -> None:
    storage = await Storage.open(database_location)
    try:
        billed = await storage.jobs.insert(replace(_new_job(), cost_usd=0.5))
        await storage.jobs.update(billed.id, now=2.0, state="delivered", request_id="r-1")
        await storage.jobs.insert(replace(_new_job(), cost_usd=0.25))  # queued: reserved
        other = replace(_new_job(), guild_id=GUILD + 1, cost_usd=0.25)
        await storage.jobs.update((await storage.jobs.insert(other)).id, now=2.0, state="failed")

        assert await job_totals.jobs_by_state(storage.db) == {
            "delivered": 1,
            "queued": 1,
            "failed": 1,
        }
        assert await job_totals.spend_billed_by_guild(storage.db) == {GUILD: 0.5}
        assert await job_totals.spend_reserved_by_guild(storage.db) == {GUILD: 0.25}
        await job_totals.answers(storage.db)
    finally:
        await storage.close()


def test_a_stored_request_is_parsed_once_and_a_broken_one_refused_every_time() -> None:
    text = json.dumps(VideoRequest.create("a fox at dawn", seed=3).to_payload())
    first = stored_request(text)
    assert first == VideoRequest.create("a fox at dawn", seed=3)
    assert stored_request(text) is first  # the same text is not parsed again
    broken = json.dumps({"prompt": "a fox at dawn"})
    for _ in range(2):  # a failure is not remembered as if it were a request
        with pytest.raises(ValidationError):
            stored_request(broken)
    # Past a few kilobytes a text is parsed each time: the cache's memory stays bounded.
    long = json.dumps(VideoRequest.create("🦊" * PROMPT_MAX, seed=3).to_payload())
    assert len(long) > 4096
    assert stored_request(long) == stored_request(long)
    assert stored_request(long) is not stored_request(long)
