"""The bot's job service in a process of its own, for restart tests (no Discord).

    python -m tests.harness.job_service --db PATH --segmind URL --events FILE [--enqueue PROMPT]

It opens the same services the bot uses (services.app.open_services) on the given
database, resumes whatever is unfinished, optionally queues one new job, and writes
one JSON line per event to FILE (flushed at once, so a SIGKILL loses nothing
written). It exits when no job is left, or waits for SIGTERM with --stay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from dataclasses import replace
from pathlib import Path

from services.app import open_services
from services.errors import BotError
from services.models import Job, Progress, VideoRequest
from services.settings import load_settings
from services.storage import NewJob


class EventLog:
    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def write(self, kind: str, job: Job, **fields: object) -> None:
        self._file.write(
            json.dumps({"event": kind, "job": job.id, "state": job.state.value, **fields}) + "\n"
        )
        self._file.flush()

    async def on_progress(self, job: Job, progress: Progress) -> None:
        self.write("progress", job, phase=progress.phase.value)

    async def on_clip_ready(self, job: Job) -> int | None:
        self.write("ready", job, clip=job.clip_path, size=Path(job.clip_path or "").stat().st_size)
        return 1

    async def on_failed(self, job: Job, error: BotError) -> None:
        self.write("failed", job, error=error.user_message)

    async def on_operator_alert(self, job: Job, error: BotError) -> None:
        self.write("alert", job, error=error.detail)


async def main(args: argparse.Namespace) -> int:
    settings = load_settings(
        {
            "DATABASE_URL": f"sqlite:///{args.db}",
            "SEGMIND_API_KEY": args.key,
            "LOG_LEVEL": "INFO",
        },
        need_discord=False,
    )
    # Polled far faster than an operator may (0.5 s floor): the simulator is on loopback.
    settings = replace(settings, poll_interval_seconds=0.05)
    events = EventLog(Path(args.events))
    async with open_services(settings, segmind_base_url=args.segmind) as services:
        services.runner.set_listener(events)
        resumed = await services.runner.start()
        for job in resumed:
            events.write("resumed", job)
        if args.enqueue:
            job = await services.storage.jobs.insert(
                NewJob(1, 2, 3, VideoRequest.create(args.enqueue), created_at=services.clock.time())
            )
            events.write("queued", job)
            await services.runner.enqueue(job)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        waiters = [asyncio.create_task(stop.wait())]
        if not args.stay:
            waiters.append(asyncio.create_task(services.runner.wait_idle()))
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--segmind", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--enqueue")
    parser.add_argument("--stay", action="store_true")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
