"""The server's gallery as the cogs see it: its setting, and each clip's one post.

The cogs speak to Discord; the rules over what is stored live here: how a moderator's
choice changes the setting, and the claim a clip's post takes before it is sent (released
only when the post surely did not go out), which is what makes it at most once, ever.
"""

from __future__ import annotations

from services.clock import Clock
from services.errors import ValidationError
from services.models import Gallery, GalleryMode, GalleryPost, Job
from services.storage import Storage


class GalleryService:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    async def setting(self, guild_id: int) -> Gallery | None:
        return await self._storage.gallery.get(guild_id)

    async def choose(
        self,
        guild_id: int,
        channel_id: int | None,
        mode: GalleryMode | None,
        *,
        actor_id: int,
    ) -> Gallery | None:
        """A moderator's `/videolimit gallery`; returns the gallery now (None: off).

        No channel and no mode turns it off; a mode alone changes the mode of the gallery
        there is (refused without one); a channel alone keeps the mode (manual when new).
        """
        store, now = self._storage.gallery, self._clock.time()
        if channel_id is None and mode is not None:
            changed = await store.set_mode(guild_id, mode, actor_id=actor_id, now=now)
            if changed is None:
                raise ValidationError(
                    "Choose a channel for the gallery first: `/videolimit gallery channel:`."
                )
            return changed
        if channel_id is None:
            await store.set(guild_id, None, actor_id=actor_id, now=now)
            return None
        if mode is None:
            current = await store.get(guild_id)
            mode = current.mode if current is not None else GalleryMode.MANUAL
        await store.set(guild_id, (channel_id, mode), actor_id=actor_id, now=now)
        return Gallery(guild_id, channel_id, mode)

    async def post_of(self, job_id: int) -> GalleryPost | None:
        return await self._storage.gallery.post_of(job_id)

    async def claim(self, job: Job, channel_id: int, *, by: int) -> bool:
        """Take the clip's one post before sending it; False when it is taken already."""
        return await self._storage.gallery.claim(
            job.id, job.guild_id, channel_id, by=by, now=self._clock.time()
        )

    async def release(self, job_id: int) -> None:
        """The post surely did not go out: the clip may be published later."""
        await self._storage.gallery.release(job_id)

    async def posted(self, job_id: int, message_id: int) -> bool:
        """Record the post; False when the clip was taken down while it went out."""
        return await self._storage.gallery.posted(job_id, message_id)

    async def take_down(self, job: Job, *, by: int) -> GalleryPost | None:
        """Never publish the clip again; returns its post as it was, if it had one."""
        return await self._storage.gallery.take_down(
            job.id, job.guild_id, by=by, now=self._clock.time()
        )
