"""When a job at Segmind will probably end, learned from the bot's own recent jobs.

Segmind reports states, never a fraction or an expected time. What the bot does see is when
a job left Segmind's queue (QUEUED to PROCESSING) and when it ended, each to within one poll.
Those timings are kept per kind of job in the database (``services.storage.timings``): the
processing time by ``input_frames`` and ``steps`` (the work), the queue's time apart from
it, since that follows Segmind's load, not the clip.

A kind of job with enough history of its own uses it. Before that, the other kinds' seconds
per unit of work, scaled to this one. Before any history at all, a wide prior around
``EXPECTED_CLIP_SECONDS`` scaled the same way. A distribution is its recent samples,
smoothed by a kernel: the poll schedule (``services.poll_schedule``) and the progress
message read the same one, so the bar and the polls agree.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.models import SegmindState

# The work of the default clip (49 frames, 45 steps), the unit EXPECTED_CLIP_SECONDS is in.
DEFAULT_WORK = 49 * 45
# A very light clip still has fixed costs (loading, encoding): never less than this share.
_MIN_WORK_SHARE = 0.2
# Samples kept per kind; the newest win, so a Segmind that got faster is followed in hours.
RECENT_SAMPLES = 32
# A kind of job leans on its own history alone once it has this much; before, on the other
# kinds' too, once they have a little.
OWN_HISTORY = 16
_FEW = 4
# With no history: processing anywhere in 0.6-1.4 x the expected time, and a queue of
# up to 15 s (what Segmind's queue usually shows), each as evenly spread samples.
_PRIOR_SPREAD = (0.6, 1.4)
_PRIOR_QUEUE_SECONDS = 15.0
_PRIOR_POINTS = 9
# Kernel width: a share of Silverman's rule, as clip times are spread evenly with sharp
# edges that the full rule would blur into a wider window to poll; never below this floor
# (a share of the typical value), as timings are known only to within a poll.
_BANDWIDTH_SHARE = 1.0
_MIN_BANDWIDTH_SHARE = 0.005


def work_of(input_frames: int, steps: int) -> float:
    """A clip's work relative to the default clip; light clips keep their fixed costs."""
    return max(_MIN_WORK_SHARE, (input_frames * steps) / DEFAULT_WORK)


@dataclass(frozen=True, slots=True)
class Timing:
    """What one finished job showed: its kind, its time in Segmind's queue and at work."""

    input_frames: int
    steps: int
    queue_seconds: float
    processing_seconds: float


class Durations:
    """A learned distribution of durations: samples smoothed by a Gaussian kernel."""

    __slots__ = ("bandwidth", "high", "low", "mean", "samples")

    def __init__(self, samples: Sequence[float], *, floor: float) -> None:
        if not samples:
            raise ValueError("a distribution needs at least one sample")
        self.samples = tuple(max(0.0, s) for s in samples)
        self.mean = sum(self.samples) / len(self.samples)
        spread = math.sqrt(sum((s - self.mean) ** 2 for s in self.samples) / len(self.samples))
        silverman = 1.06 * spread * len(self.samples) ** -0.2
        self.bandwidth = max(floor, _MIN_BANDWIDTH_SHARE * self.mean, _BANDWIDTH_SHARE * silverman)
        # Where nearly all its weight lies: three kernel widths past the outermost samples.
        self.low = max(0.0, min(self.samples) - 3 * self.bandwidth)
        self.high = max(self.samples) + 3 * self.bandwidth

    def scaled(self, factor: float, *, floor: float) -> Durations:
        return Durations([s * factor for s in self.samples], floor=floor)


@dataclass(frozen=True, slots=True)
class Grid:
    """A density over absolute time on evenly spaced cells: cell ``i`` starts at start + i*step.

    ``mass[i]`` is the probability of the end falling in cell ``i``; what lies past the last
    cell is negligible.
    """

    start: float
    step: float
    mass: tuple[float, ...]

    @property
    def typical(self) -> float:
        """The cell mass where the end typically falls (each cell weighted by its mass)."""
        total = sum(self.mass)
        return sum(m * m for m in self.mass) / total if total > 0 else 0.0

    @property
    def end(self) -> float:
        return self.start + self.step * len(self.mass)

    def cell(self, t: float) -> int:
        return int((t - self.start) // self.step)

    def expected_after(self, now: float) -> float | None:
        """The mean end given that it has not come by ``now``; None when none is left."""
        first = max(0, self.cell(now))
        weight = 0.0
        moment = 0.0
        for index in range(first, len(self.mass)):
            mass = self.mass[index]
            lo = max(now, self.start + index * self.step)
            mid = (lo + self.start + (index + 1) * self.step) / 2
            if index == first and now > self.start + index * self.step:
                mass *= (self.start + (index + 1) * self.step - now) / self.step
            weight += mass
            moment += mass * mid
        if weight <= 1e-9:
            return None
        return moment / weight


def end_grid(durations: Durations, since: tuple[float, float], step: float) -> Grid:
    """The density of ``S + D``: a start ``S`` anywhere in ``since``, a duration ``D``.

    The start is known only to lie between two polls, so it is spread evenly over them.
    Built with running sums (a histogram, smoothed twice by a box, which is a triangle
    kernel of the bandwidth's spread, then spread over the start's span): its cost is the
    number of cells, whatever the number of samples.
    """
    first, last = since
    span = max(0.0, last - first)
    lo = first + durations.low
    hi = last + durations.high
    cells = max(1, min(_MAX_CELLS, math.ceil((hi - lo) / step)))
    step = (hi - lo) / cells if hi > lo else step
    mass = [0.0] * cells
    share = 1.0 / len(durations.samples)
    for sample in durations.samples:
        index = int((first + sample - lo) / step)
        mass[min(cells - 1, max(0, index))] += share
    # Two centred boxes of 2r+1 cells have the variance ((2r+1)^2 - 1) / 6 cells^2.
    reach = round((math.sqrt(6 * (durations.bandwidth / step) ** 2 + 1) - 1) / 2)
    mass = _box(_box(mass, reach, reach), reach, reach)
    mass = _box(mass, round(span / step), 0)
    return Grid(lo, step, tuple(mass))


# A grid never holds more cells than this: its cost stays fixed whatever the spread.
_MAX_CELLS = 240


def _box(values: list[float], before: int, after: int) -> list[float]:
    """Each cell becomes the mean of the cells from ``before`` behind to ``after`` ahead."""
    if before == 0 and after == 0:
        return values
    running = [0.0]
    for value in values:
        running.append(running[-1] + value)
    count = len(values)
    width = before + after + 1
    return [
        (running[min(count, i + after + 1)] - running[max(0, i - before)]) / width
        for i in range(count)
    ]


class TimingModel:
    """Recent timings in memory, by kind of job; ``services.storage.timings`` keeps them."""

    def __init__(self, expected_seconds: float, *, floor: float = 0.5) -> None:
        if expected_seconds <= 0:
            raise ValueError("expected_seconds must be positive")
        self._expected = expected_seconds
        self._floor = floor  # timings are known to within a poll: no narrower than this
        self._processing: dict[tuple[int, int], deque[float]] = {}
        # Seconds per unit of work, every kind together, for kinds with little history.
        self._per_work: deque[float] = deque(maxlen=RECENT_SAMPLES * 4)
        self._queue: deque[float] = deque(maxlen=RECENT_SAMPLES * 2)

    def learn(self, timing: Timing) -> None:
        kind = (timing.input_frames, timing.steps)
        self._processing.setdefault(kind, deque(maxlen=RECENT_SAMPLES)).append(
            timing.processing_seconds
        )
        self._per_work.append(timing.processing_seconds / work_of(*kind))
        self._queue.append(timing.queue_seconds)

    def learn_all(self, timings: Iterable[Timing]) -> None:
        for timing in timings:
            self.learn(timing)

    def processing(self, input_frames: int, steps: int) -> Durations:
        own = list(self._processing.get((input_frames, steps), ()))
        if len(own) >= OWN_HISTORY:
            return Durations(own, floor=self._floor)
        work = work_of(input_frames, steps)
        if len(self._per_work) >= _FEW:
            # A kind with little history of its own: filled up with the other kinds' newest
            # times per unit of work, so a handful of samples cannot make the window narrow.
            borrowed = [s * work for s in list(self._per_work)[-(OWN_HISTORY - len(own)) :]]
            return Durations(own + borrowed, floor=self._floor)
        typical = self._expected * work
        return Durations(
            _evenly(typical * _PRIOR_SPREAD[0], typical * _PRIOR_SPREAD[1]), floor=self._floor
        )

    def queue(self) -> Durations:
        if len(self._queue) >= _FEW:
            return Durations(self._queue, floor=self._floor)
        return Durations(_evenly(0.0, _PRIOR_QUEUE_SECONDS), floor=self._floor)


def _evenly(low: float, high: float) -> list[float]:
    return [low + (high - low) * i / (_PRIOR_POINTS - 1) for i in range(_PRIOR_POINTS)]


class JobForecast:
    """One job's likely end, narrowed by what each status answer showed.

    Until the job is seen PROCESSING, its start is the submit plus a queue time; once it
    is, the start lies between the last poll that said QUEUED and the first that did not.
    """

    def __init__(
        self,
        model: TimingModel,
        *,
        input_frames: int,
        steps: int,
        submitted_at: float,
        cell: float,
        fresh: bool = True,
    ) -> None:
        self._kind = (input_frames, steps)
        self.processing = model.processing(input_frames, steps)
        self._queue = model.queue()
        self.submitted_at = submitted_at
        self._cell = cell
        # Seen from its submit on: only then do its timings teach the model anything.
        self.fresh = fresh
        self._last_queued: float | None = submitted_at if fresh else None
        self._started: tuple[float, float] | None = None
        self._last_processing: float | None = None
        self._ended: tuple[float, float] | None = None
        self._grid: Grid | None = None

    @property
    def started(self) -> bool:
        return self._started is not None

    def seen(self, state: SegmindState, now: float) -> None:
        if state is SegmindState.QUEUED:
            self._last_queued = now
        elif state is SegmindState.PROCESSING:
            if self._started is None:
                self._started = (self._last_queued or self.submitted_at, now)
                self._grid = None
            self._last_processing = now
        elif self._ended is None and self._last_processing is not None:
            # COMPLETED or FAILED. One that never showed PROCESSING taught nothing sure.
            self._ended = (self._last_processing, now)

    def grid(self) -> Grid:
        """Before the start: when it will leave the queue; after: when it will end."""
        if self._grid is None:
            if self._started is None:
                at = (self.submitted_at, self.submitted_at)
                self._grid = end_grid(self._queue, at, self._cell)
            else:
                self._grid = end_grid(self.processing, self._started, self._cell)
        return self._grid

    def expected_end(self, now: float) -> float:
        """The mean end given what has been seen; ``now`` once it is overdue."""
        after = self.grid().expected_after(now)
        if self._started is not None:
            return after if after is not None else now
        start = after if after is not None else now
        return start + self.processing.mean

    def timing(self) -> Timing | None:
        """What this job taught, once it ended and was watched from its submit."""
        if not self.fresh or self._started is None or self._ended is None:
            return None
        start = sum(self._started) / 2
        end = sum(self._ended) / 2
        return Timing(
            self._kind[0],
            self._kind[1],
            queue_seconds=max(0.0, start - self.submitted_at),
            processing_seconds=max(0.0, end - start),
        )
