"""A server's blocklist terms and the prompts they refused (migration 0010)."""

from __future__ import annotations

from services.storage.database import Executor


class BlocklistStore:
    def __init__(self, db: Executor) -> None:
        self._db = db
