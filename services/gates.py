"""Account-wide pauses: when Segmind refuses for a reason that holds for every request.

Out of credits (406) or a rejected key (401/403): every new request would reach Segmind
only to fail the same way, each one publicly. Instead new requests are refused privately
for ``recheck_seconds``; then one is let through as the check. If it is accepted, the
gate opens; if Segmind refuses again, it closes for another period.

Several processes on one database share the pause: it is stored in ``meta`` when a process
pauses and cleared when one resumes, and each process keeps a copy that ``refresh`` reads
again at most every ``REFRESH_SECONDS``. ``check`` reads only the copy, so admission pays no
database read for it. The copy may lag the others by that long: a request admitted meanwhile
meets the same refusal at its submit, which Segmind does not bill, and pauses here too.
After a pause runs out each process lets its own check through: a few refused submits at
most, for the same reason harmless.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from services.clock import Clock
from services.errors import BotError, ConfigurationError, RefusedError, SegmindInsufficientCredits
from services.storage.meta import MetaStore

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0


class AccountPaused(RefusedError):
    """A request refused because the whole Segmind account is paused; ``cause`` says why."""

    def __init__(self, cause: BotError, *, retry_at: float) -> None:
        super().__init__(cause.user_message, retry_at=retry_at, detail=f"paused: {cause.detail}")
        self.cause = cause


class PauseGate:
    def __init__(self, clock: Clock, recheck_seconds: float, kind: str = "gate") -> None:
        self.clock = clock
        self._recheck_seconds = recheck_seconds
        self._closed_until: float | None = None
        self._cause: BotError | None = None
        self.kind = kind
        # Changed here and not yet stored: the stored state must not overwrite it.
        self.unpublished = False

    @property
    def paused(self) -> bool:
        return self._closed_until is not None

    def check(self) -> None:
        """Raise AccountPaused while paused; let one request through after each recheck period."""
        if self._closed_until is None:
            return
        now = self.clock.time()
        if now < self._closed_until:
            assert self._cause is not None
            raise AccountPaused(self._cause, retry_at=self._closed_until)
        # Let this request through as the check; hold others back until it answers.
        self._closed_until = now + self._recheck_seconds

    def pause(self, cause: BotError) -> bool:
        """Segmind refused for every request; True when this is news (tell moderators once)."""
        was_open = self._closed_until is None
        self._closed_until = self.clock.time() + self._recheck_seconds
        self._cause = cause
        self.unpublished = True
        return was_open

    def resume(self) -> None:
        """A submit was accepted: whatever was wrong is fixed."""
        if self._closed_until is not None:
            self.unpublished = True
        self._closed_until = None
        self._cause = None

    def stored(self) -> str | None:
        """This gate as ``meta`` keeps it: None while open."""
        if self._closed_until is None or self._cause is None:
            return None
        cause = self._cause
        return json.dumps(
            {"until": self._closed_until, "message": cause.user_message, "detail": cause.detail}
        )

    def adopt(self, stored: str | None) -> None:
        """Take what another process stored, unless this one changed the gate since."""
        if self.unpublished:
            return
        if stored is None:
            self._closed_until, self._cause = None, None  # another process's check was accepted
            return
        value = json.loads(stored)
        until = float(value["until"])
        if self._closed_until is not None and self._closed_until > until:
            until = self._closed_until  # this process's own recheck is under way
        self._closed_until = until
        if self._cause is None:
            self._cause = _cause(self.kind, str(value["message"]), str(value["detail"]))


def _cause(kind: str, message: str, detail: str) -> BotError:
    """The refusal another process met, rebuilt from its stored words."""
    if kind == "credits":
        return SegmindInsufficientCredits(message, detail=detail)
    return ConfigurationError(message, detail=detail)


@dataclass
class AccountGates:
    """The pauses that apply to the whole Segmind account, shared by admission and the runner.

    ``store``: where the pauses are shared with other processes (None: this process alone).
    """

    credits: PauseGate
    key: PauseGate
    store: MetaStore | None = None
    _read_at: float | None = field(default=None, init=False, repr=False)

    @classmethod
    def create(
        cls, clock: Clock, recheck_seconds: float, store: MetaStore | None = None
    ) -> AccountGates:
        return cls(
            PauseGate(clock, recheck_seconds, "credits"),
            PauseGate(clock, recheck_seconds, "key"),
            store,
        )

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

    async def publish(self) -> None:
        """Store what changed here (a pause, a resume) for the other processes."""
        if self.store is None:
            return
        for gate in (self.credits, self.key):
            if not gate.unpublished:
                continue
            stored = gate.stored()
            try:
                if stored is None:
                    await self.store.delete(_key(gate))
                else:
                    await self.store.set(_key(gate), stored)
            except Exception:
                log.warning("could not share the %s pause", gate.kind, exc_info=True)
                continue
            gate.unpublished = False

    async def refresh(self) -> None:
        """Read the pauses other processes stored, at most every ``REFRESH_SECONDS``."""
        if self.store is None:
            return
        now = self.credits.clock.monotonic()
        if self._read_at is not None and now - self._read_at < REFRESH_SECONDS:
            return
        self._read_at = now
        await self.publish()
        try:
            stored = await self.store.get_many((_key(self.credits), _key(self.key)))
        except Exception:
            log.warning("could not read the shared account pauses", exc_info=True)
            return
        for gate in (self.credits, self.key):
            gate.adopt(stored.get(_key(gate)))


def _key(gate: PauseGate) -> str:
    return f"account_pause.{gate.kind}"
