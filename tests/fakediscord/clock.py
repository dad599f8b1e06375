"""Time and ids for the fake: real time plus a skew, so a test can jump past Discord's deadlines.

Discord enforces two clocks on an interaction: 3 s to acknowledge it and 15 min for its token.
The fake measures both with `FakeDiscordClock`, which runs in real time (a slow bot still misses
the 3 s window) and can be advanced instantly (a test expires a token without waiting).
"""

from __future__ import annotations

import datetime as dt
import itertools
import time

DISCORD_EPOCH_MS = 1_420_070_400_000


class FakeDiscordClock:
    """Real time plus a test-controlled skew; both clocks move together when advanced."""

    def __init__(self) -> None:
        self._skew = 0.0

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps backwards, for deadlines."""
        return time.monotonic() + self._skew

    def wall(self) -> float:
        """Unix time, for timestamps and snowflakes shown to the bot."""
        return time.time() + self._skew

    def advance(self, seconds: float) -> None:
        """Move both clocks forward, e.g. past the 3 s acknowledgement window."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._skew += seconds


class SnowflakeFactory:
    """Discord-shaped ids (timestamp << 22 | increment), strictly increasing."""

    def __init__(self, clock: FakeDiscordClock | None = None) -> None:
        self._clock = clock
        self._increment = itertools.count()
        self._last = 0

    def next(self) -> int:
        """A new id whose timestamp is "now", so discord.py's created_at is plausible."""
        now = self._clock.wall() if self._clock is not None else time.time()
        millis = int(now * 1000) - DISCORD_EPOCH_MS
        candidate = (millis << 22) | (1 << 17) | (next(self._increment) & 0xFFF)
        # Ids must sort by creation even when two are made in the same millisecond.
        self._last = max(candidate, self._last + 1)
        return self._last


def iso_timestamp(unix_seconds: float) -> str:
    """ISO 8601 with an explicit UTC offset, as Discord writes timestamps."""
    return dt.datetime.fromtimestamp(unix_seconds, tz=dt.UTC).isoformat()
