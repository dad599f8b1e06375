"""The gallery: each server's gallery channel and mode, and which clips were posted there."""

from __future__ import annotations

from services.models import TAKEN_DOWN, Gallery, GalleryMode, GalleryPost
from services.storage.database import Database


def _audit_words(gallery: Gallery | tuple[int, GalleryMode] | None) -> str:
    """`5 auto` or `off`, as the audit log stores a gallery setting."""
    if gallery is None:
        return "off"
    channel_id, mode = (
        (gallery.channel_id, gallery.mode) if isinstance(gallery, Gallery) else gallery
    )
    return f"{channel_id} {mode.value}"


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
    ) -> Gallery | None:
        """Set (or with None, remove) the server's gallery, audited in the same transaction.

        Returns the gallery before. The audit entry keeps it too (`5 auto; was off`), so the
        history says what changed; a change to what already is is not recorded.
        """
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT channel_id, mode FROM gallery_settings WHERE guild_id = ?", (guild_id,)
            )
            before = Gallery(guild_id, int(row[0]), GalleryMode(row[1])) if row else None
            if _audit_words(before) == _audit_words(gallery):
                return before
            if gallery is None:
                await tx.execute("DELETE FROM gallery_settings WHERE guild_id = ?", (guild_id,))
            else:
                channel_id, mode = gallery
                await tx.execute(
                    "INSERT INTO gallery_settings (guild_id, channel_id, mode, set_by, set_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
                    " channel_id = excluded.channel_id, mode = excluded.mode,"
                    " set_by = excluded.set_by, set_at = excluded.set_at",
                    (guild_id, channel_id, mode.value, actor_id, now),
                )
            await tx.execute(
                "INSERT INTO audit_log (guild_id, actor_id, action, target, detail, at)"
                " VALUES (?, ?, 'set_gallery', 'gallery', ?, ?)",
                (guild_id, actor_id, f"{_audit_words(gallery)}; was {_audit_words(before)}", now),
            )
        return before

    async def set_mode(
        self, guild_id: int, mode: GalleryMode, *, actor_id: int, now: float
    ) -> Gallery | None:
        """Change the mode of the server's gallery, in its channel; None when it has none.

        Read and written in one transaction, so a channel changed meanwhile is kept.
        """
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT channel_id, mode FROM gallery_settings WHERE guild_id = ?", (guild_id,)
            )
            if row is None:
                return None
            before = Gallery(guild_id, int(row[0]), GalleryMode(row[1]))
            if before.mode is mode:
                return before
            await tx.execute(
                "UPDATE gallery_settings SET mode = ?, set_by = ?, set_at = ? WHERE guild_id = ?",
                (mode.value, actor_id, now, guild_id),
            )
            after = Gallery(guild_id, before.channel_id, mode)
            await tx.execute(
                "INSERT INTO audit_log (guild_id, actor_id, action, target, detail, at)"
                " VALUES (?, ?, 'set_gallery', 'gallery', ?, ?)",
                (guild_id, actor_id, f"{_audit_words(after)}; was {_audit_words(before)}", now),
            )
        return after

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

    async def posted(self, job_id: int, message_id: int) -> bool:
        """Record the clip's post; False when the clip was taken down while it went out."""
        changed = await self._db.execute(
            "UPDATE gallery_posts SET message_id = ? WHERE job_id = ? AND message_id IS NULL",
            (message_id, job_id),
        )
        return changed == 1

    async def take_down(
        self, job_id: int, guild_id: int, *, by: int, now: float
    ) -> GalleryPost | None:
        """Mark the clip taken down, so it is never posted again; returns its claim before.

        A clip never claimed gets a taken-down claim of its own (channel 0: no channel).
        """
        async with self._db.transaction(durable=True) as tx:
            row = await tx.fetchone(
                "SELECT job_id, channel_id, message_id FROM gallery_posts WHERE job_id = ?",
                (job_id,),
            )
            await tx.execute(
                "INSERT INTO gallery_posts"
                " (job_id, guild_id, channel_id, message_id, claimed_by, claimed_at)"
                " VALUES (?, ?, 0, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET"
                " message_id = excluded.message_id",
                (job_id, guild_id, TAKEN_DOWN, by, now),
            )
        return GalleryPost(int(row[0]), int(row[1]), row[2]) if row else None

    async def post_of(self, job_id: int) -> GalleryPost | None:
        row = await self._db.fetchone(
            "SELECT job_id, channel_id, message_id FROM gallery_posts WHERE job_id = ?",
            (job_id,),
        )
        return GalleryPost(int(row[0]), int(row[1]), row[2]) if row else None
