"""Nothing lost: a job service killed with SIGKILL mid-job resumes and delivers, submitting once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

from services.simulator import DEFAULT_VIDEO_PATH

ROOT = Path(__file__).resolve().parents[2]


async def start_service(
    tmp_path: Path, simulator, key: str, *extra: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.harness.job_service",
        "--db", str(tmp_path / "bot.db"), "--segmind", simulator.base_url, "--key", key,
        "--events", str(tmp_path / "events.jsonl"), *extra,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def events(tmp_path: Path) -> list[dict]:
    path = tmp_path / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def wait_for_event(tmp_path: Path, predicate, timeout: float = 20.0) -> dict:
    """Watch the event file the service flushes; the only wait is for what it writes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in events(tmp_path):
            if predicate(event):
                return event
        await asyncio.sleep(0.02)
    raise AssertionError(f"no such event within {timeout}s; saw {events(tmp_path)}")


def job_row(tmp_path: Path) -> sqlite3.Row:
    conn = sqlite3.connect(tmp_path / "bot.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM jobs ORDER BY id LIMIT 1").fetchone()
    finally:
        conn.close()


async def test_sigkill_mid_job_then_restart_delivers_with_one_submit(
    tmp_path, simulator_factory, segmind_api_key
):
    simulator = await simulator_factory(queue_seconds=0.1, processing_seconds=1.5)
    first = await start_service(
        tmp_path, simulator, segmind_api_key, "--enqueue", "a lighthouse at dusk", "--stay"
    )
    await wait_for_event(
        tmp_path, lambda e: e["event"] == "progress" and e["phase"] == "processing"
    )
    first.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(first.wait(), 10) == -signal.SIGKILL

    row = job_row(tmp_path)
    assert row["state"] == "processing" and row["request_id"]
    assert len(simulator.submits) == 1

    second = await start_service(tmp_path, simulator, segmind_api_key)
    assert await asyncio.wait_for(second.wait(), 30) == 0, (await second.stderr.read()).decode()
    ready = [e for e in events(tmp_path) if e["event"] == "ready"]
    assert len(ready) == 1 and ready[0]["size"] == DEFAULT_VIDEO_PATH.stat().st_size
    assert any(e["event"] == "resumed" for e in events(tmp_path))
    assert job_row(tmp_path)["state"] == "delivered"
    assert len(simulator.submits) == 1
    assert simulator.submit_attempts == 1


async def test_sigkill_while_queued_submits_exactly_once_after_restart(
    tmp_path, simulator_factory, segmind_api_key
):
    simulator = await simulator_factory(queue_seconds=0.1, processing_seconds=0.2)
    # Hold the submit open so the service dies before Segmind ever answers it.
    simulator.hang("submit", accept=False)
    first = await start_service(
        tmp_path, simulator, segmind_api_key, "--enqueue", "a fox", "--stay"
    )
    await wait_for_event(
        tmp_path, lambda e: e["event"] == "progress" and e["phase"] == "submitting"
    )
    first.send_signal(signal.SIGKILL)
    await asyncio.wait_for(first.wait(), 10)
    assert job_row(tmp_path)["state"] == "submitting"

    second = await start_service(tmp_path, simulator, segmind_api_key)
    assert await asyncio.wait_for(second.wait(), 30) == 0
    # The submit may have reached Segmind: it is never sent again, and the member is told.
    row = job_row(tmp_path)
    assert row["state"] == "unknown"
    assert simulator.submits == []
    failed = [e for e in events(tmp_path) if e["event"] == "failed"]
    assert failed and "not resent" in failed[0]["error"]


async def test_sigterm_stops_quickly_and_leaves_the_job_for_resume(
    tmp_path, simulator_factory, segmind_api_key
):
    simulator = await simulator_factory(queue_seconds=0.1, processing_seconds=30)
    service = await start_service(
        tmp_path, simulator, segmind_api_key, "--enqueue", "a slow river", "--stay"
    )
    await wait_for_event(
        tmp_path, lambda e: e["event"] == "progress" and e["phase"] == "processing"
    )
    started = time.monotonic()
    service.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(service.wait(), 10) == 0
    assert time.monotonic() - started < 5
    row = job_row(tmp_path)
    assert row["state"] == "processing" and row["request_id"]
    # The database was closed cleanly: no WAL left behind to replay.
    assert not (tmp_path / "bot.db-wal").exists() or (tmp_path / "bot.db-wal").stat().st_size == 0
