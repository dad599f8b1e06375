"""How `bot.py generate` shows its job: a live progress bar on a terminal, plain lines elsewhere.

On a terminal, rich draws the phase, a bar from the job's estimate, the time elapsed and the
expected finish, redrawn in place; log records print above the bar through the same console,
so a warning never breaks it. Anywhere else (a pipe, a file, CI) the same news is plain
lines: one per phase change and at most one every 5 seconds, no escape codes, no redraws.
Either way, while the job runs the log shows only warnings and errors unless asked for more.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import (
    Progress as ProgressBars,
)
from rich.progress import (
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
)
from rich.progress_bar import ProgressBar
from rich.table import Column
from rich.text import Text

from services.models import Progress, ProgressPhase
from services.progress_estimate import estimate_fraction

PHASE_WORDS = {
    ProgressPhase.QUEUED: "waiting for a slot",
    ProgressPhase.SUBMITTING: "submitting",
    ProgressPhase.SEGMIND_QUEUED: "queued at Segmind",
    ProgressPhase.PROCESSING: "generating",
    ProgressPhase.DOWNLOADING: "downloading",
}
# Segmind has the job: its estimate moves with the clock between the runner's reports.
_AT_SEGMIND = (ProgressPhase.SEGMIND_QUEUED, ProgressPhase.PROCESSING)
PLAIN_EVERY_SECONDS = 5


class JobDisplay(Protocol):
    """Where `generate` tells the operator how its one job is doing."""

    def say(self, text: str) -> None:
        """A line of news (above the bar, if one is drawn)."""

    def show(self, progress: Progress) -> None:
        """The job's latest progress."""

    def conclude(self, text: str, *, ok: bool) -> None:
        """The last line: the bar (if any) stops where the job ended, then ``text``."""

    def close(self) -> None:
        """Stop drawing, whatever happened (Ctrl-C too), leaving the terminal usable."""


def clock_words(seconds: float) -> str:
    """``75`` as ``1:15``; an hour or more as ``1:02:03``."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class PlainDisplay:
    """Plain lines for a pipe or a file: one per phase change, at most one every 5 seconds."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last: tuple[object, ...] | None = None

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def show(self, progress: Progress) -> None:
        shown = (progress.phase, int(progress.elapsed) // PLAIN_EVERY_SECONDS)
        if shown == self._last:
            return
        self._last = shown
        line = f"job {progress.job_id}: {PHASE_WORDS[progress.phase]}"
        if progress.elapsed:
            line += f", {int(progress.elapsed)}s elapsed, about {int(progress.fraction * 100)}%"
            left = progress.expected - progress.elapsed
            if progress.phase in _AT_SEGMIND and left >= 1:
                line += f", about {clock_words(left)} left"
        self.say(line)

    def conclude(self, text: str, *, ok: bool) -> None:
        self.say(text)

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _Reading:
    """The job's last progress and when it came, to move the estimate between reports."""

    progress: Progress
    received: float  # the bar's clock (monotonic) when it came
    outcome: bool | None = None  # True: the clip is saved; False: the job failed

    def elapsed(self, now: float) -> float:
        """Seconds since Segmind accepted the job, counted on while it works."""
        if self.outcome is None and self.progress.phase in _AT_SEGMIND:
            return self.progress.elapsed + max(0.0, now - self.received)
        return self.progress.elapsed

    def fraction(self, now: float) -> float | None:
        """How far along, by the job's estimate; None while nothing is known (the bar pulses)."""
        if self.outcome:
            return 1.0
        progress = self.progress
        if progress.phase in _AT_SEGMIND and progress.expected > 0:
            moved = estimate_fraction(self.elapsed(now), progress.expected)
            return max(progress.fraction, moved)
        if progress.phase is ProgressPhase.DOWNLOADING or progress.fraction:
            return progress.fraction
        return 0.0 if self.outcome is False else None

    def ended(self, now: float, *, ok: bool) -> _Reading:
        """The job's end: the bar stays where it had moved to (full, if the clip is saved)."""
        moved = dataclasses.replace(
            self.progress, elapsed=self.elapsed(now), fraction=self.fraction(now) or 0.0
        )
        return _Reading(moved, now, outcome=ok)

    def left(self, now: float) -> float | None:
        """Seconds until the typical finish, while Segmind works; None when not estimated."""
        if self.outcome is not None or self.progress.phase not in _AT_SEGMIND:
            return None
        if self.progress.expected <= 0:
            return None
        return self.progress.expected - self.elapsed(now)


def _reading(task: Task) -> _Reading:
    reading = task.fields["reading"]
    assert isinstance(reading, _Reading)
    return reading


class _EstimateBar(ProgressColumn):
    """The bar, from the job's estimate; it pulses while the job waits to be accepted."""

    def __init__(self, width: int, table_column: Column) -> None:
        super().__init__(table_column=table_column)
        self.width = width

    def render(self, task: Task) -> ProgressBar:
        reading, now = _reading(task), task.get_time()
        fraction = reading.fraction(now)
        return ProgressBar(
            total=1.0,
            completed=fraction or 0.0,
            width=self.width,
            pulse=fraction is None,
            animation_time=now,
            complete_style="red" if reading.outcome is False else "bar.complete",
        )


class _Percent(ProgressColumn):
    def render(self, task: Task) -> Text:
        reading = _reading(task)
        fraction = reading.fraction(task.get_time())
        if fraction is None:
            return Text("")
        words = "100%" if reading.outcome else f"about {int(fraction * 100)}%"
        return Text(words, style="progress.percentage")


class _ExpectedFinish(ProgressColumn):
    """Time left by the job's estimate, and the clock time it should be done by."""

    def render(self, task: Task) -> Text:
        left = _reading(task).left(task.get_time())
        if left is None:
            return Text("")
        if left < 1:
            return Text("taking longer than usual", style="yellow")
        by = datetime.fromtimestamp(datetime.now().timestamp() + left).strftime("%H:%M")
        return Text(f"~{clock_words(left)} left ({by})", style="progress.remaining")


class _Elapsed(ProgressColumn):
    """Time since the bar appeared (the job joined the queue), frozen when it ends."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        return Text(clock_words(elapsed or 0.0), style="progress.elapsed")


def _one_line(width: int | None = None) -> Column:
    return Column(width=width, no_wrap=True, overflow="ellipsis")


class LiveDisplay:
    """A rich progress bar on a terminal, drawn from the first progress until the last line."""

    def __init__(self, console: Console) -> None:
        self.console = console
        # One line whatever the terminal's width: a cell too wide is cut with "…", never
        # wrapped onto lines of its own (a 40-column window split the words otherwise).
        self._bars = ProgressBars(
            TextColumn("{task.description}", markup=False, table_column=_one_line(width=18)),
            # The bar gives up width first: the words and times matter more.
            _EstimateBar(max(4, min(20, console.width - 60)), table_column=_one_line()),
            _Percent(table_column=_one_line()),
            _Elapsed(table_column=_one_line()),
            _ExpectedFinish(table_column=_one_line()),
            console=console,
            refresh_per_second=4,
        )
        self._task: TaskID | None = None

    def say(self, text: str) -> None:
        # Text, not markup: a prompt like "a [fail] cat" is words, not a style.
        self.console.print(Text(text), soft_wrap=True)

    def show(self, progress: Progress) -> None:
        reading = _Reading(progress, self._bars.get_time())
        words = PHASE_WORDS[progress.phase]
        if self._task is None:
            self._bars.start()
            self._task = self._bars.add_task(words, total=1.0, reading=reading)
        else:
            changed = words != self._bars.tasks[0].description
            self._bars.update(self._task, description=words, reading=reading)
            if changed:
                self._bars.refresh()  # the new phase now, not at the next tick

    def conclude(self, text: str, *, ok: bool) -> None:
        if self._task is not None:
            ended = _reading(self._bars.tasks[0]).ended(self._bars.get_time(), ok=ok)
            words = "done" if ok else "failed"
            self._bars.update(self._task, description=words, reading=ended, completed=1.0)
            self._bars.stop()
        self.console.print(Text(text, style="bold green" if ok else "bold red"), soft_wrap=True)

    def close(self) -> None:
        self._bars.stop()


class _AboveTheBar(logging.Handler):
    """Writes a terminal handler's records through the live console: above the bar, unbroken.

    It takes over the handler's formatter and filters, so the secret redaction
    (services.logsafety) and the operator's log format still apply to every line.
    """

    def __init__(self, console: Console, replaces: logging.Handler, level: int) -> None:
        super().__init__(max(replaces.level, level))
        self.console = console
        self.replaces = replaces
        self.setFormatter(replaces.formatter)
        for check in replaces.filters:
            self.addFilter(check)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            style = "red" if record.levelno >= logging.ERROR else "yellow"
            if record.levelno < logging.WARNING:
                style = "dim"
            self.console.print(Text(line, style=style), soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging's rule: a handler reports, never raises
            self.handleError(record)


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"
    except ValueError:  # a closed stream
        return False


def _writes_to_terminal(handler: logging.Handler) -> bool:
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    return _is_terminal(handler.stream)


@contextmanager
def _logs_while_showing(console: Console | None, *, quiet: bool) -> Iterator[None]:
    """Only warnings and errors unless ``quiet`` is off; terminal lines go above the bar."""
    root = logging.getLogger()
    before = list(root.handlers)
    levels = {handler: handler.level for handler in before}
    threshold = logging.WARNING if quiet else logging.NOTSET
    swapped: list[logging.Handler] = []
    try:
        for handler in before:
            if console is not None and _writes_to_terminal(handler):
                root.removeHandler(handler)
                swapped.append(_AboveTheBar(console, handler, threshold))
                root.addHandler(swapped[-1])
            else:
                handler.setLevel(max(handler.level, threshold))
        yield
    finally:
        for handler in swapped:
            root.removeHandler(handler)
        for handler in before:
            handler.setLevel(levels[handler])
            if handler not in root.handlers:
                root.addHandler(handler)


@contextmanager
def open_display(stream: TextIO, *, verbose: bool) -> Iterator[JobDisplay]:
    """The display for ``stream``: a bar if it is a terminal, plain lines otherwise.

    While it is open, log records below WARNING are dropped unless ``verbose`` (then the
    root logger's level, LOG_LEVEL, decides alone).
    """
    display: JobDisplay
    if _is_terminal(stream):
        console = Console(file=stream, force_terminal=True, highlight=False)
        display = LiveDisplay(console)
    else:
        console = None
        display = PlainDisplay(stream)
    with _logs_while_showing(console, quiet=not verbose):
        try:
            yield display
        finally:
            display.close()
