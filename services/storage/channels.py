"""The channels where a server lets `/video` work (migration 0011)."""

from __future__ import annotations

from services.storage.database import Executor


class ChannelStore:
    def __init__(self, db: Executor) -> None:
        self._db = db
