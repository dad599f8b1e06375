"""Time behind a seam, so limits, backoff and deadlines are tested with a fake clock.

The fake one is test-only and lives in ``tests/fakeclock.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock Unix time in seconds (stored in the database, shown to members)."""

    def monotonic(self) -> float:
        """A clock that never jumps, for deadlines and elapsed times."""

    async def sleep(self, seconds: float) -> None:
        """Wait; a fake clock advances instead."""


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
