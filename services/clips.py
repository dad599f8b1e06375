"""Clip files on disk, named and removed in one place: the download, its re-encoded copies, sweeps.

In the clips directory:

* ``job-{id}.mp4``: a job's downloaded clip, kept until delivered (private ones longer,
  so their owner can share them);
* ``job-{id}-fit-{limit}.mp4``: a copy re-encoded under an upload limit of ``limit``
  bytes, made on demand and reused by the next post with that limit;
* ``.job-{id}.mp4.*.part``: a download under way (``services.download`` writes it).

Removing a clip takes the copies this store knows of, without listing the folder: a glob
per removal read every name in it, so hundreds of clips cost milliseconds each. The store
learns a copy when ``fit`` returns it, and copies left by an earlier process when
``sweep`` meets them (the bot sweeps at start, before any delivery).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Collection
from pathlib import Path

from services.models import Job
from services.transcode import TranscodeFailed, fit_to_size

log = logging.getLogger(__name__)

# A re-encoded copy's name, and the name of the clip it was made from.
_FITTED_NAME = re.compile(r"(?P<stem>.+)-fit-\d+\.mp4")


class ClipFiles:
    """The clips directory: where each job's clip goes, copies that fit a limit, and cleanup."""

    def __init__(self, directory: Path) -> None:
        self._directory = Path(directory)
        # Re-encoded copies on disk, by the clip they were made from.
        self._copies: dict[Path, set[Path]] = {}

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
            return self._remember(source, smaller)
        # ffmpeg reads the duration from the file; the request's own length is the fallback.
        fps = max(1, job.request.frame_rate)
        try:
            made = await fit_to_size(
                source, smaller, limit, fallback_duration=job.request.input_frames / fps
            )
        except (TimeoutError, TranscodeFailed, OSError) as error:
            log.warning("job=%s could not be re-encoded under %d bytes: %s", job.id, limit, error)
            return None
        return self._remember(source, made)

    def remove(self, path: Path) -> None:
        """Delete a clip and every copy of it re-encoded to fit a limit; missing files are fine."""
        for candidate in (path, *self._copies.pop(Path(path), ())):
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
        download, whatever its age: only safe when none is under way (at start). A copy
        that stays is remembered, so removing its clip later takes it too.
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
                    self._forget(path)
                    continue
            except OSError:
                continue  # gone already, or not ours to remove: the next sweep looks again
            source = _source_of(path)
            if source is not None:
                self._remember(source, path)
        return removed

    def _remember(self, source: Path, copy: Path) -> Path:
        self._copies.setdefault(Path(source), set()).add(copy)
        return copy

    def _forget(self, path: Path) -> None:
        """Drop a swept copy from the record (a swept clip's copies age out on their own)."""
        source = _source_of(path)
        if source is None:
            return
        copies = self._copies.get(source, set())
        copies.discard(path)
        if not copies:
            self._copies.pop(source, None)

    def _stored(self, job: Job) -> Path:
        if not job.clip_path:
            raise ValueError(f"job={job.id} has no stored clip")
        return Path(job.clip_path)

    @staticmethod
    def _fitted(source: Path, limit: int) -> Path:
        return source.with_name(f"{source.stem}-fit-{limit}.mp4")


def _source_of(path: Path) -> Path | None:
    """The clip a re-encoded copy was made from; None when ``path`` is not such a copy."""
    fitted = _FITTED_NAME.fullmatch(path.name)
    return None if fitted is None else path.with_name(f"{fitted['stem']}.mp4")
