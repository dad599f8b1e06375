"""The channels where a server lets `/video` work (migration 0011), each change audited."""

from __future__ import annotations

from services.models import AllowedChannel
from services.storage.database import Database, Executor, Row

# Audit actions for the allow-list; ``cogs.limits.channels`` reads them back into words.
ALLOW_ACTION = "allow_channel"
DISALLOW_ACTION = "disallow_channel"


def channel_target(channel_id: int) -> str:
    """The audit log's target for one channel: `channel:<id>`."""
    return f"channel:{channel_id}"


class ChannelStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self, guild_id: int) -> list[AllowedChannel]:
        """The server's allowed channels, oldest first (the order moderators added them)."""
        rows = await self._db.fetchall(
            "SELECT guild_id, channel_id, added_by, added_at FROM allowed_channels"
            " WHERE guild_id = ? ORDER BY added_at, channel_id",
            (guild_id,),
        )
        return [_channel(row) for row in rows]

    async def add(
        self, guild_id: int, channel_id: int, *, actor_id: int, now: float, most: int
    ) -> tuple[bool, int] | None:
        """List a channel, audited in the same transaction: (whether it was new, how many now).

        None when the server already lists ``most`` channels, counted inside the transaction
        so two adds at once cannot both slip under it.
        """
        async with self._db.transaction() as tx:
            count = await _count(tx, guild_id)
            if await _listed(tx, guild_id, channel_id):
                return False, count
            if count >= most:
                return None
            await tx.execute(
                "INSERT INTO allowed_channels (guild_id, channel_id, added_by, added_at)"
                " VALUES (?, ?, ?, ?)",
                (guild_id, channel_id, actor_id, now),
            )
            await _audit(tx, guild_id, actor_id, ALLOW_ACTION, channel_id, count + 1, now)
            return True, count + 1

    async def remove(
        self, guild_id: int, channel_id: int, *, actor_id: int, now: float, why: str = ""
    ) -> tuple[bool, int]:
        """Unlist a channel, audited: (whether it was listed, how many remain).

        ``why`` is kept in the audit detail (`deleted` when Discord deleted the channel).
        """
        async with self._db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM allowed_channels WHERE guild_id = ? AND channel_id = ?",
                (guild_id, channel_id),
            )
            count = await _count(tx, guild_id)
            if removed:
                await _audit(tx, guild_id, actor_id, DISALLOW_ACTION, channel_id, count, now, why)
            return bool(removed), count


async def _count(tx: Executor, guild_id: int) -> int:
    row = await tx.fetchone("SELECT COUNT(*) FROM allowed_channels WHERE guild_id = ?", (guild_id,))
    return int(row[0]) if row else 0


async def _listed(tx: Executor, guild_id: int, channel_id: int) -> bool:
    row = await tx.fetchone(
        "SELECT 1 FROM allowed_channels WHERE guild_id = ? AND channel_id = ?",
        (guild_id, channel_id),
    )
    return row is not None


async def _audit(
    tx: Executor,
    guild_id: int,
    actor_id: int,
    action: str,
    channel_id: int,
    listed: int,
    now: float,
    why: str = "",
) -> None:
    # Detail `listed=<n>` (plus `; <why>`): the history says whether /video now works
    # everywhere, without reading the table as it is today.
    detail = f"listed={listed}" + (f"; {why}" if why else "")
    await tx.execute(
        "INSERT INTO audit_log (guild_id, actor_id, action, target, detail, at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (guild_id, actor_id, action, channel_target(channel_id), detail, now),
    )


def _channel(row: Row) -> AllowedChannel:
    return AllowedChannel(int(row[0]), int(row[1]), int(row[2]), float(row[3]))
