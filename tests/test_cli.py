"""`python bot.py generate --simulate` as a newcomer runs it: a real subprocess, a real file."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from services.simulator import DEFAULT_VIDEO_PATH

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SEGMIND_", "SIMULAT"))
    }
    clean.update(
        SIMULATOR_QUEUE_SECONDS="0.1",
        SIMULATOR_PROCESSING_SECONDS="0.3",
        POLL_INTERVAL_SECONDS="0.5",  # the floor: the fastest an operator may poll
        **env,
    )
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_generate_with_the_simulator_writes_the_simulators_mp4(tmp_path):
    out = tmp_path / "clips" / "cat.mp4"
    result = run(
        ["--simulate", "generate", "a cat surfing", "--out", str(out), "--seed", "42"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == DEFAULT_VIDEO_PATH.read_bytes()
    assert "seed 42" in result.stdout
    assert "generating" in result.stdout or "queued at Segmind" in result.stdout
    assert f"saved {out}" in result.stdout
    # It used a scratch database, not the bot's.
    assert not (tmp_path / "data").exists()


def test_simulate_is_also_understood_after_the_command(tmp_path):
    out = tmp_path / "cat.mp4"
    result = run(["generate", "a cat surfing", "--out", str(out), "--simulate"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == DEFAULT_VIDEO_PATH.read_bytes()


def test_generate_reports_a_segmind_failure_and_exits_non_zero(tmp_path):
    out = tmp_path / "x.mp4"
    result = run(["--simulate", "generate", "a [fail] prompt", "--out", str(out)], tmp_path)
    assert result.returncode == 1
    assert "failed: Segmind could not make this video" in result.stdout
    assert not out.exists()


def test_generate_refuses_bad_options_before_sending(tmp_path):
    result = run(
        ["--simulate", "generate", "a cat", "--out", str(tmp_path / "x.mp4"), "--steps", "99"],
        tmp_path,
    )
    assert result.returncode == 2
    assert "`steps` must be between 25 and 50" in result.stderr
    assert "Nothing was sent" in result.stderr


def test_generate_refuses_a_folder_as_out_before_anything_is_paid(tmp_path):
    result = run(["--simulate", "generate", "a cat", "--out", str(tmp_path)], tmp_path)
    assert result.returncode == 2
    assert "is a folder" in result.stderr
    assert "sending to" not in result.stdout  # refused before any job existed


def test_generate_refuses_an_out_under_a_file_before_anything_is_paid(tmp_path):
    (tmp_path / "cat.mp4").write_bytes(b"")
    out = tmp_path / "cat.mp4" / "clip.mp4"
    result = run(["--simulate", "generate", "a cat", "--out", str(out)], tmp_path)
    assert result.returncode == 2
    assert f"{tmp_path / 'cat.mp4'} is a file, not a folder" in result.stderr
    assert "sending to" not in result.stdout


async def test_a_clip_that_cannot_be_written_is_kept_elsewhere_and_ends_the_run(tmp_path):
    import io

    from services.cli import ConsoleListener
    from services.console import PlainDisplay
    from services.models import Job, JobState, VideoRequest

    clip = tmp_path / "made.mp4"
    clip.write_bytes(b"paid-for bytes")
    (tmp_path / "blocker").write_bytes(b"")  # became a file after the check, say
    listener = ConsoleListener(tmp_path / "blocker" / "x.mp4", PlainDisplay(io.StringIO()))
    job = Job(1, 0, 0, 0, VideoRequest.create("a cat", seed=9), JobState.DOWNLOADED, 0.0)
    job = dataclasses.replace(job, clip_path=str(clip))

    # Returning (not raising) ends the job: a write error is not retried for ever.
    assert await listener.on_clip_ready(job) is None
    assert listener.exit_code == 1
    assert listener.last_line.startswith(f"failed: {tmp_path / 'blocker' / 'x.mp4'} could not")
    kept = Path(listener.last_line.split("the clip is kept at ")[1].split(" (seed")[0])
    try:
        assert kept.read_bytes() == b"paid-for bytes"
        assert listener.last_line.endswith("(seed 9)")
    finally:
        kept.unlink()


def test_generate_without_a_key_explains_what_is_missing(tmp_path):
    result = run(["generate", "a cat", "--out", str(tmp_path / "x.mp4")], tmp_path)
    assert result.returncode == 2
    assert "SEGMIND_API_KEY is missing" in result.stderr
    assert "DISCORD_TOKEN" not in result.stderr  # not needed without Discord


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = (
        "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"
        " && .venv/bin/python -m pytest"
    )
    assert f"    {command}\n" in readme
    assert f"\n{command}\n" in ci


async def test_a_rejected_key_is_told_to_the_operator_in_the_operators_words(tmp_path):
    import io

    from services.cli import ConsoleListener
    from services.console import PlainDisplay
    from services.errors import SegmindAuthError

    out = io.StringIO()
    listener = ConsoleListener(tmp_path / "x.mp4", PlainDisplay(out))
    await listener.on_failed(
        None, SegmindAuthError(detail="submit: HTTP 401: Invalid API key", status=401)
    )
    assert "HTTP 401" in out.getvalue()  # the detail, for the operator, at once
    # The last line, printed once the job is over, in the operator's words.
    assert "check SEGMIND_API_KEY" in listener.last_line
    assert listener.last_line.startswith("failed: ")
    assert "moderators" not in listener.last_line + out.getvalue()
