"""`python bot.py generate "prompt" --out clip.mp4`: the same job pipeline, without Discord.

The operator's way to check a Segmind key, and a newcomer's way to watch the main
job work. It uses a throwaway database so it never touches the bot's jobs.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from services.app import open_services
from services.errors import (
    BotError,
    SegmindAuthError,
    SegmindInsufficientCredits,
    SegmindNotFound,
)
from services.models import Job, Progress, ProgressPhase, VideoRequest
from services.settings import Settings
from services.storage import NewJob

OPERATOR_WORDS: dict[type[BotError], str] = {
    SegmindAuthError: "Segmind refused the key: check SEGMIND_API_KEY (and SEGMIND_BASE_URL).",
    SegmindNotFound: "Segmind does not know this model or route: check SEGMIND_BASE_URL.",
    SegmindInsufficientCredits: "The Segmind account is out of credits: top it up at segmind.com.",
}

PHASE_WORDS = {
    ProgressPhase.QUEUED: "waiting for a slot",
    ProgressPhase.SUBMITTING: "submitting",
    ProgressPhase.SEGMIND_QUEUED: "queued at Segmind",
    ProgressPhase.PROCESSING: "generating",
    ProgressPhase.DOWNLOADING: "downloading",
}


class ConsoleListener:
    """Prints progress lines and saves the clip where the operator asked."""

    def __init__(self, out: Path, stream: TextIO) -> None:
        self.out = out
        self.stream = stream
        self.exit_code = 1
        self._last: tuple[object, ...] | None = None

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    async def on_progress(self, job: Job, progress: Progress) -> None:
        shown = (progress.phase, int(progress.elapsed) // 5)
        if shown == self._last:
            return
        self._last = shown
        line = f"job {job.id}: {PHASE_WORDS[progress.phase]}"
        if progress.elapsed:
            line += f", {int(progress.elapsed)}s elapsed, about {int(progress.fraction * 100)}%"
        self.say(line)

    async def on_clip_ready(self, job: Job) -> int | None:
        assert job.clip_path is not None
        self.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(job.clip_path, self.out)
        self.say(f"saved {self.out} ({self.out.stat().st_size} bytes, seed {job.request.seed})")
        self.exit_code = 0
        return None

    async def on_failed(self, job: Job, error: BotError) -> None:
        # The member's wording speaks of moderators; here the reader is the operator.
        self.say(f"failed: {OPERATOR_WORDS.get(type(error), error.user_message)}")
        if error.detail != error.user_message:
            self.say(f"detail: {error.detail}")

    async def on_operator_alert(self, job: Job, error: BotError) -> None:
        pass  # on_failed says it, in the operator's words


async def generate(
    settings: Settings, request: VideoRequest, out: Path, *, stream: TextIO = sys.stdout
) -> int:
    """Run one request through submit, poll, download; returns a process exit code."""
    with tempfile.TemporaryDirectory(prefix="videobot-generate-") as scratch:
        scratch_settings = dataclasses.replace(
            settings, database_path=Path(scratch) / "generate.db"
        )
        async with open_services(scratch_settings) as services:
            listener = ConsoleListener(out, stream)
            services.runner.set_listener(listener)
            await services.runner.start()
            job = await services.storage.jobs.insert(
                NewJob(
                    guild_id=0,
                    channel_id=0,
                    user_id=0,
                    request=request,
                    created_at=services.clock.time(),
                )
            )
            where = "the simulator" if settings.simulate else settings.segmind_base_url
            listener.say(f"job {job.id}: seed {request.seed}, sending to {where}")
            await services.runner.enqueue(job)
            await services.runner.wait_idle()
            return listener.exit_code
