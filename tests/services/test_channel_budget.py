"""A channel's write budget: never over it, final messages first, every progress message in turn.

Time is virtual: ``VirtualClock`` wakes sleepers only when the test moves it, so ten minutes
of a busy channel run in milliseconds and the same way every time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections import defaultdict
from contextlib import AbstractAsyncContextManager

import pytest

from services.channel_budget import ChannelBudget
from services.throttle import EditThrottle

CHANNEL = 1234
WRITES, WINDOW = 4, 5.0


class VirtualClock:
    """Monotonic time that moves only in ``run_until``, waking sleepers in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), waiter))
        await waiter

    async def settle(self) -> None:
        """Let every task that can run do so (nothing here waits on I/O)."""
        for _ in range(50):
            await asyncio.sleep(0)

    async def run_until(self, end: float) -> None:
        while True:
            await self.settle()
            if not self._sleepers or self._sleepers[0][0] > end:
                self.now = end
                return
            when, _, waiter = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            if not waiter.done():
                waiter.set_result(None)


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(
        (sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times)),
        default=0,
    )


async def wrote(turn: AbstractAsyncContextManager[None]) -> None:
    """A write that takes no time: hold the turn and give it back at once."""
    async with turn:
        pass


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


async def test_a_lane_never_grants_more_than_its_writes_in_any_window(clock):
    budget = ChannelBudget(WRITES, WINDOW, clock=clock)
    granted: list[float] = []

    async def write(n: int) -> None:
        if n % 3:
            await wrote(budget.progress(CHANNEL, last_shown=float(n)))
        else:
            await wrote(budget.priority(CHANNEL))
        granted.append(clock.now)

    tasks = [asyncio.create_task(write(n)) for n in range(60)]
    await clock.run_until(120)
    assert all(task.done() for task in tasks)
    assert len(granted) == 60
    assert most_in_any_window(granted, WINDOW) <= WRITES


async def test_a_write_holds_its_turn_until_it_ends_and_its_window_starts_then(clock):
    """Discord counts a write when it arrives: anywhere between its start and its end."""
    budget = ChannelBudget(1, WINDOW, clock=clock)
    turns: list[float] = []

    async def write(takes: float) -> None:
        async with budget.priority(CHANNEL):
            turns.append(clock.now)
            await clock.sleep(takes)

    first = asyncio.create_task(write(3.0))
    second = asyncio.create_task(write(0.0))
    await clock.run_until(30)
    assert first.done() and second.done()
    assert turns == [0.0, 3.0 + WINDOW]  # not at WINDOW: the first write ended at 3 s


async def test_writes_slow_on_their_way_never_reach_discord_more_than_its_writes_in_a_window(
    clock,
):
    """Each write reaches Discord at a random moment of its journey; none lands too close."""
    budget = ChannelBudget(WRITES, WINDOW, clock=clock)
    rng = random.Random(7)
    arrived: list[float] = []

    async def write(n: int) -> None:
        journey = rng.uniform(0.0, 2.0)
        turn = budget.progress(CHANNEL, float(n)) if n % 2 else budget.priority(CHANNEL)
        async with turn:
            on_the_way = rng.uniform(0.0, journey)
            await clock.sleep(on_the_way)
            arrived.append(clock.now)
            await clock.sleep(journey - on_the_way)

    tasks = [asyncio.create_task(write(n)) for n in range(80)]
    await clock.run_until(600)
    assert all(task.done() for task in tasks)
    assert most_in_any_window(arrived, WINDOW) <= WRITES


async def test_channels_have_their_own_budgets(clock):
    budget = ChannelBudget(WRITES, WINDOW, clock=clock)
    for channel in range(10):
        for _ in range(WRITES):
            await wrote(budget.priority(channel))  # none of these waits: each channel has its own
    assert clock.now == 0.0
    assert budget.granted == 10 * WRITES


async def test_a_priority_write_goes_ahead_of_every_waiting_progress_edit(clock):
    budget = ChannelBudget(WRITES, WINDOW, clock=clock)
    order: list[str] = []
    for _ in range(WRITES):
        await wrote(budget.priority(CHANNEL))  # the window is spent

    async def progress(n: int) -> None:
        await wrote(budget.progress(CHANNEL, last_shown=float(n)))
        order.append(f"progress-{n}")

    async def clip() -> None:
        await wrote(budget.priority(CHANNEL))
        order.append("clip")

    waiting = [asyncio.create_task(progress(n)) for n in range(10)]
    await clock.settle()
    delivery = asyncio.create_task(clip())
    await clock.run_until(WINDOW)
    assert order[0] == "clip"
    await clock.run_until(4 * WINDOW)
    assert delivery.done() and all(task.done() for task in waiting)


async def test_progress_edits_go_to_the_message_shown_longest_ago_first(clock):
    budget = ChannelBudget(1, WINDOW, clock=clock)
    await wrote(budget.priority(CHANNEL))
    order: list[int] = []

    async def progress(last_shown: float) -> None:
        await wrote(budget.progress(CHANNEL, last_shown=last_shown))
        order.append(int(last_shown))

    for last_shown in (30, 10, 50, 20, 40):
        asyncio.create_task(progress(last_shown))  # noqa: RUF006 - finished below
    await clock.run_until(10 * WINDOW)
    assert order == [10, 20, 30, 40, 50]


async def test_a_waiter_that_leaves_spends_nothing(clock):
    budget = ChannelBudget(1, WINDOW, clock=clock)
    await wrote(budget.priority(CHANNEL))
    gone = asyncio.create_task(wrote(budget.progress(CHANNEL, last_shown=0.0)))
    await clock.settle()
    gone.cancel()
    await clock.run_until(WINDOW)
    assert budget.waiting(CHANNEL) == 0
    await wrote(budget.priority(CHANNEL))  # the returned token is still there: no wait
    assert clock.now == WINDOW


# --- the throttle and the budget together -------------------------------------------------


async def test_forty_jobs_in_one_channel_each_move_at_least_once_a_minute(clock):
    """Every job's text changes each second; the channel takes 4 writes per 5 s in all."""
    budget = ChannelBudget(WRITES, WINDOW, clock=clock)
    throttle = EditThrottle(5.0, budget=budget, clock=clock)
    sent: dict[int, list[float]] = defaultdict(list)
    every_write: list[float] = []

    def send(job: int):
        async def edit() -> None:
            sent[job].append(clock.now)
            every_write.append(clock.now)

        return edit

    jobs = range(40)
    for job in jobs:
        throttle.note_sent(job, "posted")
    for second in range(1, 601):
        for job in jobs:
            throttle.update(job, f"elapsed {second}", send(job), lane=lambda: CHANNEL)
        await clock.run_until(float(second))

    assert most_in_any_window(every_write, WINDOW) <= WRITES
    for job in jobs:
        shown = [0.0, *sent[job], 600.0]
        longest_still = max(b - a for a, b in itertools.pairwise(shown))
        assert longest_still <= 60.0, f"job {job} stood still {longest_still:.0f} s"
        assert len(sent[job]) <= 1 + 600 / 5


async def test_while_a_job_waits_for_its_turn_the_newest_state_wins(clock):
    budget = ChannelBudget(1, WINDOW, clock=clock)
    throttle = EditThrottle(0.0, budget=budget, clock=clock)
    await wrote(budget.priority(CHANNEL))  # the channel's window is spent
    shown: list[str] = []

    def send(label: str):
        async def edit() -> None:
            shown.append(label)

        return edit

    for label in ("queued 3", "queued 2", "queued 1", "processing"):
        throttle.update("job", label, send(label), lane=lambda: CHANNEL)
        await clock.settle()
    await clock.run_until(WINDOW)
    assert shown == ["processing"]


async def test_a_final_message_cancels_the_edit_waiting_for_its_turn(clock):
    budget = ChannelBudget(1, WINDOW, clock=clock)
    throttle = EditThrottle(0.0, budget=budget, clock=clock)
    await wrote(budget.priority(CHANNEL))
    shown: list[str] = []

    async def progress() -> None:
        shown.append("progress")

    async def final() -> None:
        await wrote(budget.priority(CHANNEL))
        shown.append("final")

    throttle.update("job", "processing", progress, lane=lambda: CHANNEL)
    await clock.settle()
    finishing = asyncio.create_task(throttle.final("job", final))
    await clock.run_until(3 * WINDOW)
    assert finishing.done()
    assert shown == ["final"]
    assert budget.granted == 2  # the cancelled edit spent nothing


async def test_an_edit_through_the_webhook_spends_no_channel_budget(clock):
    budget = ChannelBudget(1, WINDOW, clock=clock)
    throttle = EditThrottle(0.0, budget=budget, clock=clock)
    shown: list[str] = []

    def send(label: str):
        async def edit() -> None:
            shown.append(label)

        return edit

    for job in range(5):
        throttle.update(job, "processing", send(f"job {job}"), lane=lambda: None)
    await clock.settle()
    assert len(shown) == 5
    assert budget.granted == 0


async def test_channels_written_to_once_are_forgotten_after_their_window(clock):
    budget = ChannelBudget(WRITES, WINDOW, clock=clock)
    for channel in range(1000):
        await wrote(budget.priority(channel))  # granted at once: no server ever runs for these

    await clock.run_until(WINDOW + 1)
    await wrote(budget.priority("a later write anywhere"))

    assert budget.lanes() == 1  # a bot in thousands of channels does not keep them all


async def test_an_edit_holding_a_turn_never_waits_on_a_write_that_needs_one(clock):
    """Lock order: an edit under way that falls back to the channel route (its token expired)
    needs a turn; the next edit of its message must not hold that turn while it waits."""
    budget = ChannelBudget(1, WINDOW, clock=clock)
    throttle = EditThrottle(1.0, budget=budget, clock=clock)
    shown: list[str] = []

    def lane() -> int | None:
        return CHANNEL if clock.now >= 1.5 else None  # the token stops being usable at 1.5 s

    async def first() -> None:  # through the webhook, which answers "token expired" late
        await clock.sleep(2.0)
        async with budget.priority(CHANNEL):
            shown.append("first")

    async def second() -> None:
        shown.append("second")

    throttle.update("job", "s1", first, lane=lane)
    await clock.run_until(1.6)
    throttle.update("job", "s2", second, lane=lane)  # due at once, while the first is under way
    await clock.run_until(100.0)
    assert shown == ["first", "second"]
