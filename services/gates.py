"""Account-wide pauses: when Segmind refuses for a reason that holds for every request.

Out of credits (406) or a rejected key (401/403): every new request would reach Segmind
only to fail the same way, each one publicly. Instead new requests are refused privately
for ``recheck_seconds``; then one is let through as the check. If it is accepted, the
gate opens; if Segmind refuses again, it closes for another period.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.clock import Clock
from services.errors import BotError, RefusedError


class AccountPaused(RefusedError):
    """A request refused because the whole Segmind account is paused; ``cause`` says why."""

    def __init__(self, cause: BotError, *, retry_at: float) -> None:
        super().__init__(cause.user_message, retry_at=retry_at, detail=f"paused: {cause.detail}")
        self.cause = cause


class PauseGate:
    def __init__(self, clock: Clock, recheck_seconds: float) -> None:
        self._clock = clock
        self._recheck_seconds = recheck_seconds
        self._closed_until: float | None = None
        self._cause: BotError | None = None

    @property
    def paused(self) -> bool:
        return self._closed_until is not None

    def check(self) -> None:
        """Raise AccountPaused while paused; let one request through after each recheck period."""
        if self._closed_until is None:
            return
        now = self._clock.time()
        if now < self._closed_until:
            assert self._cause is not None
            raise AccountPaused(self._cause, retry_at=self._closed_until)
        # Let this request through as the check; hold others back until it answers.
        self._closed_until = now + self._recheck_seconds

    def pause(self, cause: BotError) -> bool:
        """Segmind refused for every request; True when this is news (tell moderators once)."""
        was_open = self._closed_until is None
        self._closed_until = self._clock.time() + self._recheck_seconds
        self._cause = cause
        return was_open

    def resume(self) -> None:
        """A submit was accepted: whatever was wrong is fixed."""
        self._closed_until = None
        self._cause = None


@dataclass(frozen=True)
class AccountGates:
    """The pauses that apply to the whole Segmind account, shared by admission and the runner."""

    credits: PauseGate
    key: PauseGate

    @classmethod
    def create(cls, clock: Clock, recheck_seconds: float) -> AccountGates:
        return cls(PauseGate(clock, recheck_seconds), PauseGate(clock, recheck_seconds))

    def check(self) -> None:
        # The key first and alone: while it is refused, a credits recheck would be wasted
        # (and the reverse), so a gate's recheck is only spent when the other is open.
        if self.key.paused:
            self.key.check()
        else:
            self.credits.check()

    def resume(self) -> None:
        self.key.resume()
        self.credits.resume()
