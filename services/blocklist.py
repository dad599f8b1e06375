"""A server's blocklist: words and /regex/ patterns a prompt may not contain."""

from __future__ import annotations

from services.clock import Clock
from services.models import VideoRequest
from services.storage import Storage


class Blocklist:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    async def screen(
        self, guild_id: int, channel_id: int, user_id: int, request: VideoRequest
    ) -> None:
        """Refuse (raise a RefusedError) a request whose prompt or negative prompt is blocked."""
