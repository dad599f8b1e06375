"""Recent jobs' times at Segmind, by kind of job, for ``services.finish_estimate``."""

from __future__ import annotations

from services.finish_estimate import RECENT_SAMPLES, Timing
from services.storage.database import Executor

# Kept per kind: a few more than the model reads, so pruning need not run every time.
_KEPT_PER_KIND = RECENT_SAMPLES * 2
# Read back at start: enough for every kind a server uses, bounded whatever the history.
_LOADED = 4000


class TimingStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def add(self, timing: Timing, *, now: float) -> None:
        """Keep one job's timing; the kind's oldest beyond what is kept are dropped."""
        await self._db.execute(
            "INSERT INTO job_timings"
            " (input_frames, steps, queue_seconds, processing_seconds, recorded_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                timing.input_frames,
                timing.steps,
                timing.queue_seconds,
                timing.processing_seconds,
                now,
            ),
        )
        await self._db.execute(
            "DELETE FROM job_timings WHERE input_frames = ? AND steps = ? AND id <= ("
            " SELECT id FROM job_timings WHERE input_frames = ? AND steps = ?"
            " ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (timing.input_frames, timing.steps, timing.input_frames, timing.steps, _KEPT_PER_KIND),
        )

    async def recent(self) -> list[Timing]:
        """The newest timings, oldest first (the order to learn them in)."""
        rows = await self._db.fetchall(
            "SELECT input_frames, steps, queue_seconds, processing_seconds FROM job_timings"
            " ORDER BY id DESC LIMIT ?",
            (_LOADED,),
        )
        return [Timing(int(r[0]), int(r[1]), float(r[2]), float(r[3])) for r in reversed(rows)]
