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

    async def delete(self, key: str) -> None:
        await self._db.execute("DELETE FROM meta WHERE key = ?", (key,))

    async def get_many(self, keys: tuple[str, ...]) -> dict[str, str]:
        """The stored values of ``keys`` (those missing are left out), in one read."""
        marks = ", ".join("?" for _ in keys)
        rows = await self._db.fetchall(f"SELECT key, value FROM meta WHERE key IN ({marks})", keys)
        return {str(row[0]): str(row[1]) for row in rows}

    async def raise_to(self, key: str, value: float) -> None:
        """Store ``value`` unless a larger number is stored already (one statement, so a
        smaller value written at the same time by another process never wins)."""
        # DOUBLE PRECISION: PostgreSQL's REAL is 4 bytes (a timestamp off by minutes);
        # SQLite reads the name as its own REAL.
        await self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE"
            " SET value = excluded.value"
            " WHERE CAST(meta.value AS DOUBLE PRECISION)"
            " < CAST(excluded.value AS DOUBLE PRECISION)",
            (key, repr(value)),
        )
