"""`python bot.py generate` as the operator sees it: a bar on a terminal, plain lines in a pipe.

The real bot.py runs in a subprocess against its simulator, under a pseudo-terminal or with
its output piped. A missing ffmpeg (IMAGEIO_FFMPEG_EXE pointing nowhere) makes the download
check log a WARNING every run, which must show without --verbose while INFO lines do not.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services.simulator import DEFAULT_VIDEO_PATH

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
WARNING_TEXT = "not decoded to check it"  # the download's WARNING when ffmpeg cannot run
INFO_TEXT = "applying database migration"  # an INFO line every run logs


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    # Nothing from the outer shell that would change what is drawn or logged.
    dropped = ("DISCORD_", "SEGMIND_", "SIMULAT", "LOG_", "FORCE_COLOR", "NO_COLOR", "TTY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    env.update(
        SIMULATOR_QUEUE_SECONDS="0.5",
        SIMULATOR_PROCESSING_SECONDS="2",
        POLL_INTERVAL_SECONDS="0.5",  # the floor: the fastest an operator may poll
        DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'bot.db'}",
        LOG_LEVEL="INFO",
        IMAGEIO_FFMPEG_EXE=str(tmp_path / "no-ffmpeg-here"),
        TERM="xterm-256color",
    )
    env.update(extra)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "bot.py"), "--simulate", "generate", *args]


def in_terminal(
    args: list[str],
    tmp_path: Path,
    *,
    when: Callable[[str, subprocess.Popen[bytes]], None] | None = None,
    **extra: str,
) -> tuple[int, str]:
    """Run under a 120x40 pseudo-terminal; all it writes, read until EOF, and its exit code."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        args,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=tmp_path,
        env=environment(tmp_path, **extra),
        close_fds=True,
    )
    os.close(slave)
    received = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no EOF within {TIMEOUT}s; so far: {received[-2000:]!r}")
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # Linux: EIO once the child's side is closed
                break
            if not chunk:
                break
            received += chunk
            if when is not None:
                when(received.decode(errors="replace"), proc)
        return proc.wait(timeout=TIMEOUT), received.decode()
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def in_pipe(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=tmp_path,
        env=environment(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def screen_lines(raw: str) -> list[str]:
    """The lines as they were written, escape codes dropped; a redraw starts a new line."""
    return [line for line in re.split(r"\r\n|\r|\n", ANSI.sub("", raw)) if line.strip()]


def saved_line(out: Path, seed: int) -> re.Pattern[str]:
    return re.compile(rf"saved {re.escape(str(out))} \(\d+\.\d [kM]B, seed {seed}\)")


def test_a_terminal_gets_a_redrawn_bar_and_a_last_line_with_the_file_and_seed(tmp_path):
    out = tmp_path / "clips" / "cat.mp4"
    code, raw = in_terminal(command("a cat surfing", "--out", str(out), "--seed", "42"), tmp_path)
    assert code == 0, raw
    assert out.read_bytes() == DEFAULT_VIDEO_PATH.read_bytes()
    lines = screen_lines(raw)
    bars = [line for line in lines if "━" in line]
    # Drawn again and again in place: erased, then redrawn, with the estimate moving on.
    assert raw.count("\r\x1b[2K") >= 3
    assert len({re.search(r"about \d+%", bar).group() for bar in bars if "about" in bar}) >= 2
    assert any(bar.startswith(("queued at Segmind", "generating")) for bar in bars)
    assert any(re.search(r"~\d+:\d\d left \(\d\d:\d\d\)", bar) for bar in bars)
    assert bars[-1].startswith("done") and "100%" in bars[-1]
    assert saved_line(out, 42).fullmatch(lines[-1]), lines[-1]


def test_a_warning_prints_whole_above_the_bar_and_info_stays_quiet(tmp_path):
    out = tmp_path / "cat.mp4"
    code, raw = in_terminal(command("a cat", "--out", str(out)), tmp_path)
    assert code == 0, raw
    lines = screen_lines(raw)
    warnings = [line for line in lines if WARNING_TEXT in line]
    assert len(warnings) == 1
    # A line of its own, not spliced into a bar, and the bar is drawn again below it.
    assert " WARNING services.download: download http" in warnings[0]
    assert "━" not in warnings[0]
    assert any("━" in line for line in lines[lines.index(warnings[0]) + 1 :])
    assert INFO_TEXT not in raw and " INFO " not in raw


def test_verbose_lets_info_lines_through_above_the_bar(tmp_path):
    out = tmp_path / "cat.mp4"
    code, raw = in_terminal(command("a cat", "--out", str(out), "--verbose"), tmp_path)
    assert code == 0, raw
    lines = screen_lines(raw)
    assert any(INFO_TEXT in line and "━" not in line for line in lines)
    assert any(re.search(r" INFO +services\.jobs: job=1 submitted", line) for line in lines)
    assert saved_line(out, int(re.search(r"seed (\d+)\)$", lines[-1]).group(1))).fullmatch(
        lines[-1]
    )


def test_a_failure_in_a_terminal_ends_with_the_reason_as_the_last_line(tmp_path):
    out = tmp_path / "x.mp4"
    code, raw = in_terminal(command("a [fail] prompt", "--out", str(out)), tmp_path)
    assert code == 1, raw
    lines = screen_lines(raw)
    assert lines[-1].startswith("failed: Segmind could not make this video")
    assert any(line.startswith("detail: request_id=") for line in lines)
    assert any(line.startswith("failed ") and "━" in line for line in lines)  # the bar's end
    assert not out.exists()


def test_ctrl_c_in_a_terminal_stops_the_bar_and_says_what_may_be_billed(tmp_path):
    def interrupt_once_generating(seen: str, proc: subprocess.Popen[bytes]) -> None:
        if "generating" in seen and not interrupted:
            interrupted.append(True)
            proc.send_signal(signal.SIGINT)

    interrupted: list[bool] = []
    code, raw = in_terminal(
        command("a slow cat", "--out", str(tmp_path / "x.mp4")),
        tmp_path,
        when=interrupt_once_generating,
        SIMULATOR_PROCESSING_SECONDS="120",
    )
    assert interrupted
    assert code == 130, raw
    lines = screen_lines(raw)
    assert lines[-1] == "Stopped. A clip already sent to Segmind may still be billed."
    # The cursor the bar hid is shown again before that line.
    assert raw.rindex("\x1b[?25h") < raw.rindex("Stopped.")


def test_a_pipe_gets_plain_lines_and_the_same_last_line(tmp_path):
    out = tmp_path / "cat.mp4"
    result = in_pipe(command("a cat", "--out", str(out), "--seed", "7"), tmp_path)
    assert result.returncode == 0, result.stderr
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\r" not in stream
    lines = result.stdout.splitlines()
    assert "job 1: submitting" in lines
    assert any(line.startswith("job 1: queued at Segmind") for line in lines)
    assert any(line.startswith("job 1: generating") for line in lines)
    assert "━" not in result.stdout
    assert saved_line(out, 7).fullmatch(lines[-1]), lines[-1]
    # Logs keep to stderr: the warning, and no INFO without --verbose.
    assert WARNING_TEXT in result.stderr and " WARNING " in result.stderr
    assert INFO_TEXT not in result.stderr and " INFO " not in result.stderr


def test_verbose_in_a_pipe_logs_at_log_level(tmp_path):
    result = in_pipe(command("a cat", "--out", str(tmp_path / "c.mp4"), "--verbose"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert INFO_TEXT in result.stderr
    assert WARNING_TEXT in result.stderr
    assert "\x1b" not in result.stderr
