"""The generate display's rules that a subprocess cannot pin down: throttling and log routing."""

from __future__ import annotations

import io
import logging
import re

import pytest

from services import logsafety
from services.console import PlainDisplay, open_display
from services.models import Progress, ProgressPhase

SECRET = "sg-secret-key-0123456789"


class TerminalStream(io.StringIO):
    """What the display takes for a terminal."""

    def isatty(self) -> bool:
        return True


def at_segmind(elapsed: float, phase: ProgressPhase = ProgressPhase.PROCESSING) -> Progress:
    return Progress(1, phase, elapsed=elapsed, fraction=elapsed / 100, expected=100.0)


def test_plain_lines_come_once_per_phase_change_and_at_most_every_five_seconds():
    printed = io.StringIO()
    display = PlainDisplay(printed)
    display.show(Progress(1, ProgressPhase.SUBMITTING))
    for elapsed in (0.0, 1.0, 4.9):
        display.show(at_segmind(elapsed, ProgressPhase.SEGMIND_QUEUED))
    display.show(at_segmind(5.0, ProgressPhase.SEGMIND_QUEUED))  # five seconds on
    display.show(at_segmind(6.0))  # a new phase, at once
    display.show(at_segmind(7.0))
    assert printed.getvalue().splitlines() == [
        "job 1: submitting",
        "job 1: queued at Segmind",
        "job 1: queued at Segmind, 5s elapsed, about 5%, about 1:35 left",
        "job 1: generating, 6s elapsed, about 6%, about 1:34 left",
    ]


@pytest.fixture
def terminal_log(monkeypatch, caplog):
    """A root handler writing to a 'terminal', with the bot's redaction installed."""
    monkeypatch.setenv("TERM", "xterm-256color")
    caplog.set_level(logging.INFO)
    stderr = TerminalStream()
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    logsafety.install([SECRET])
    yield handler, stderr
    root.removeHandler(handler)


def test_on_a_terminal_logs_print_through_the_bars_console_redacted(terminal_log):
    handler, stderr = terminal_log
    screen = TerminalStream()
    log = logging.getLogger("services.test")
    with open_display(screen, verbose=False):
        log.warning("key %s refused", SECRET)
        log.info("an info line")
        assert handler not in logging.getLogger().handlers
    shown = screen.getvalue()
    assert "WARNING services.test: key [redacted] refused" in shown  # the handler's format
    assert SECRET not in shown
    assert "an info line" not in shown
    assert stderr.getvalue() == ""  # nothing went round the bar
    # Afterwards the operator's own handler is back, as it was.
    assert handler in logging.getLogger().handlers
    assert handler.level == logging.NOTSET
    log.info("after")
    assert "after" in stderr.getvalue()


def test_verbose_on_a_terminal_lets_info_through(terminal_log):
    screen = TerminalStream()
    with open_display(screen, verbose=True):
        logging.getLogger("services.test").info("an info line")
    assert "INFO services.test: an info line" in screen.getvalue()


def test_in_a_pipe_logs_stay_on_their_handler_above_warning_only(terminal_log):
    handler, stderr = terminal_log
    printed = io.StringIO()
    log = logging.getLogger("services.test")
    with open_display(printed, verbose=False) as display:
        assert isinstance(display, PlainDisplay)
        log.info("an info line")
        log.warning("key %s refused", SECRET)
    assert stderr.getvalue() == "WARNING services.test: key [redacted] refused\n"
    assert printed.getvalue() == ""
    assert handler.level == logging.NOTSET


def test_the_last_line_on_a_terminal_comes_after_the_bar(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    screen = TerminalStream()
    with open_display(screen, verbose=False) as display:
        display.say("a [fail] prompt is words, not markup")
        display.show(at_segmind(3.0))
        display.conclude("saved clip.mp4 (1.0 MB, seed 42)", ok=True)
    shown = screen.getvalue()
    assert "a [fail] prompt is words, not markup" in shown
    assert "━" in shown
    assert shown.rindex("done") < shown.rindex("saved clip.mp4 (1.0 MB, seed 42)")
    assert shown.rstrip().endswith("saved clip.mp4 (1.0 MB, seed 42)\x1b[0m")


@pytest.mark.parametrize("columns", ["40", "70", "120"])
def test_the_bar_stays_on_one_line_in_a_narrow_terminal(monkeypatch, columns):
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", columns)
    screen = TerminalStream()
    with open_display(screen, verbose=False) as display:
        display.show(at_segmind(3.0))
        display.show(at_segmind(50.0))
        display.conclude("saved clip.mp4 (1.0 MB, seed 42)", ok=True)
    visible = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    drawn = [line for line in re.split(r"[\r\n]", visible) if line.strip()]
    # Every line a redraw leaves is a whole bar (it starts with its phase) or the last line.
    assert drawn[-1] == "saved clip.mp4 (1.0 MB, seed 42)"
    assert all(line.startswith(("generating", "done")) for line in drawn[:-1]), drawn
    assert all(len(line) <= int(columns) for line in drawn)
