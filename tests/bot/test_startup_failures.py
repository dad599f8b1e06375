"""Start-up problems beyond the .env: one line for the operator, never a traceback."""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.harness.env import bot_env

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.fake.token-for-startup-tests"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_bot(tmp_path: Path, api: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SEGMIND_"))}
    return subprocess.run(
        [sys.executable, "-m", "tests.harness.run_bot", "--simulate"],
        env={
            **clean,
            "PYTHONPATH": str(ROOT),
            "FAKE_DISCORD_API": api,
            "FAKE_DISCORD_GATEWAY": api.replace("http", "ws") + "/gateway",
            "DISCORD_TOKEN": TOKEN,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            **env,
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_discord_out_of_reach_is_one_line_without_the_token(tmp_path):
    result = run_bot(tmp_path, f"http://127.0.0.1:{closed_port()}/api/v10")
    assert result.returncode == 1
    assert "Could not reach Discord" in result.stderr
    assert "Traceback" not in result.stderr and TOKEN not in result.stderr


def test_a_second_bot_on_the_same_database_is_refused(tmp_path):
    lock = tmp_path / "bot.db.lock"
    with open(lock, "a") as held:  # what a running bot holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_bot(tmp_path, f"http://127.0.0.1:{closed_port()}/api/v10")
    assert result.returncode == 2
    assert "Another bot process is already using the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("a file where the database folder should be")
    result = run_bot(
        tmp_path,
        f"http://127.0.0.1:{closed_port()}/api/v10",
        DATABASE_URL=f"sqlite:///{tmp_path / 'taken' / 'bot.db'}",
    )
    assert result.returncode == 2
    assert "DATABASE_URL: the database" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_development_server_the_bot_is_not_in_is_named(tmp_path, fake_discord):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.harness.run_bot", "--simulate",
        cwd=tmp_path,
        # 4242: not a server the bot was invited to
        env=bot_env(tmp_path, fake_discord, DISCORD_GUILD_ID="4242"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    text = stderr.decode()
    assert process.returncode == 2, text
    assert "DISCORD_GUILD_ID=4242: the bot is not in that server" in text
    assert "Traceback" not in text and fake_discord.world.token not in text


async def test_a_bot_waits_out_a_migrate_db_copying_its_postgresql_database(
    tmp_path, postgres_server
):
    # migrate-db holds the database for itself while it copies: a bot starting then would
    # write rows the copy misses. Several bots share it otherwise (their jobs are leased).
    from services.storage.database import Database

    url = await postgres_server.new_database()
    copier = await Database.open(url)
    try:
        assert await copier.claim_exclusive()
        result = await asyncio.to_thread(
            run_bot, tmp_path, f"http://127.0.0.1:{closed_port()}/api/v10", DATABASE_URL=url
        )
        assert result.returncode == 2
        assert "is being copied by `bot.py migrate-db`" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        await copier.close()
    first, second, copier = [await Database.open(url) for _ in range(3)]
    try:
        assert await first.join_runners() and await second.join_runners()
        assert not await copier.claim_exclusive()  # and no copy starts under running bots
    finally:
        for db in (first, second, copier):
            await db.close()
    await postgres_server.drop_database(url)


def test_a_postgresql_server_out_of_reach_is_one_line_without_the_password(tmp_path):
    url = f"postgresql://bot:hunter2-secret@127.0.0.1:{closed_port()}/videobot"
    result = run_bot(tmp_path, f"http://127.0.0.1:{closed_port()}/api/v10", DATABASE_URL=url)
    assert result.returncode == 2
    assert "DATABASE_URL: the database" in result.stderr
    assert "hunter2-secret" not in result.stderr and "Traceback" not in result.stderr
