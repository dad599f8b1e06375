"""The one backoff policy every retry loop uses: the server's Retry-After, else capped doubling.

The client's polls, the runner's submits, downloads and deliveries all wait through
``Backoff.delay``, so there is one formula to reason about: a wait the server asked for
is honoured within a floor and a ceiling; otherwise the ceiling doubles per attempt up to
``cap``, and the wait is half that ceiling fixed plus up to half of it at random ("equal
jitter"): never close to zero, and callers held up by the same outage do not retry in step.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# 2**62 seconds is beyond any cap; stopping the exponent there keeps the float finite for
# any attempt number, so a long run of quick retries cannot overflow.
_MAX_EXPONENT = 62


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait after a failed attempt; see ``delay``."""

    base: float  # the first wait's ceiling, doubled on every further attempt
    cap: float  # the longest wait chosen without a Retry-After
    # The longest a server's Retry-After is honoured: a longer ask is a quota, not a blip,
    # and asking again after this long costs one request.
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"Backoff needs 0 < base <= cap, got base={self.base} cap={self.cap}")
        if self.max_retry_after < self.base:
            raise ValueError("Backoff.max_retry_after must be at least base")

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first failure).

        ``retry_after`` is what the server asked for, if anything: it wins, but never below
        ``base`` ("Retry-After: 0", or a reset time already past, must not become a tight
        loop) and never above ``max_retry_after``.
        """
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        if retry_after is not None and not math.isnan(retry_after):
            return min(max(retry_after, self.base), self.max_retry_after)
        ceiling = min(self.cap, self.base * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)
