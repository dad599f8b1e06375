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

import logging
import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from operator import mul

from services.models import SegmindState

log = logging.getLogger(__name__)

# The work of the default clip (49 frames, 45 steps), the unit EXPECTED_CLIP_SECONDS is in.
DEFAULT_WORK = 49 * 45
# A very light clip still has fixed costs (loading, encoding): never less than this share.
_MIN_WORK_SHARE = 0.2
# Samples kept per kind; the newest win, so a Segmind that got faster is followed in hours.
RECENT_SAMPLES = 32
# No job takes longer than the longest deadline (JOB_DEADLINE_MINUTES): a time past it is
# damage, not history. Nor 10x longer or shorter than what its kind usually takes.
LONGEST_SECONDS = 180 * 60.0
_OUTLIER_FACTOR = 10.0
# A kind of job leans on its own history alone once it has this much; before, on the other
# kinds' too, once they have a little.
OWN_HISTORY = 16
_FEW = 4
# With no history: processing anywhere in 0.6-1.4 x the expected time, and a queue of
# up to 15 s (what Segmind's queue usually shows), each as evenly spread samples.
_PRIOR_SPREAD = (0.6, 1.4)
_PRIOR_QUEUE_SECONDS = 15.0
_PRIOR_POINTS = 9
# Kernel width: Silverman's rule on a robust spread (narrower ones followed noise in a
# few samples and polled too sparsely between them); never below this share of the mean,
# nor below the floor the model is given, as timings are known only to within a poll.
_MIN_BANDWIDTH_SHARE = 0.005
# A grid never holds more cells than this: its cost stays fixed whatever the spread.
_MAX_CELLS = 240


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
    """A learned distribution of durations: recent samples and the kernel width to smooth
    them by (``end_grid`` smooths them)."""

    __slots__ = ("bandwidth", "high", "likely", "low", "mean", "median", "samples")

    def __init__(self, samples: Sequence[float], *, floor: float) -> None:
        if not samples:
            raise ValueError("a distribution needs at least one sample")
        self.samples = tuple(max(0.0, s) for s in samples)
        self.mean = sum(self.samples) / len(self.samples)
        ordered = sorted(self.samples)
        self.median = ordered[len(ordered) // 2]
        self.likely = ordered[min(len(ordered) - 1, int(_LIKELY * len(ordered)))]
        spread = math.sqrt(sum((s - self.mean) ** 2 for s in self.samples) / len(self.samples))
        if len(self.samples) >= _FEW:
            # One stray time must not widen the window every later job is polled across.
            quarter = len(ordered) // 4
            spread = min(spread, (ordered[-1 - quarter] - ordered[quarter]) / 1.34) or spread
        silverman = 1.06 * spread * len(self.samples) ** -0.2
        self.bandwidth = max(floor, _MIN_BANDWIDTH_SHARE * self.mean, silverman)
        # Where nearly all its weight lies: three kernel widths past the outermost samples.
        self.low = max(0.0, min(self.samples) - 3 * self.bandwidth)
        self.high = max(self.samples) + 3 * self.bandwidth


@dataclass(frozen=True, slots=True)
class Grid:
    """A density over absolute time on evenly spaced cells: cell ``i`` starts at start + i*step.

    ``mass[i]`` is the probability of the end falling in cell ``i``; what lies past the last
    cell is negligible.
    """

    start: float
    step: float
    mass: tuple[float, ...]
    # The cell mass where the end typically falls (each cell weighted by its mass): read at
    # every poll, so worked out once with the grid.
    typical: float = field(init=False)
    # Running sums, built once: ``after`` is read at every poll and progress tick, and
    # summing the cells ahead each time made it the forecast's main cost. ``_ahead[i]`` and
    # ``_moment[i]`` (mass times cell index) are summed from the last cell back, so the
    # small tail late in a job keeps its precision; ``_behind[i]``: the mass before ``i``.
    _total: float = field(init=False, repr=False, compare=False)
    _ahead: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _moment: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _behind: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        total = sum(self.mass)
        typical = sum(map(mul, self.mass, self.mass)) / total if total > 0 else 0.0
        object.__setattr__(self, "typical", typical)
        object.__setattr__(self, "_total", total)
        count = len(self.mass)
        ahead = list(accumulate(reversed(self.mass), initial=0.0))
        # Cell by index, not by middle: the middles cost more to work out than the sums.
        moment = list(
            accumulate(map(mul, reversed(self.mass), range(count - 1, -1, -1)), initial=0.0)
        )
        object.__setattr__(self, "_ahead", tuple(reversed(ahead)))
        object.__setattr__(self, "_moment", tuple(reversed(moment)))
        object.__setattr__(self, "_behind", tuple(accumulate(self.mass, initial=0.0)))

    @property
    def end(self) -> float:
        return self.start + self.step * len(self.mass)

    def cell(self, t: float) -> int:
        return int((t - self.start) // self.step)

    def _middle(self, index: int) -> float:
        return (self.start + index * self.step + self.start + (index + 1) * self.step) / 2

    def after(self, now: float) -> After | None:
        """Where the end lies given that it has not come by ``now``; None when none is left.

        From the running sums: a bisection, not a walk over the cells ahead. Where a
        rounding could tip a threshold (nothing left, late, the 80th percentile's cell:
        few samples make exact ties), the cells are walked as ``_after_by_cells`` does, so
        the answer never depends on the order the sums were taken in.
        """
        first = max(0, self.cell(now))
        if first >= len(self.mass):
            return None
        head, head_middle = self._head(first, now)
        left = head + self._ahead[first + 1]
        slack = _TIE * max(left, self._total)
        near_late = abs(left - _LATE_SHARE * (self._total or 1.0)) <= slack  # ``outlook``'s
        if near_late or abs(left - _NOTHING_LEFT) <= slack:
            return self._after_by_cells(now)
        if left <= _NOTHING_LEFT:
            return None
        # Each cell ahead weighs in at its middle, start + (index + 1/2) * step.
        ahead, moment = self._ahead[first + 1], self._moment[first + 1]
        middles = (self.start + self.step / 2) * ahead + self.step * moment
        mean = (head * head_middle + middles) / left
        likely = self._likely(first, head, head_middle, left, slack)
        if likely is None:
            return self._after_by_cells(now)
        return After(mean, likely, left / (self._total or 1.0))

    def _head(self, first: int, now: float) -> tuple[float, float]:
        """The mass still ahead in the cell holding ``now``, and that stretch's middle."""
        low = self.start + first * self.step
        high = self.start + (first + 1) * self.step
        if now > low:
            return self.mass[first] * ((high - now) / self.step), (now + high) / 2
        return self.mass[first], (low + high) / 2

    def _likely(
        self, first: int, head: float, head_middle: float, left: float, slack: float
    ) -> float | None:
        """The middle of the cell by which 4 in 5 of what is left has come; None on a tie."""
        wanted = _LIKELY * left
        if abs(head - wanted) <= slack:
            return None
        if head >= wanted:
            return head_middle
        # Cell j is reached once head + behind[j + 1] - behind[first + 1] >= wanted.
        base = self._behind[first + 1]
        target = wanted - head + base
        reached = bisect_left(self._behind, target, lo=first + 2)
        if reached > len(self.mass):
            reached = len(self.mass)  # the last cell, as a walk that never got there says
        for edge in (reached - 1, reached):
            # The running sum before and at that cell: either within rounding of the mark?
            near = abs(head + self._behind[edge] - base - wanted) <= slack
            if near and first + 1 < edge <= len(self.mass):
                return None
        return self._middle(reached - 1)

    def _after_by_cells(self, now: float) -> After | None:
        """``after`` by walking every cell ahead: its reference, and its answer on a tie."""
        first = max(0, self.cell(now))
        cells: list[tuple[float, float]] = []  # (mass, its middle) from now on
        for index in range(first, len(self.mass)):
            mass = self.mass[index]
            lo = max(now, self.start + index * self.step)
            hi = self.start + (index + 1) * self.step
            if index == first and now > self.start + index * self.step:
                mass *= (hi - now) / self.step
            cells.append((mass, (lo + hi) / 2))
        left = sum(mass for mass, _ in cells)
        if left <= _NOTHING_LEFT:
            return None
        mean = sum(mass * middle for mass, middle in cells) / left
        running = 0.0
        likely = cells[-1][1]
        for mass, middle in cells:
            running += mass
            if running >= _LIKELY * left:
                likely = middle
                break
        return After(mean, likely, left / (sum(self.mass) or 1.0))


@dataclass(frozen=True, slots=True)
class After:
    """The end as seen from now: its mean, the time it comes by in 4 cases of 5, and the
    share of the whole estimate still ahead (small: later than nearly every recent job)."""

    mean: float
    likely: float
    share_left: float


# "Likely" is the 80th percentile: "almost done" is said only when 4 in 5 would be.
_LIKELY = 0.8
# Less probability than this still ahead: the end is overdue.
_NOTHING_LEFT = 1e-9
# Sums taken in another order differ by far less than this share of the total (240 cells):
# a threshold met within it is decided by the plain walk over the cells instead.
_TIE = 1e-11


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


def _box(values: list[float], before: int, after: int) -> list[float]:
    """Each cell becomes the mean of the cells from ``before`` behind to ``after`` ahead."""
    if before == 0 and after == 0:
        return values
    running = list(accumulate(values, initial=0.0))
    count = len(values)
    width = before + after + 1
    # Each cell's window ends, clipped to the grid: paired up front rather than clipped
    # cell by cell, which cost more than the sums themselves.
    uppers = running[after + 1 :]
    uppers += [running[count]] * (count - len(uppers))
    lowers = [running[0]] * min(count, before) + running[: max(0, count - before)]
    return [(upper - lower) / width for upper, lower in zip(uppers, lowers, strict=True)]


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
        # Distributions already worked out, by kind (None: the queue's): every job builds
        # two forecasts, and sorting the samples each time cost more than the forecasts'
        # reads. Any timing learned changes them all (kinds borrow from each other).
        self._durations: dict[tuple[int, int] | None, Durations] = {}

    @property
    def learned(self) -> int:
        """How many recent timings it holds, every kind together."""
        return len(self._per_work)

    def learn(self, timing: Timing) -> None:
        """Keep a finished job's times, unless they cannot be true (see ``plausible``)."""
        if not self.plausible(timing):
            log.info("ignoring an implausible timing %s", timing)
            return
        kind = (timing.input_frames, timing.steps)
        self._durations.clear()
        self._processing.setdefault(kind, deque(maxlen=RECENT_SAMPLES)).append(
            timing.processing_seconds
        )
        self._per_work.append(timing.processing_seconds / work_of(*kind))
        self._queue.append(timing.queue_seconds)

    def learn_all(self, timings: Iterable[Timing]) -> None:
        for timing in timings:
            self.learn(timing)

    def plausible(self, timing: Timing) -> bool:
        """Finite, under the longest job, and within 10x of what this kind usually takes.

        A damaged row or a wrong measurement would otherwise shape the polls of every job
        after it; a Segmind that got twice as slow is still followed.
        """
        values = (timing.queue_seconds, timing.processing_seconds)
        if not all(math.isfinite(v) and 0 <= v <= LONGEST_SECONDS for v in values):
            return False
        if len(self._per_work) < _FEW:
            return True  # only the prior to go by, and it may be the one that is wrong
        usual = self.processing(timing.input_frames, timing.steps).median
        return usual / _OUTLIER_FACTOR <= timing.processing_seconds <= usual * _OUTLIER_FACTOR

    def processing(self, input_frames: int, steps: int) -> Durations:
        """How long this kind of job works at Segmind; shared, so never to be changed."""
        kind = (input_frames, steps)
        durations = self._durations.get(kind)
        if durations is None:
            durations = self._durations[kind] = self._processing_now(input_frames, steps)
        return durations

    def _processing_now(self, input_frames: int, steps: int) -> Durations:
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
        """How long a job waits in Segmind's queue; shared, so never to be changed."""
        durations = self._durations.get(None)
        if durations is None:
            durations = self._durations[None] = self._queue_now()
        return durations

    def _queue_now(self) -> Durations:
        if len(self._queue) >= _FEW:
            return Durations(self._queue, floor=self._floor)
        return Durations(_evenly(0.0, _PRIOR_QUEUE_SECONDS), floor=self._floor)


def _evenly(low: float, high: float) -> list[float]:
    return [low + (high - low) * i / (_PRIOR_POINTS - 1) for i in range(_PRIOR_POINTS)]


@dataclass(frozen=True, slots=True)
class Outlook:
    """A job's end as forecast now: its mean, the time it comes by in 4 cases of 5, and
    whether it is later than nearly every recent job of its kind."""

    end: float
    likely_end: float
    late: bool


# Later than this share of the estimate: "taking longer than usual".
_LATE_SHARE = 0.1


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

    def outlook(self, now: float) -> Outlook:
        """The likely end given what has been seen (``clock.monotonic()`` values)."""
        after = self.grid().after(now)
        if self._started is not None:
            if after is None:
                return Outlook(now, now, late=True)
            return Outlook(after.mean, after.likely, late=after.share_left < _LATE_SHARE)
        # Still in Segmind's queue: when it will leave it, then its processing.
        start, likely_start = (after.mean, after.likely) if after is not None else (now, now)
        processing = self.processing
        return Outlook(start + processing.mean, likely_start + processing.likely, late=False)

    def expected_end(self, now: float) -> float:
        """The mean end given what has been seen; ``now`` once it is overdue."""
        return self.outlook(now).end

    def timing(self) -> Timing | None:
        """What this job taught, once it ended and was watched from its submit."""
        if not self.fresh or self._started is None or self._ended is None:
            return None
        start = sum(self._started) / 2
        end = sum(self._ended) / 2
        # The midpoints, even of loose brackets: a Segmind that got faster ends in the sparse
        # stretch, and must still be learned. A stray time is kept from mattering by the
        # robust spread and ``plausible``.
        return Timing(
            self._kind[0],
            self._kind[1],
            queue_seconds=max(0.0, start - self.submitted_at),
            processing_seconds=max(0.0, end - start),
        )
