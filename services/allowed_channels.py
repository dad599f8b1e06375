"""Where `/video` works: a server's allow-list of channels (threads of one count too)."""

from __future__ import annotations

from services.clock import Clock
from services.storage import Storage


class AllowedChannels:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    async def check(self, guild_id: int, channel_id: int, parent_id: int | None) -> None:
        """Refuse (raise a RefusedError) a request made outside the server's allowed channels."""
