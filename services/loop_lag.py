"""Event-loop lag, sampled for benchmarks: how late a 0.1 s sleep wakes, written to a file.

Off unless ``VIDEOBOT_LOOP_LAG_FILE`` names a file (bench/load.py sets it; operators never
need to). While the bot runs, a task sleeps ``INTERVAL`` seconds again and again and keeps
how much later than asked each sleep woke: that overshoot is the time a ready callback (an
interaction to acknowledge) waited behind other work. At exit the samples are written as
JSON, ``{"interval": 0.1, "samples": [[monotonic, lag_seconds], ...]}``, the monotonic clock
being the machine's (``time.monotonic``), so a bench in another process can pick its window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

log = logging.getLogger(__name__)

ENV_VAR = "VIDEOBOT_LOOP_LAG_FILE"
INTERVAL = 0.1


class LoopLagSampler:
    """Measures how late the loop runs a timer, until stopped; ``samples`` holds the lags."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (monotonic at wake-up, lag in seconds)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample(), name="loop-lag-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _sample(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(self.interval)
            woke = time.monotonic()
            self.samples.append((woke, max(0.0, woke - asked - self.interval)))

    def write(self, path: Path) -> None:
        payload = {"interval": self.interval, "samples": self.samples}
        path.write_text(json.dumps(payload))


@contextlib.asynccontextmanager
async def sampling_if_asked() -> AsyncIterator[None]:
    """Sample the running loop while inside, when ``VIDEOBOT_LOOP_LAG_FILE`` is set."""
    target = os.environ.get(ENV_VAR)
    if not target:
        yield
        return
    sampler = LoopLagSampler()
    sampler.start()
    try:
        yield
    finally:
        await sampler.stop()
        try:
            sampler.write(Path(target))
        except OSError as error:
            log.warning("could not write the loop lag samples to %s: %s", target, error)
