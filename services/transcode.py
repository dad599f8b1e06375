"""Re-encode a clip so it fits an upload limit (Discord's is 10 MiB without boosts or Nitro).

The bitrate is chosen from the clip's duration and the byte budget, with room for the
container; if the first try still comes out too large, a second, smaller one is made.
ffmpeg comes from the imageio-ffmpeg wheel, so the host needs no system package.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)

# Keep below the limit: the container and a request's own overhead count too.
HEADROOM = 0.90
MIN_VIDEO_KBPS = 64
ENCODE_TIMEOUT = 180.0
# Decoding a few seconds of video takes well under a second; a clip that takes minutes is
# not one Segmind made.
DECODE_CHECK_TIMEOUT = 120.0
_DURATION = re.compile(rb"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")


class TranscodeFailed(Exception):
    """The clip could not be made small enough (or ffmpeg is unavailable)."""


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - it is in requirements.txt
        raise TranscodeFailed("imageio-ffmpeg is not installed") from exc
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as exc:  # pragma: no cover - the wheel ships its binary
        raise TranscodeFailed(f"no ffmpeg binary: {exc}") from exc


async def _run(args: list[str], timeout: float) -> tuple[int, bytes]:
    process = await asyncio.create_subprocess_exec(
        ffmpeg_exe(), *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return process.returncode or 0, stderr


async def probe_duration(path: Path) -> float | None:
    """The clip's duration in seconds, read from ffmpeg's own description of it."""
    _, stderr = await _run(["-hide_banner", "-i", str(path)], 30.0)
    match = _DURATION.search(stderr)
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


async def decode_problem(path: Path, timeout: float = DECODE_CHECK_TIMEOUT) -> str | None:
    """What goes wrong when ffmpeg decodes every frame of the clip; None when nothing does.

    ``-xerror`` makes ffmpeg stop with a non-zero exit at the first error, which a broken
    frame alone would not do; frames go to the null muxer, so nothing is written. Raises
    TimeoutError past ``timeout`` (ffmpeg is killed) and TranscodeFailed when ffmpeg
    cannot be run at all.
    """
    args = [
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        "-xerror",
        # The file is untrusted: one thread (bounded memory), read from disk only.
        "-threads",
        "1",
        "-protocol_whitelist",
        "file",
        "-i",
        str(path),
        "-f",
        "null",
        "-",
    ]
    try:
        code, stderr = await _run(args, timeout)
    except TimeoutError:
        raise  # an OSError too, but not a missing ffmpeg
    except OSError as exc:
        raise TranscodeFailed(f"ffmpeg could not be started: {exc}") from exc
    if code == 0:
        return None
    said = " ".join(stderr.decode(errors="replace").split())
    return f"ffmpeg could not decode it (exit {code}): {said[-300:] or 'no message'}"


def video_kbps(max_bytes: int, duration: float, factor: float = 1.0) -> int:
    """The video bitrate that fills ``max_bytes`` (less headroom) over ``duration`` seconds."""
    bits = max_bytes * 8 * HEADROOM * factor
    return max(MIN_VIDEO_KBPS, int(bits / max(duration, 0.5) / 1000))


async def fit_to_size(src: Path, dest: Path, max_bytes: int, *, fallback_duration: float) -> Path:
    """Write a re-encoded copy of ``src`` to ``dest`` no larger than ``max_bytes``; return ``dest``.

    ffmpeg writes to a hidden partial file that becomes ``dest`` only when complete: an
    encode cut short (cancel, timeout, crash) must never be mistaken for a finished clip.
    """
    duration = await probe_duration(src) or fallback_duration
    partial = dest.with_name(f".{dest.name}.part")
    try:
        for factor in (1.0, 0.6):
            kbps = video_kbps(max_bytes, duration, factor)
            args = [
                "-hide_banner", "-loglevel", "error", "-y", "-i", str(src),
                "-an", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps * 2}k",
                "-movflags", "+faststart", "-f", "mp4", str(partial),
            ]  # fmt: skip
            code, stderr = await _run(args, ENCODE_TIMEOUT)
            if code != 0:
                detail = stderr[-300:].decode(errors="replace")
                raise TranscodeFailed(f"ffmpeg exited {code}: {detail}")
            size = partial.stat().st_size
            log.info(
                "re-encoded %s at %dkbps: %d bytes (limit %d)", src.name, kbps, size, max_bytes
            )
            if size <= max_bytes:
                partial.replace(dest)
                return dest
        raise TranscodeFailed(f"still {size} bytes after re-encoding; limit {max_bytes}")
    finally:
        partial.unlink(missing_ok=True)
