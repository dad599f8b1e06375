"""Where `/video` works: a server's allow-list of channels (threads of one count too).

An empty list means everywhere. ``check`` runs before Discord's 3-second acknowledgement
on every request, so each server's list is kept in memory and read from the database
only after a change (or the first time the server asks).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.clock import Clock
from services.errors import RefusedError, ValidationError
from services.models import AllowedChannel
from services.storage import Storage
from services.storage.channels import ALLOW_ACTION, DISALLOW_ACTION

__all__ = [
    "ALLOW_ACTION",
    "DISALLOW_ACTION",
    "AllowedChannels",
    "ChannelListChange",
    "ChannelNotAllowed",
]

log = logging.getLogger(__name__)

# A list longer than this is no longer a short list of places; it also keeps `show`, and
# the refusal the cog words from ChannelNotAllowed.channel_ids, small.
MOST_CHANNELS = 50


class ChannelNotAllowed(RefusedError):
    """`/video` was used outside the server's allowed channels, listed in ``channel_ids``.

    The cog names them (as Discord mentions) in ``cogs.words.refusal``; ``user_message`` is
    the plain fallback for anything that shows a refusal without knowing this one.
    """

    def __init__(self, channel_ids: tuple[int, ...]) -> None:
        self.channel_ids = channel_ids
        super().__init__(
            "Videos can only be made in the channels this server's moderators listed "
            "(threads in them count too). Nothing was spent.",
            detail=f"channel not allowed ({len(channel_ids)} listed)",
        )


@dataclass(frozen=True, slots=True)
class ChannelListChange:
    """What an add or remove did: ``changed`` False when it was already so; ``listed`` after."""

    channel_id: int
    added: bool  # True for an add, False for a remove
    changed: bool
    listed: int


class AllowedChannels:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        self._cache: dict[int, tuple[int, ...]] = {}
        # Bumped by every change: a read that started before a change must not be cached
        # after it (it could hold the list as it was).
        self._generation = 0

    async def check(self, guild_id: int, channel_id: int, parent_id: int | None) -> None:
        """Refuse (raise a RefusedError) a request made outside the server's allowed channels."""
        allowed = await self._allowed(guild_id)
        if not allowed or channel_id in allowed or (parent_id is not None and parent_id in allowed):
            return
        log.info(
            "guild=%s channel=%s parent=%s refused: not an allowed channel",
            guild_id,
            channel_id,
            parent_id,
        )
        raise ChannelNotAllowed(allowed)

    async def listed(self, guild_id: int) -> list[AllowedChannel]:
        """The server's allowed channels with who added them and when, oldest first."""
        return await self._storage.channels.list(guild_id)

    async def add(self, guild_id: int, channel_id: int, *, actor_id: int) -> ChannelListChange:
        """Let `/video` work in ``channel_id`` (and its threads); audited."""
        try:
            outcome = await self._storage.channels.add(
                guild_id, channel_id, actor_id=actor_id, now=self._clock.time(), most=MOST_CHANNELS
            )
        finally:
            self._forget(guild_id)
        if outcome is None:
            raise ValidationError(
                f"This server already lists {MOST_CHANNELS} channels, the most it can. "
                "Remove one first; nothing was changed."
            )
        changed, listed = outcome
        log.info("guild=%s channel=%s allowed by user=%s", guild_id, channel_id, actor_id)
        return ChannelListChange(channel_id, added=True, changed=changed, listed=listed)

    async def remove(
        self, guild_id: int, channel_id: int, *, actor_id: int, why: str = ""
    ) -> ChannelListChange:
        """Stop `/video` working in ``channel_id``; with none left, it works everywhere again."""
        try:
            changed, listed = await self._storage.channels.remove(
                guild_id, channel_id, actor_id=actor_id, now=self._clock.time(), why=why
            )
        finally:
            self._forget(guild_id)
        if changed:
            log.info(
                "guild=%s channel=%s unlisted by user=%s %s", guild_id, channel_id, actor_id, why
            )
        return ChannelListChange(channel_id, added=False, changed=changed, listed=listed)

    async def _allowed(self, guild_id: int) -> tuple[int, ...]:
        cached = self._cache.get(guild_id)
        if cached is not None:
            return cached
        generation = self._generation
        channels = tuple(c.channel_id for c in await self._storage.channels.list(guild_id))
        if generation == self._generation:
            self._cache[guild_id] = channels
        return channels

    def _forget(self, guild_id: int) -> None:
        self._generation += 1
        self._cache.pop(guild_id, None)
