"""Calm progress edits: at most one per interval per message, and only when something changed.

The newest state always wins: an update that arrives too soon is held and sent when
the interval has passed, replacing any older held update. A state may also ask to be shown
only if it still stands after a moment (``hold``): a step that usually passes at once is
not worth an edit of its own. ``update`` never waits for
the network, so a slow or rate-limited edit never holds up the job runner, and once
``final`` has run for a message nothing older is ever sent after it.

With a ``ChannelBudget``, an edit whose ``lane`` (asked when it is due) names a channel also
waits for that channel's fair turn: the stalest message first, after every final message.
While it waits, newer states still replace it, so the turn carries the newest one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field

from services.channel_budget import ChannelBudget
from services.clock import Clock, SystemClock

log = logging.getLogger(__name__)

Send = Callable[[], Awaitable[object]]
# Which channel budget an edit spends when it goes out (None: none, e.g. a webhook edit).
Lane = Callable[[], Hashable | None]


@dataclass
class _Slot:
    shown: object = None
    last_sent: float | None = None
    pending: Send | None = None
    pending_shown: object = None
    not_before: float = 0.0  # the held state is shown only if it still stands then
    sleeping_until: float | None = None  # when the timer wakes, while it sleeps
    lane: Lane | None = None
    timer: asyncio.Task[None] | None = None
    closed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class EditThrottle:
    def __init__(
        self,
        interval: float = 5.0,
        *,
        budget: ChannelBudget | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.interval = interval
        self.budget = budget
        self._clock = clock or SystemClock()
        self._slots: dict[Hashable, _Slot] = {}

    def _now(self) -> float:
        return self._clock.monotonic()

    def note_sent(self, key: Hashable, shown: object) -> None:
        """Record a message posted outside the throttle (the first), so edits keep apart."""
        slot = self._slots.setdefault(key, _Slot())
        slot.shown, slot.last_sent = shown, self._now()

    def update(
        self,
        key: Hashable,
        shown: object,
        send: Send,
        lane: Lane | None = None,
        *,
        hold: float = 0.0,
    ) -> None:
        """Show ``shown`` (via ``send``) on message ``key``, now or once the interval allows.

        ``lane``, asked when the edit is due, names the channel budget it spends, if any.
        ``hold``: show it only if no other state (or the final message) came within that
        many seconds; the same state asked again keeps its first deadline.
        """
        slot = self._slots.setdefault(key, _Slot())
        if slot.closed or (shown == slot.shown and slot.pending is None):
            return
        if slot.pending is None or shown != slot.pending_shown:
            slot.not_before = self._now() + hold
        slot.pending, slot.pending_shown, slot.lane = send, shown, lane
        if slot.timer is not None and self._timer_mistimed(slot):
            self._stop_timer(slot)
        if slot.timer is None:
            slot.timer = asyncio.create_task(self._flush_after(key, slot))

    async def final(self, key: Hashable, send: Send) -> None:
        """A last message (result, failure): nothing held is sent after it.

        The message's slot stays, closed, until ``send`` is done: an update that comes
        meanwhile is dropped, not started afresh on a new slot to land after the last message.
        """
        slot = self._slots.setdefault(key, _Slot())
        slot.closed = True
        slot.pending = None
        self._stop_timer(slot)  # a timer already editing has left ``slot.timer``: it finishes
        try:
            async with slot.lock:  # an edit already under way finishes first
                pass
            await send()
        finally:
            if self._slots.get(key) is slot:
                del self._slots[key]

    def withdraw(self, key: Hashable) -> None:
        """Drop the state waiting to be shown, if any: it no longer stands (the clip is here).

        An edit already under way finishes; the message takes later updates as before.
        """
        slot = self._slots.get(key)
        if slot is not None:
            slot.pending = None
            self._stop_timer(slot)

    def pending_count(self) -> int:
        return sum(1 for slot in self._slots.values() if slot.timer is not None)

    def _timer_mistimed(self, slot: _Slot) -> bool:
        """Whether the timer acts at the wrong moment for the state now pending: asleep past
        when it is due, or awake (waiting for the lock or a turn) before its hold is over."""
        asleep = slot.sleeping_until
        if asleep is not None:
            return self._due(slot) < asleep
        return self._due(slot) > self._now()

    def _stop_timer(self, slot: _Slot) -> None:
        # A timer is stopped only before its edit began: it clears ``slot.timer`` first thing
        # once it holds the lock and its turn (a turn it waited for is given back).
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
            slot.sleeping_until = None

    def _due(self, slot: _Slot) -> float:
        """When the pending state may go: the interval after the last edit, and its hold."""
        after_last = 0.0 if slot.last_sent is None else slot.last_sent + self.interval
        return max(after_last, slot.not_before)

    async def _flush_after(self, key: Hashable, slot: _Slot) -> None:
        try:
            # Asked again after each sleep: a held state that came meanwhile waits on.
            while (due := self._due(slot)) > (now := self._now()):
                slot.sleeping_until = due  # the due time itself: an update finds it unchanged
                await self._clock.sleep(due - now)
            slot.sleeping_until = None
            # The message's lock first: the edit under way may still need a turn of its own
            # (a webhook edit falling back to the channel), so none is held while waiting.
            async with slot.lock, self._turn(slot):
                slot.timer = None
                send, shown = slot.pending, slot.pending_shown
                slot.pending = None
                if slot.closed or send is None or shown == slot.shown:
                    return
                slot.shown, slot.last_sent = shown, self._now()
                try:
                    await send()
                except Exception:
                    log.warning("progress edit for %s failed", key, exc_info=True)
                    # Not shown after all: the next update with this state is sent again (a
                    # progress key may not change for minutes). The attempt still counts
                    # for the interval.
                    if slot.shown == shown:
                        slot.shown = None
        except asyncio.CancelledError:
            pass
        except Exception:
            # Its lane or its turn failed, before any edit. The state stays pending and the
            # next update starts a timer again: a slot left holding this ended task as its
            # timer would never take another edit.
            log.warning("progress edit for %s could not be scheduled", key, exc_info=True)
            if slot.timer is asyncio.current_task():
                slot.timer = None

    def _turn(self, slot: _Slot) -> AbstractAsyncContextManager[None]:
        """The channel's fair turn, held while the edit is under way, if it spends a budget."""
        if self.budget is None or slot.lane is None:
            return nullcontext()
        if slot.pending is None or slot.pending_shown == slot.shown:
            return nullcontext()  # nothing to show after all: spend nothing
        lane = slot.lane()
        if lane is None:
            return nullcontext()
        return self.budget.progress(lane, slot.last_sent)
