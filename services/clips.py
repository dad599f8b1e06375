"""Clip files on disk, named and removed in one place: the download, its re-encoded copies, sweeps.

In the clips directory:

* ``job-{id}.mp4``: a job's downloaded clip, kept until delivered (private ones longer,
  so their owner can share them);
* ``job-{id}-fit-{limit}.mp4``: a copy re-encoded under an upload limit of ``limit``
  bytes, made on demand and reused by the next post with that limit;
* ``.job-{id}.mp4.*.part``: a download under way (``services.download`` writes it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection
from pathlib import Path

from services.models import Job
from services.transcode import TranscodeFailed, fit_to_size

log = logging.getLogger(__name__)


class ClipFiles:
    """The clips directory: where each job's clip goes, copies that fit a limit, and cleanup."""

    def __init__(self, directory: Path) -> None:
        self._directory = Path(directory)

    def __repr__(self) -> str:
        return f"ClipFiles({str(self._directory)!r})"

    @property
    def directory(self) -> Path:
        return self._directory

    def path_for(self, job_id: int) -> Path:
        """Where job ``job_id``'s downloaded clip is stored."""
        return self._directory / f"job-{job_id}.mp4"

    def exists(self, job: Job) -> bool:
        """Whether the clip the job's record points at is still on disk."""
        return bool(job.clip_path) and Path(job.clip_path or "").is_file()

    async def fit(self, job: Job, limit: int, source: Path | None = None) -> Path | None:
        """A file of the clip within ``limit`` bytes, or None when none can be made.

        ``source`` defaults to the job's stored clip. It is returned itself when it fits;
        a copy already re-encoded for this limit is reused; else one is made now.
        """
        source = source if source is not None else self._stored(job)
        if source.stat().st_size <= limit:
            return source
        smaller = self._fitted(source, limit)
        if smaller.is_file() and smaller.stat().st_size <= limit:
            return smaller
        # ffmpeg reads the duration from the file; the request's own length is the fallback.
        fps = max(1, job.request.frame_rate)
        try:
            return await fit_to_size(
                source, smaller, limit, fallback_duration=job.request.input_frames / fps
            )
        except (TimeoutError, TranscodeFailed, OSError) as error:
            log.warning("job=%s could not be re-encoded under %d bytes: %s", job.id, limit, error)
            return None

    def remove(self, path: Path) -> None:
        """Delete a clip and every copy of it re-encoded to fit a limit; missing files are fine."""
        for candidate in (path, *path.parent.glob(f"{path.stem}-fit-*.mp4")):
            with contextlib.suppress(OSError):
                candidate.unlink()

    def sweep(
        self,
        *,
        older_than: float,
        now: float,
        keep: Collection[str],
        partial_downloads: bool = False,
    ) -> int:
        """Remove clips last written over ``older_than`` seconds ago, except those in ``keep``.

        Returns how many were removed. ``partial_downloads`` also removes every unfinished
        download, whatever its age: only safe when none is under way (at start).
        """
        if partial_downloads:
            for part in self._directory.glob(".*.part"):
                with contextlib.suppress(OSError):
                    part.unlink()
        removed = 0
        for path in self._directory.glob("*.mp4"):
            try:
                if str(path) not in keep and now - path.stat().st_mtime > older_than:
                    path.unlink()
                    removed += 1
            except OSError:
                continue  # gone already, or not ours to remove: the next sweep looks again
        return removed

    def _stored(self, job: Job) -> Path:
        if not job.clip_path:
            raise ValueError(f"job={job.id} has no stored clip")
        return Path(job.clip_path)

    @staticmethod
    def _fitted(source: Path, limit: int) -> Path:
        return source.with_name(f"{source.stem}-fit-{limit}.mp4")
