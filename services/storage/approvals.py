"""Approval before spending: a server's rule and the requests held for it (migration 0012)."""

from __future__ import annotations

from services.storage.database import Executor


class ApprovalStore:
    def __init__(self, db: Executor) -> None:
        self._db = db
