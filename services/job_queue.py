"""What is queued and running, per member or per server, as `/videoqueue` shows it."""

from __future__ import annotations

from services.clock import Clock
from services.jobs import JobRunner
from services.storage import Storage


class JobQueue:
    def __init__(self, storage: Storage, runner: JobRunner, clock: Clock) -> None:
        self._storage = storage
        self._runner = runner
        self._clock = clock
