"""The gallery: each server's gallery channel and mode, and which clips were posted there."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from services.storage.database import Database


class GalleryMode(Enum):
    MANUAL = "manual"  # a Publish button on public result cards
    AUTO = "auto"  # every delivered public clip


@dataclass(frozen=True, slots=True)
class Gallery:
    guild_id: int
    channel_id: int
    mode: GalleryMode


@dataclass(frozen=True, slots=True)
class GalleryPost:
    """A clip's claim on the gallery; ``message_id`` is None while (or if) it is being posted."""

    job_id: int
    channel_id: int
    message_id: int | None


class GalleryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, guild_id: int) -> Gallery | None:
        row = await self._db.fetchone(
            "SELECT channel_id, mode FROM gallery_settings WHERE guild_id = ?", (guild_id,)
        )
        return Gallery(guild_id, int(row[0]), GalleryMode(row[1])) if row else None

    async def set(
        self, guild_id: int, gallery: tuple[int, GalleryMode] | None, *, actor_id: int, now: float
    ) -> None:
        """Set (or with None, remove) the server's gallery, audited in the same transaction."""
        async with self._db.transaction() as tx:
            if gallery is None:
                await tx.execute("DELETE FROM gallery_settings WHERE guild_id = ?", (guild_id,))
                detail = "off"
            else:
                channel_id, mode = gallery
                await tx.execute(
                    "INSERT INTO gallery_settings (guild_id, channel_id, mode, set_by, set_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
                    " channel_id = excluded.channel_id, mode = excluded.mode,"
                    " set_by = excluded.set_by, set_at = excluded.set_at",
                    (guild_id, channel_id, mode.value, actor_id, now),
                )
                detail = f"{channel_id} {mode.value}"
            await tx.execute(
                "INSERT INTO audit_log (guild_id, actor_id, action, target, detail, at)"
                " VALUES (?, ?, 'set_gallery', 'gallery', ?, ?)",
                (guild_id, actor_id, detail, now),
            )

    async def claim(
        self, job_id: int, guild_id: int, channel_id: int, *, by: int, now: float
    ) -> bool:
        """Claim the clip's one gallery post; True when this call claimed it.

        One statement, durable: two clicks, two processes or a restart cannot both post it.
        """
        changed = await self._db.execute(
            "INSERT INTO gallery_posts (job_id, guild_id, channel_id, claimed_by, claimed_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
            (job_id, guild_id, channel_id, by, now),
            durable=True,
        )
        return changed == 1

    async def release(self, job_id: int) -> None:
        """The post surely failed: the clip may be published later."""
        await self._db.execute(
            "DELETE FROM gallery_posts WHERE job_id = ? AND message_id IS NULL", (job_id,)
        )

    async def posted(self, job_id: int, message_id: int) -> None:
        await self._db.execute(
            "UPDATE gallery_posts SET message_id = ? WHERE job_id = ?", (message_id, job_id)
        )

    async def post_of(self, job_id: int) -> GalleryPost | None:
        row = await self._db.fetchone(
            "SELECT job_id, channel_id, message_id FROM gallery_posts WHERE job_id = ?",
            (job_id,),
        )
        return GalleryPost(int(row[0]), int(row[1]), row[2]) if row else None
