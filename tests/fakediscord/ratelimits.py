"""Discord's per-route, per-channel buckets for message writes (off unless a test turns them on).

Discord limits writes to a channel's messages per route with the channel as the major
parameter: creating messages and editing them are two buckets (both about 5 per 5 s), and
both answers carry the same ``X-RateLimit-Bucket`` hash, as Discord's do. A bucket's window
opens with its first request and resets ``per`` seconds later; a request over the limit is
answered 429 with ``retry_after``, ``Retry-After`` and the ``X-RateLimit-*`` headers, and
spends nothing. Every answer on these routes tells the truth about its bucket, as Discord's
does, so discord.py's own waiting works as it would in production.

Time is the fake's clock (real time plus the test's ``advance``).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from .clock import FakeDiscordClock
from .errors import DiscordError

LIMITED_ROUTES = frozenset(
    {
        ("POST", "/channels/{channel_id}/messages"),
        ("PATCH", "/channels/{channel_id}/messages/{message_id}"),
    }
)
# Discord answers both routes with one bucket hash (their counts are kept apart).
BUCKET_HASH = hashlib.md5(b"channel messages").hexdigest()


@dataclass
class _Window:
    reset_at: float
    used: int = 0


class ChannelRateLimits:
    """The buckets, keyed by (method, route, channel id)."""

    def __init__(self, clock: FakeDiscordClock) -> None:
        self._clock = clock
        self.enabled = False
        self.limit = 5
        self.per = 5.0
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self.refused = 0

    def enable(self, limit: int = 5, per: float = 5.0) -> None:
        """Enforce ``limit`` writes per ``per`` seconds per route and channel."""
        self.enabled, self.limit, self.per = True, limit, per
        self._windows.clear()

    def take(self, method: str, route: str, channel_id: str | None) -> dict[str, str] | None:
        """Spend one write; the headers for its answer, or a 429 ``DiscordError`` if none is left.

        None for a request no enforced bucket covers.
        """
        if not self.enabled or channel_id is None or (method, route) not in LIMITED_ROUTES:
            return None
        now = self._clock.monotonic()
        key = (method, route, channel_id)
        window = self._windows.get(key)
        if window is None or window.reset_at <= now:
            window = self._windows[key] = _Window(reset_at=now + self.per)
        reset_after = window.reset_at - now
        if window.used >= self.limit:
            self.refused += 1
            raise self._too_many(reset_after)
        window.used += 1
        return self._headers(self.limit - window.used, reset_after)

    def _headers(self, remaining: int, reset_after: float) -> dict[str, str]:
        return {
            "X-RateLimit-Bucket": BUCKET_HASH,
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        }

    def _too_many(self, reset_after: float) -> DiscordError:
        headers = {
            **self._headers(0, reset_after),
            "Retry-After": str(max(1, math.ceil(reset_after))),
            "X-RateLimit-Scope": "user",
        }
        body = {
            "message": "You are being rate limited.",
            "retry_after": round(reset_after, 3),
            "global": False,
        }
        return DiscordError(429, 0, "You are being rate limited.", headers=headers, body=body)
