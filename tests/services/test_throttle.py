"""Progress edits: never two within the interval, the newest state wins, nothing after final."""

from __future__ import annotations

import asyncio

from services.channel_budget import ChannelBudget
from services.throttle import EditThrottle

INTERVAL = 0.2


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, float]] = []
        self.changed = asyncio.Event()

    def send(self, label: str):
        async def do() -> None:
            self.sent.append((label, asyncio.get_running_loop().time()))
            self.changed.set()

        return do

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.sent) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_first_update_goes_out_at_once_and_repeats_are_dropped():
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    throttle.update("job", "a", rec.send("a"))
    await rec.wait_for(1)
    throttle.update("job", "a", rec.send("a-again"))
    assert throttle.pending_count() == 0
    assert [label for label, _ in rec.sent] == ["a"]


async def test_bursts_are_collapsed_to_the_newest_state_after_the_interval():
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    throttle.update("job", 1, rec.send("1"))
    await rec.wait_for(1)
    for n in (2, 3, 4):
        throttle.update("job", n, rec.send(str(n)))
    await rec.wait_for(2)
    labels = [label for label, _ in rec.sent]
    assert labels == ["1", "4"]
    gap = rec.sent[1][1] - rec.sent[0][1]
    assert gap >= INTERVAL * 0.95


async def test_the_initial_message_counts_as_a_send():
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    start = asyncio.get_running_loop().time()
    throttle.note_sent("job", "queued")
    throttle.update("job", "submitting", rec.send("submitting"))
    await rec.wait_for(1)
    assert rec.sent[0][1] - start >= INTERVAL * 0.95


async def test_nothing_held_is_sent_after_the_final_message():
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    throttle.update("job", 1, rec.send("1"))
    await rec.wait_for(1)
    throttle.update("job", 2, rec.send("2"))  # held for the interval
    await throttle.final("job", rec.send("final"))
    await asyncio.sleep(INTERVAL * 1.5)  # long enough for a held edit to have fired
    assert [label for label, _ in rec.sent] == ["1", "final"]


async def test_messages_are_throttled_independently():
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    throttle.update("a", 1, rec.send("a1"))
    throttle.update("b", 1, rec.send("b1"))
    await rec.wait_for(2)
    assert sorted(label for label, _ in rec.sent) == ["a1", "b1"]


async def test_a_failing_edit_does_not_break_later_ones():
    throttle, rec = EditThrottle(0.01), Recorder()

    async def boom() -> None:
        raise RuntimeError("discord is down")

    throttle.update("job", 1, boom)
    await asyncio.sleep(0.05)
    throttle.update("job", 2, rec.send("2"))
    await rec.wait_for(1)
    assert rec.sent[0][0] == "2"


async def test_an_edit_under_way_finishes_before_the_final_message():
    """Cut short, a repost of a deleted progress message would be lost to the final edit."""
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    on_the_wire, release = asyncio.Event(), asyncio.Event()

    async def slow_edit() -> None:
        on_the_wire.set()
        await release.wait()
        rec.sent.append(("edit", 0.0))

    throttle.update("job", 1, slow_edit)
    await on_the_wire.wait()
    final = asyncio.create_task(throttle.final("job", rec.send("final")))
    await asyncio.sleep(0)
    release.set()
    await final
    assert [label for label, _ in rec.sent] == ["edit", "final"]


async def test_a_state_whose_edit_failed_is_sent_again_after_the_interval():
    """Progress keys change rarely (a bar cell): a failed edit must not leave it stale."""
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    tried = asyncio.Event()
    failed_at = 0.0

    async def boom() -> None:
        nonlocal failed_at
        failed_at = asyncio.get_running_loop().time()
        tried.set()
        raise RuntimeError("discord is down")

    throttle.update("job", "half done", boom)
    await asyncio.wait_for(tried.wait(), 5)
    throttle.update("job", "half done", rec.send("half done"))
    await rec.wait_for(1)
    assert [label for label, _ in rec.sent] == ["half done"]
    assert rec.sent[0][1] - failed_at >= INTERVAL * 0.95  # still no faster than the interval


async def test_a_held_state_is_not_shown_when_the_final_message_comes_first():
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    throttle.update("job", "generating", rec.send("generating"))
    await rec.wait_for(1)
    await asyncio.sleep(INTERVAL)  # the interval alone would let the next edit go at once
    throttle.update("job", "fetching", rec.send("fetching"), hold=INTERVAL * 2)
    await asyncio.sleep(INTERVAL)
    await throttle.final("job", rec.send("clip"))
    await asyncio.sleep(INTERVAL * 2)  # past the hold: a held edit would have fired
    assert [label for label, _ in rec.sent] == ["generating", "clip"]


async def test_a_held_state_still_standing_after_its_hold_is_shown_then():
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    start = asyncio.get_running_loop().time()
    throttle.update("job", "fetching", rec.send("fetching"), hold=INTERVAL * 2)
    # Asked again, the same state keeps its first deadline instead of waiting anew.
    await asyncio.sleep(INTERVAL)
    throttle.update("job", "fetching", rec.send("fetching-again"), hold=INTERVAL * 2)
    await rec.wait_for(1)
    waited = rec.sent[0][1] - start
    assert INTERVAL * 1.9 <= waited < INTERVAL * 2.9, waited


async def test_a_newer_state_without_a_hold_replaces_a_held_one_at_once():
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    throttle.update("job", "fetching", rec.send("fetching"), hold=60)
    start = asyncio.get_running_loop().time()
    throttle.update("job", "failed", rec.send("failed"))
    # The timer sleeping for the held state must not keep the newer one waiting.
    await rec.wait_for(1)
    assert [label for label, _ in rec.sent] == ["failed"]
    assert rec.sent[0][1] - start < INTERVAL


def slow(rec: Recorder, label: str, seconds: float):
    """An edit that takes ``seconds`` to answer, as a slow Discord does."""
    record = rec.send(label)

    async def do() -> None:
        await record()
        await asyncio.sleep(seconds)

    return do


async def test_a_held_state_waits_its_hold_even_when_an_edit_is_under_way():
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    throttle.update("job", "80 %", slow(rec, "80 %", INTERVAL * 3))
    await rec.wait_for(1)
    throttle.update("job", "95 %", rec.send("95 %"))
    await asyncio.sleep(INTERVAL * 1.5)  # its timer is awake, waiting for the slow edit
    start = asyncio.get_running_loop().time()
    throttle.update("job", "fetching", rec.send("fetching"), hold=INTERVAL * 10)
    await asyncio.sleep(INTERVAL * 3)  # the slow edit is over: nothing else holds it back
    assert [label for label, _ in rec.sent] == ["80 %"]
    await throttle.final("job", rec.send("clip"))
    assert [label for label, _ in rec.sent] == ["80 %", "clip"]
    assert asyncio.get_running_loop().time() - start < INTERVAL * 10


async def test_a_held_state_waits_its_hold_even_when_the_channel_turn_is_near():
    budget = ChannelBudget(writes=1, per=INTERVAL * 3)
    throttle, rec = EditThrottle(INTERVAL, budget=budget), Recorder()
    async with budget.priority("channel"):  # another job's clip spends the channel's write
        pass
    throttle.update("job", "95 %", rec.send("95 %"), lane=lambda: "channel")
    await asyncio.sleep(INTERVAL * 0.5)  # waiting for the channel's turn
    throttle.update("job", "fetching", rec.send("fetching"), lane=lambda: "channel", hold=60)
    await asyncio.sleep(INTERVAL * 4)  # the turn has come and gone
    assert rec.sent == []
    # The turn it gave back is there for the channel's next write at once.
    async with asyncio.timeout(INTERVAL):
        async with budget.priority("channel"):
            pass


async def test_a_withdrawn_state_is_not_shown_and_later_ones_still_are():
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    throttle.update("job", "generating", rec.send("generating"))
    await rec.wait_for(1)
    throttle.update("job", "fetching", rec.send("fetching"), hold=INTERVAL)
    throttle.withdraw("job")  # downloaded: "fetching" no longer stands
    assert throttle.pending_count() == 0
    await asyncio.sleep(INTERVAL * 2)
    throttle.update("job", "posting", rec.send("posting"))
    await rec.wait_for(2)
    assert [label for label, _ in rec.sent] == ["generating", "posting"]


async def test_a_lane_that_fails_once_does_not_freeze_the_message():
    throttle, rec = EditThrottle(INTERVAL, budget=ChannelBudget(5, INTERVAL)), Recorder()
    asked = asyncio.Event()

    def lane() -> str:
        if not asked.is_set():
            asked.set()
            raise RuntimeError("the lane could not be named")
        return "channel"

    throttle.update("job", 1, rec.send("1"), lane=lane)
    async with asyncio.timeout(5):
        await asked.wait()
    throttle.update("job", 2, rec.send("2"), lane=lane)
    await rec.wait_for(1)
    assert [label for label, _ in rec.sent] == ["2"]


async def test_updates_while_a_timer_sleeps_do_not_start_it_again(monkeypatch):
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    timers = 0
    create_task = asyncio.create_task

    def counted(coro):
        nonlocal timers
        timers += 1
        return create_task(coro)

    monkeypatch.setattr("services.throttle.asyncio.create_task", counted)
    throttle.update("job", 0, rec.send("0"))
    await rec.wait_for(1)
    for n in range(1, 21):  # a busy job's progress while the interval runs: one timer waits
        throttle.update("job", n, rec.send(str(n)))
        await asyncio.sleep(0)
    await rec.wait_for(2)
    assert [label for label, _ in rec.sent] == ["0", "20"]
    assert timers == 2


async def test_an_update_while_the_final_message_waits_is_never_sent_after_it():
    throttle, rec = EditThrottle(INTERVAL), Recorder()
    throttle.update("job", "90 %", slow(rec, "90 %", INTERVAL))
    await rec.wait_for(1)
    final = asyncio.create_task(throttle.final("job", rec.send("clip")))
    await asyncio.sleep(0)  # final waits for the edit under way
    throttle.update("job", "95 %", rec.send("95 %"))  # a late tick of the job's progress
    await final
    await asyncio.sleep(INTERVAL * 2)  # long enough for an edit started afresh to go out
    assert [label for label, _ in rec.sent] == ["90 %", "clip"]
    assert throttle.pending_count() == 0
