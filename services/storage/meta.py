"""Small key/value facts kept between runs (for example the synced command schema's hash)."""

from __future__ import annotations

from services.storage.database import Executor


class MetaStore:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def get(self, key: str) -> str | None:
        row = await self._db.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else None

    async def setdefault(self, key: str, value: str) -> str:
        """The stored value, storing ``value`` first when there is none (once, atomically)."""
        await self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING", (key, value)
        )
        stored = await self.get(key)
        assert stored is not None
        return stored

    async def set(self, key: str, value: str) -> None:
        await self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
