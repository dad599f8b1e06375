"""Approval before spending: which requests wait for a moderator, and their answers."""

from __future__ import annotations

from services.clock import Clock
from services.models import JobOrigin
from services.storage import Storage


class Approvals:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    async def required(self, origin: JobOrigin) -> bool:
        """True when this member's request must wait for a moderator's approval."""
        return False
