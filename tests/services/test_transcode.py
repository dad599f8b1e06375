"""Re-encoding to fit an upload limit, with the ffmpeg the requirements install."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from services.simulator import DEFAULT_VIDEO_PATH
from services.transcode import (
    TranscodeFailed,
    decode_problem,
    ffmpeg_exe,
    fit_to_size,
    probe_duration,
    video_kbps,
)


def make_big_clip(path: Path, seconds: int = 6) -> Path:
    """A noisy, high-bitrate clip (noise does not compress), about 2-4 MB."""
    subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"nullsrc=s=480x320:r=8:d={seconds},geq=random(1)*255:128:128",
            "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


async def test_probe_reads_the_sample_duration():
    duration = await probe_duration(DEFAULT_VIDEO_PATH)
    assert duration is not None and 5.5 < duration < 6.5


async def test_a_large_clip_is_re_encoded_under_the_limit(tmp_path):
    src = make_big_clip(tmp_path / "big.mp4")
    limit = 300_000
    assert src.stat().st_size > limit
    out = await fit_to_size(src, tmp_path / "small.mp4", limit, fallback_duration=6)
    assert 0 < out.stat().st_size <= limit
    # Still a playable video of about the same length.
    duration = await probe_duration(out)
    assert duration is not None and 5.5 < duration < 6.5


async def test_an_impossible_limit_fails_and_leaves_no_file(tmp_path):
    src = make_big_clip(tmp_path / "big.mp4", seconds=2)
    with pytest.raises(TranscodeFailed):
        await fit_to_size(src, tmp_path / "tiny.mp4", 2_000, fallback_duration=2)
    assert not (tmp_path / "tiny.mp4").exists()


async def test_a_broken_file_fails_cleanly(tmp_path):
    src = tmp_path / "broken.mp4"
    src.write_bytes(b"not a video at all")
    with pytest.raises(TranscodeFailed):
        await fit_to_size(src, tmp_path / "out.mp4", 1_000_000, fallback_duration=6)


def test_bitrate_budget():
    assert video_kbps(10 * 1024 * 1024, 6.0) == int(10 * 1024 * 1024 * 8 * 0.9 / 6 / 1000)
    assert video_kbps(1000, 600) == 64  # never below a watchable floor


async def test_an_encode_cut_short_leaves_no_file_that_looks_finished(tmp_path):
    src = make_big_clip(tmp_path / "big.mp4", seconds=12)
    dest = tmp_path / "small.mp4"
    partial = tmp_path / ".small.mp4.part"
    encode = asyncio.create_task(fit_to_size(src, dest, 300_000, fallback_duration=12))
    async with asyncio.timeout(30):
        while not partial.exists():  # ffmpeg is writing
            await asyncio.sleep(0.005)
    encode.cancel()  # a shutdown, or the member's Cancel
    with pytest.raises(asyncio.CancelledError):
        await encode
    assert not dest.exists() and not partial.exists()


# --- decoding a clip to check it ------------------------------------------------------------


async def test_the_sample_clip_decodes_cleanly():
    assert await decode_problem(DEFAULT_VIDEO_PATH) is None


async def test_a_clip_with_damaged_frames_does_not_decode(tmp_path):
    """Same length, boxes intact, a stretch of the frames zeroed: only decoding shows it."""
    damaged = bytearray(DEFAULT_VIDEO_PATH.read_bytes())
    damaged[5_000:9_000] = bytes(4_000)
    path = tmp_path / "damaged.mp4"
    path.write_bytes(bytes(damaged))

    problem = await decode_problem(path)

    assert problem is not None and problem.startswith("ffmpeg could not decode it (exit ")


async def test_a_clip_cut_short_does_not_decode(tmp_path):
    path = tmp_path / "cut.mp4"
    path.write_bytes(DEFAULT_VIDEO_PATH.read_bytes()[:20_000])

    assert await decode_problem(path) is not None


async def test_decoding_is_bounded_by_its_timeout(tmp_path):
    src = make_big_clip(tmp_path / "big.mp4", seconds=12)

    with pytest.raises(TimeoutError):
        await decode_problem(src, timeout=0.001)
