"""A clock for tests: it moves only when told, so backoffs and deadlines run instantly."""

from __future__ import annotations

import asyncio


class FakeClock:
    """A clock that moves only when told, or when something sleeps on it.

    ``sleep`` advances time at once and yields to the loop, so code with long backoffs
    runs instantly in tests while the sleeps it asked for are recorded.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 1000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
