"""One Segmind account, one pace: a 429 to any job holds back every job's next request.

Segmind limits requests per key, not per job. Were only the job that got the 429 to wait,
the others would keep spending the same exhausted allowance and collect 429s of their own.
So each keyed request first waits out the account's hold; when the hold ends, the waiting
jobs go on spread over a short stretch instead of all at the same instant.

Several processes share one key: a hold is stored in ``meta`` (as a wall-clock time), and
each process reads the stored one before its requests, at most every ``REFRESH_SECONDS``.
So another process's 429 reaches this one's next request within that second, instead of
each process earning its own 429 first.
"""

from __future__ import annotations

import logging
import math
import random

from services.clock import Clock
from services.storage.meta import MetaStore

log = logging.getLogger(__name__)

# Jobs released together spread over this share of the hold (at least a second), so the
# end of a hold is not a burst that earns the next 429.
_SPREAD_SHARE = 0.5
_MIN_SPREAD = 1.0
_MAX_SPREAD = 10.0  # past a long hold, a finished clip still waits at most this much more
# A hold longer than this is a quota, not a blip: the runner's own limits (deadlines,
# Backoff.max_retry_after) decide then, not a hold that would stop every job for it.
_LONGEST_HOLD = 15 * 60.0
REFRESH_SECONDS = 1.0
HOLD_KEY = "segmind_hold_until"


class AccountPace:
    """The account's hold, shared by every job's requests; see the module docstring."""

    def __init__(self, clock: Clock, rng: random.Random) -> None:
        self._clock = clock
        self._rng = rng
        self._until = 0.0  # clock.monotonic() before which no request leaves
        self._spread = 0.0
        self._store: MetaStore | None = None
        self._shared_until = 0.0  # clock.time() of the latest hold stored or read
        self._read_at: float | None = None

    def share(self, store: MetaStore) -> None:
        """Share holds with the other processes of this database (see the module docstring)."""
        self._store = store

    def hold(self, seconds: float) -> None:
        """Segmind asked the account to slow down: nothing leaves for ``seconds``."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        seconds = min(seconds, _LONGEST_HOLD)
        until = self._clock.monotonic() + seconds
        if until > self._until:
            log.info("segmind rate limited: every job waits %.1fs", seconds)
            self._until = until
            self._spread = min(_MAX_SPREAD, max(_MIN_SPREAD, _SPREAD_SHARE * seconds))

    def held_for(self) -> float:
        """Seconds left of the hold (0 when none)."""
        return max(0.0, self._until - self._clock.monotonic())

    async def wait(self, *, at_most: float | None = None) -> None:
        """Wait out the hold (plus this request's place in the spread), up to ``at_most``."""
        await self._share()
        while (remaining := self.held_for()) > 0:
            if at_most is not None and at_most <= 0:
                return  # the caller's own deadline: its last look goes ahead
            delay = remaining + self._rng.uniform(0.0, self._spread)
            if at_most is not None:
                delay = min(delay, at_most)
                at_most -= delay
            await self._clock.sleep(delay)

    async def _share(self) -> None:
        """Store this process's newer hold; read the others', at most every REFRESH_SECONDS."""
        if self._store is None:
            return
        now, wall = self._clock.monotonic(), self._clock.time()
        held_until = wall + self.held_for() if self.held_for() > 0 else 0.0
        try:
            if held_until > self._shared_until + 0.001:  # not a clock jitter of its own
                await self._store.raise_to(HOLD_KEY, held_until)
                self._shared_until = held_until
            if self._read_at is not None and now - self._read_at < REFRESH_SECONDS:
                return
            self._read_at = now
            stored = await self._store.get(HOLD_KEY)
        except Exception:
            log.warning("could not share the account's rate-limit hold", exc_info=True)
            return
        if stored is None or float(stored) <= max(held_until, self._shared_until):
            return
        self._shared_until = float(stored)
        self.hold(self._shared_until - wall)
