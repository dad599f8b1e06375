"""When to ask Segmind about a job next: dense where its end is likely, sparse elsewhere.

A status poll costs a request against the account's rate limit; a poll too late costs the
member the wait until the next one. With the end's density ``f`` (``services.finish_estimate``),
the gaps that make the fewest polls for a given mean delay grow as ``1 / sqrt(f)``: so a gap is
``resolution`` at the density where ends typically fall (each weighted by its own density),
shorter where they fall more often, wider where they rarely do, up to ``cap``. The mean delay
is then about ``resolution / 2``, as with fixed polls every ``resolution``. A
gap never reaches across a likelier stretch than the one it was sized for, so the first poll
of a dense stretch lands at its start. Past every likely end (a slow job), the gaps grow
back to ``cap`` by half each time.

Everything is in units of ``resolution`` and of the learned durations (save the 45 s ceiling,
which compression to 1/10 never reaches), so the schedule keeps its shape when time is
compressed (bench/polling.py's quick mode).
"""

from __future__ import annotations

import math
from typing import Protocol

from services.finish_estimate import Grid, JobForecast
from services.models import SegmindState

# The widest gap, in resolutions and at most in seconds: a job that fails early, or a
# Segmind far faster than learned, is still noticed within 45 s.
CAP_RESOLUTIONS = 30.0
CAP_SECONDS = 45.0
# Leaving the queue only tells where the processing began: looser polls are enough there.
QUEUE_RESOLUTIONS = 2.5
# No two polls closer than this share of the resolution, even at the densest.
_MIN_GAP_SHARE = 0.25
_OVERDUE_GROWTH = 1.5


class PollSchedule(Protocol):
    def first_delay(self, now: float) -> float:
        """Seconds until the first status poll."""

    def seen(self, state: SegmindState, now: float) -> None:
        """A status answer said ``state`` at ``now``."""

    def next_delay(self, now: float) -> float:
        """Seconds until the next status poll."""


class GrowingSchedule:
    """A first interval that grows by ``growth`` each poll, up to a ceiling (1.0: fixed)."""

    def __init__(self, interval: float, ceiling: float, growth: float = 1.25) -> None:
        if interval <= 0:
            raise ValueError("poll interval must be positive")
        self._next = interval
        self._ceiling = max(ceiling, interval)  # a larger interval wins: the operator asked
        self._growth = growth

    def first_delay(self, now: float) -> float:
        return 0.0  # at once: the job may have ended long ago

    def seen(self, state: SegmindState, now: float) -> None:
        pass

    def next_delay(self, now: float) -> float:
        delay = self._next
        self._next = min(self._next * self._growth, self._ceiling)
        return delay


class AdaptiveSchedule:
    """Polls one job by its forecast; see the module docstring."""

    def __init__(self, forecast: JobForecast, resolution: float) -> None:
        if resolution <= 0:
            raise ValueError("resolution must be positive")
        self.forecast = forecast
        self._resolution = resolution
        self._cap = min(CAP_RESOLUTIONS * resolution, CAP_SECONDS)
        self._previous = resolution

    def first_delay(self, now: float) -> float:
        # A job just submitted is surely still queued; a resumed one may have ended.
        return self.next_delay(now) if self.forecast.fresh else 0.0

    def seen(self, state: SegmindState, now: float) -> None:
        self.forecast.seen(state, now)

    def next_delay(self, now: float) -> float:
        started = self.forecast.started
        resolution = self._resolution * (1.0 if started else QUEUE_RESOLUTIONS)
        gap = densest_gap(self.forecast.grid(), now, resolution, self._cap)
        if gap is None:  # later than every likely end (or start): back off calmly
            gap = min(self._cap, max(resolution, self._previous * _OVERDUE_GROWTH))
        self._previous = gap
        return gap


def densest_gap(grid: Grid, now: float, resolution: float, cap: float) -> float | None:
    """The widest gap from ``now`` whose likeliest stretch still allows it; None past the grid.

    A stretch whose cells hold at most ``m`` allows ``resolution * sqrt(peak / m)``.
    """
    if now >= grid.end:
        return None
    peak = grid.typical
    if peak <= 0:
        return None
    floor = _MIN_GAP_SHARE * resolution
    densest = 0.0
    allowed = cap
    start, step, mass = grid.start, grid.step, grid.mass
    for index in range(max(0, grid.cell(now)), len(mass)):
        if mass[index] > densest:
            # Only a denser cell changes what the stretch allows: the root is taken then.
            densest = mass[index]
            allowed = min(cap, resolution * math.sqrt(peak / densest))
        cell_start = start + index * step - now
        if allowed <= cell_start + step:
            # This cell is too likely for a gap reaching past ``allowed``: stop there, or
            # at its start when the stretch before it allowed more.
            return min(cap, max(floor, allowed, cell_start))
    return max(floor, min(cap, grid.end - now))
