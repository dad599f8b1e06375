"""A fair share of each channel's write budget: final messages first, then the stalest progress.

Discord limits message writes per channel (about 5 per 5 s, shared by every job whose progress
has moved to channel messages). Each lane (a channel's posts, or its edits: Discord counts
them apart) grants at most ``writes`` writes in any window of ``per`` seconds, a little below
Discord's own so the bot's other writes keep headroom. A write holds its turn while it is
under way (``async with budget.priority(lane): ...``), and its token comes back ``per``
seconds after the write *ended*: Discord counted it somewhere between its start and its end,
so two writes on one token reach Discord at least ``per`` apart however long each took on
the way (a busy event loop, a slow network). Counting from the start instead let a write
delayed on its way land in the same window as the next, and Discord answered 429. This
sliding window is safe whichever way Discord aligns its own. Waiting writes are served:

- priority writes (a clip, a failure card, a final message) first, in arrival order: they
  never wait behind a progress edit, though they spend the budget like any write;
- then progress edits, the message shown longest ago first, so with many jobs in one channel
  the edits go round and every message moves in turn.

Plain asyncio, no Discord: the lane is any hashable key. A waiter that is cancelled (its
message got its final text meanwhile) simply leaves the queue, and a turn given to a waiter
cancelled before it could write comes back at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from services.clock import Clock, SystemClock

# Discord allows 5 writes per 5 s per channel: one is left for clock skew and other writes.
CHANNEL_WRITES = 4
CHANNEL_WINDOW = 5.0


@dataclass
class _Lane:
    spent: deque[float] = field(default_factory=deque)  # when each write in the window ended
    writing: int = 0  # turns held by writes under way: their tokens are not back yet
    # Resolved when a write ends: what the server waits for when every token is held.
    ended: asyncio.Future[None] | None = None
    priority: deque[asyncio.Future[None]] = field(default_factory=deque)
    # (last shown, arrival, waiter): the message shown longest ago is served first.
    progress: list[tuple[float, int, asyncio.Future[None]]] = field(default_factory=list)
    server: asyncio.Task[None] | None = None

    def next_waiter(self) -> asyncio.Future[None] | None:
        while self.priority:
            waiter = self.priority.popleft()
            if not waiter.done():
                return waiter
        while self.progress:
            waiter = heapq.heappop(self.progress)[2]
            if not waiter.done():
                return waiter
        return None

    def idle(self) -> bool:
        return not self.priority and not self.progress and self.server is None and not self.writing


class ChannelBudget:
    """At most ``writes`` writes per ``per`` seconds in each lane, shared fairly."""

    def __init__(
        self,
        writes: int = CHANNEL_WRITES,
        per: float = CHANNEL_WINDOW,
        clock: Clock | None = None,
    ) -> None:
        if writes < 1 or per <= 0:
            raise ValueError("a budget needs at least one write per positive window")
        self.writes = writes
        self.per = per
        self._clock = clock or SystemClock()
        self._lanes: dict[Hashable, _Lane] = {}
        self._arrivals = itertools.count()
        self._next_sweep = 0.0
        self.granted = 0

    @asynccontextmanager
    async def priority(self, lane: Hashable) -> AsyncIterator[None]:
        """Hold a write's turn in ``lane``, given ahead of every progress edit waiting there."""
        self._forget_quiet_lanes(self.now())
        state = self._lanes.setdefault(lane, _Lane())
        if state.priority or not self._spend_now(state):
            waiter = asyncio.get_running_loop().create_future()
            state.priority.append(waiter)
            await self._wait(lane, state, waiter)
        async with self._writing(state):
            yield

    @asynccontextmanager
    async def progress(self, lane: Hashable, last_shown: float | None) -> AsyncIterator[None]:
        """Hold an edit's turn in ``lane`` for a message last shown at ``last_shown`` (monotonic).

        Given after every priority write, the message shown longest ago first.
        """
        self._forget_quiet_lanes(self.now())
        state = self._lanes.setdefault(lane, _Lane())
        if state.priority or state.progress or not self._spend_now(state):
            waiter = asyncio.get_running_loop().create_future()
            since = float("-inf") if last_shown is None else last_shown
            heapq.heappush(state.progress, (since, next(self._arrivals), waiter))
            await self._wait(lane, state, waiter)
        async with self._writing(state):
            yield

    def now(self) -> float:
        return self._clock.monotonic()

    def lanes(self) -> int:
        """Lanes held now: those written to within the window or waited on."""
        return len(self._lanes)

    def waiting(self, lane: Hashable) -> int:
        state = self._lanes.get(lane)
        if state is None:
            return 0
        return sum(not w.done() for w in state.priority) + sum(
            not entry[2].done() for entry in state.progress
        )

    # --- inside ---------------------------------------------------------------------------

    def _spend_now(self, state: _Lane) -> bool:
        now = self.now()
        while state.spent and state.spent[0] + self.per <= now:
            state.spent.popleft()
        if len(state.spent) + state.writing >= self.writes:
            return False
        state.writing += 1
        self.granted += 1
        return True

    @asynccontextmanager
    async def _writing(self, state: _Lane) -> AsyncIterator[None]:
        """The write under way: its token starts its window when the write ends, however."""
        try:
            yield
        finally:
            state.writing -= 1
            state.spent.append(self.now())
            self._wake(state)

    def _give_back(self, state: _Lane) -> None:
        """A turn granted but never used (its waiter left): the token is back at once."""
        state.writing -= 1
        self.granted -= 1
        self._wake(state)

    @staticmethod
    def _wake(state: _Lane) -> None:
        """A token is back, or its window has begun: the lane's server looks again."""
        if state.ended is not None and not state.ended.done():
            state.ended.set_result(None)

    def _forget_quiet_lanes(self, now: float) -> None:
        """Drop lanes nobody waits on and whose writes left the window, once a window.

        A write granted at once never starts a server, so nothing else would drop its lane:
        a bot in thousands of channels would keep one per channel it ever wrote to.
        """
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.per
        quiet = [
            lane
            for lane, state in self._lanes.items()
            if state.idle() and (not state.spent or state.spent[-1] + self.per <= now)
        ]
        for lane in quiet:
            del self._lanes[lane]

    async def _wait(self, lane: Hashable, state: _Lane, waiter: asyncio.Future[None]) -> None:
        if state.server is None:
            state.server = asyncio.create_task(self._serve(lane, state))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back(state)  # given the turn as it was cancelled: nothing written
            raise

    async def _serve(self, lane: Hashable, state: _Lane) -> None:
        """Hand out tokens as they come back, to the next waiter in order."""
        try:
            while state.priority or state.progress:
                if not self._spend_now(state):
                    await self._token_back(state)
                    continue
                waiter = state.next_waiter()
                if waiter is None:  # everyone left while we slept: give the token back
                    self._give_back(state)
                    break
                waiter.set_result(None)
                await asyncio.sleep(0)  # let the write begin before the next is handed out
        finally:
            state.server = None
            if state.idle() and not state.spent:
                self._lanes.pop(lane, None)

    async def _token_back(self, state: _Lane) -> None:
        """Wait until a token could be back: a window after the oldest ended write.

        With every token held by a write under way, first wait for one to end.
        """
        if state.spent:
            await self._clock.sleep(state.spent[0] + self.per - self.now())
            return
        state.ended = asyncio.get_running_loop().create_future()
        try:
            await state.ended
        finally:
            state.ended = None
