"""Out-of-credits gate: after Segmind answers 406, refuse new requests for a while.

Every refused request would otherwise reach Segmind only to be refused again. After
``recheck_seconds`` one request is let through as the check: if it is accepted,
the gate opens; if Segmind says 406 again, the gate closes for another period.
"""

from __future__ import annotations

from services.clock import Clock
from services.errors import RefusedError, SegmindInsufficientCredits


class CreditGate:
    def __init__(self, clock: Clock, recheck_seconds: float) -> None:
        self._clock = clock
        self._recheck_seconds = recheck_seconds
        self._closed_until: float | None = None

    @property
    def exhausted(self) -> bool:
        return self._closed_until is not None

    def check(self) -> None:
        """Raise RefusedError while credits are known to be out; let one through after recheck."""
        if self._closed_until is None:
            return
        now = self._clock.time()
        if now < self._closed_until:
            raise RefusedError(SegmindInsufficientCredits.user_message, retry_at=self._closed_until)
        # Let this request through as the check; hold others back until it answers.
        self._closed_until = now + self._recheck_seconds

    def mark_exhausted(self) -> bool:
        """Segmind said 406. Returns True when this is news (so moderators are told once)."""
        was_open = self._closed_until is None
        self._closed_until = self._clock.time() + self._recheck_seconds
        return was_open

    def mark_ok(self) -> None:
        """A submit was accepted: credits are there again."""
        self._closed_until = None
