"""Many jobs in one channel, after their tokens expired: calm, fair, and never a 429.

The real bot talks to the fake Discord, which here enforces Discord's per-channel message
buckets (5 writes per window, a 429 past that). Time is scaled down tenfold: Discord's 5 s
window is 0.5 s, and the bot's channel budget (4 per window) with it. The services' clock
jumps 5 s at a time, so every job's elapsed time, and with it its text, changes at each jump.
Segmind holds the jobs until the test lets them finish (``segmind_clock``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from cogs.videobot import Timings
from services.app import Services, open_services, runner_config
from services.channel_budget import ChannelBudget
from services.simulator import SegmindSimulator
from tests.bot.conftest import fast_settings
from tests.bot.faultkit import RETRY_POLICY, JumpingClock
from tests.bot.helpers import (
    CANCELLED,
    MAKING,
    click,
    has_button,
    start_held_simulator,
    video,
    wait_for_title,
)
from tests.conftest import SimulatorFactory
from tests.fakeclock import FakeClock
from tests.fakediscord import FakeDiscord, FakeWorld, RecordedCall

WINDOW = 0.5  # Discord's 5 s, scaled down tenfold
EDIT_INTERVAL = 0.5  # the bot's 5 s between edits of one message, likewise
A_MINUTE = 6.0
DISCORD_WRITES = 5
BUDGET_WRITES = 4
JOBS = 12
TOKEN_LIFETIME = 15 * 60
TIMEOUT = 20.0
CHANNEL_WRITES = ("POST /channels/*/messages", "PATCH /channels/*/messages/*")


@pytest.fixture
def fake_world() -> FakeWorld:
    """One member per job: a member's own jobs run one after another."""
    world = FakeWorld.default()
    for n in range(2 * JOBS):
        world.guild.add_member(f"member{n}")
    return world


@pytest.fixture
def bot_timings() -> Timings:
    """Discord's cadence scaled like its window: one edit per message per 0.5 s."""
    return Timings(progress_edit_interval=EDIT_INTERVAL)


@pytest.fixture
def clock() -> JumpingClock:
    """The services' clock: each jump of 5 s changes every job's elapsed time."""
    return JumpingClock()


@pytest.fixture
async def services(
    bot_env: dict[str, str], simulator: SegmindSimulator, clock: JumpingClock
) -> AsyncIterator[Services]:
    """Enough slots for every job; elapsed-time ticks every 20 ms instead of 5 s."""
    env = {**bot_env, "DEFAULT_LIMIT": "100/1d", "MAX_CONCURRENT_JOBS": "20"}
    settings = fast_settings(env)
    runner = replace(runner_config(settings), progress_interval=0.02)
    async with open_services(
        settings,
        clock=clock,
        segmind_base_url=simulator.base_url,
        retry_policy=RETRY_POLICY,
        runner=runner,
    ) as opened:
        yield opened


@pytest.fixture
async def simulator(
    simulator_factory: SimulatorFactory, segmind_clock: FakeClock
) -> SegmindSimulator:
    return await start_held_simulator(simulator_factory, segmind_clock)


@pytest.fixture
def paced_bot(bot, fake_discord: FakeDiscord):
    fake_discord.enforce_rate_limits(DISCORD_WRITES, WINDOW)
    bot.presenter.pace_channels(ChannelBudget(BUDGET_WRITES, WINDOW))
    return bot


def channel_writes(fake: FakeDiscord) -> list[RecordedCall]:
    return sorted(
        (call for route in CHANNEL_WRITES for call in fake.calls_to(route)), key=lambda c: c.seq
    )


def progress_edits(fake: FakeDiscord, since: int = 0) -> list[RecordedCall]:
    """Channel edits that showed progress (not a final card), after call ``since``."""
    return [
        call
        for call in fake.calls_to("PATCH /channels/*/messages/*")
        if call.seq > since
        and call.ok
        and (call.json or {}).get("embeds", [{}])[0].get("title") == MAKING
    ]


async def start_jobs(fake: FakeDiscord, count: int, prefix: str, first: int = 0) -> list[int]:
    members = [fake.world.member_named(f"member{n}") for n in range(first, first + count)]
    records = [await video(fake, m, {"prompt": f"{prefix} {n}"}) for n, m in enumerate(members)]
    await fake.wait_until(lambda: all(r.original_message_id for r in records), TIMEOUT)
    return [r.original_message_id for r in records if r.original_message_id]


async def move_to_channel_messages(fake: FakeDiscord, clock: JumpingClock) -> None:
    """Discord's 15 minutes pass: every progress edit now goes to the channel."""
    fake.advance(TOKEN_LIFETIME + 1)
    start = len(fake.calls)
    clock.jump(5)
    await fake.wait_until(lambda: len(progress_edits(fake, since=start)) >= JOBS, TIMEOUT)


async def test_many_jobs_in_one_channel_move_in_turn_without_a_429(
    paced_bot, fake_discord: FakeDiscord, clock: JumpingClock, segmind_clock: FakeClock
):
    messages = await start_jobs(fake_discord, JOBS, "a slow tide")
    await move_to_channel_messages(fake_discord, clock)
    start = len(fake_discord.calls)

    for _ in range(20):  # twenty changes of every job's text, each 5 s apart
        before = len(progress_edits(fake_discord))
        clock.jump(5)
        await fake_discord.wait_until(
            lambda before=before: len(progress_edits(fake_discord)) >= before + BUDGET_WRITES,
            TIMEOUT,
        )

    assert [c for c in fake_discord.calls if c.status == 429] == []
    edits = progress_edits(fake_discord, since=start)
    # In turn: between two edits of one message, no other message had more than two (a
    # message whose next change arrived late may miss a round, never more).
    order = [int(c.path.rsplit("/", 1)[1]) for c in edits]
    for message in messages:
        seen = [i for i, m in enumerate(order) if m == message]
        assert seen, f"message {message} never moved"
        for a, b in itertools.pairwise(seen):
            between = Counter(order[a + 1 : b])
            assert max(between.values(), default=0) <= 2, f"{message} waited behind repeats"
    # At least once a minute (6 s here), each message, in Discord's own time.
    for message in messages:
        moved = [c.at for c in edits if c.path.endswith(f"/{message}")]
        still = max((b - a for a, b in itertools.pairwise(moved)), default=0.0)
        assert still <= A_MINUTE, f"message {message} stood still for {still:.1f} s"


async def test_unchanged_text_is_never_sent_again_and_edits_are_bounded(
    paced_bot, fake_discord: FakeDiscord, clock: JumpingClock, segmind_clock: FakeClock
):
    messages = await start_jobs(fake_discord, JOBS, "a quiet pond")
    await move_to_channel_messages(fake_discord, clock)
    for _ in range(5):
        before = len(progress_edits(fake_discord))
        clock.jump(5)
        await fake_discord.wait_until(
            lambda before=before: len(progress_edits(fake_discord)) >= before + JOBS, TIMEOUT
        )
    for message_id in messages:
        revisions = fake_discord.message(message_id).revisions
        shown = [(r.content, r.embeds) for r in revisions]
        assert all(a != b for a, b in itertools.pairwise(shown)), "the same text sent twice"
        # At most 1 + duration / interval: never two edits of one message within 0.5 s.
        gaps = [b.at - a.at for a, b in itertools.pairwise(revisions)]
        assert min(gaps) >= EDIT_INTERVAL * 0.9, f"two edits {min(gaps):.2f} s apart"
        duration = revisions[-1].at - revisions[0].at
        assert len(revisions) <= 1 + duration / (EDIT_INTERVAL * 0.9)
    assert [c for c in fake_discord.calls if c.status == 429] == []


async def test_a_final_message_goes_out_ahead_of_waiting_progress_edits(
    paced_bot, fake_discord: FakeDiscord, clock: JumpingClock, segmind_clock: FakeClock
):
    messages = await start_jobs(fake_discord, JOBS, "a late owl")
    await move_to_channel_messages(fake_discord, clock)
    queued = len(fake_discord.calls)
    clock.jump(5)  # every job wants an edit: three windows' worth in this channel
    await fake_discord.wait_until(
        lambda: len(progress_edits(fake_discord, since=queued)) >= BUDGET_WRITES, TIMEOUT
    )  # the first window's worth went out: the rest wait for their turns
    requester = fake_discord.world.member_named("member0")
    start = len(fake_discord.calls)
    await click(fake_discord, fake_discord.message(messages[0]), "cancel", requester)
    await wait_for_title(fake_discord, messages[0], CANCELLED)

    card = next(
        c
        for c in fake_discord.calls_to("PATCH /channels/*/messages/*")
        if c.seq > start
        and c.ok
        and (c.json or {}).get("embeds", [{}])[0].get("title") == CANCELLED
    )
    ahead = [c for c in progress_edits(fake_discord, since=start) if c.seq < card.seq]
    behind = await fake_discord.wait_until(
        lambda: len(progress_edits(fake_discord, since=card.seq)) >= BUDGET_WRITES, TIMEOUT
    )
    # The card waited for one turn at most, never behind the queue of progress edits.
    assert len(ahead) <= BUDGET_WRITES, f"the card waited behind {len(ahead)} progress edits"
    assert behind  # the queue was there, and was served after it
    assert [c for c in fake_discord.calls if c.status == 429] == []


async def test_progress_edits_leave_the_cancel_button_as_it_is(
    paced_bot, fake_discord: FakeDiscord, clock: JumpingClock, segmind_clock: FakeClock
):
    """The button is posted once; sending it again with every edit cost CPU and bytes for
    nothing, as Discord keeps what an edit leaves out. Through the token, then the channel."""
    messages = await start_jobs(fake_discord, JOBS, "a still lake")
    start = len(fake_discord.calls)

    def edits() -> list[RecordedCall]:
        return [
            c
            for c in fake_discord.calls
            if c.seq > start
            and c.method == "PATCH"
            and c.ok
            and (c.json or {}).get("embeds", [{}])[0].get("title") == MAKING
        ]

    clock.jump(5)
    await fake_discord.wait_until(lambda: len(edits()) >= JOBS, TIMEOUT)
    await move_to_channel_messages(fake_discord, clock)

    assert {c.path.split("/")[1] for c in edits()} == {"webhooks", "channels"}
    assert [c.json for c in edits() if "components" in c.json] == []
    for message_id in messages:
        assert has_button(fake_discord.message(message_id), "cancel"), message_id


async def test_buttons_are_sent_again_until_an_edit_has_reached_the_message(
    bot,
    services: Services,
    fake_discord: FakeDiscord,
    clock: JumpingClock,
    segmind_clock,
    monkeypatch: pytest.MonkeyPatch,
):
    """An edit that found no message to edit (its id not stored yet, as when an approval's
    link failed) must not count as showing the buttons: the next edit still sends them."""
    [message_id] = await start_jobs(fake_discord, 1, "a bare jetty")
    messenger = bot.presenter.messenger
    edit_progress, tried = messenger.edit_progress, asyncio.Event()

    async def seen_edit(*args: Any, **kwargs: Any) -> Any:
        try:
            return await edit_progress(*args, **kwargs)
        finally:
            tried.set()

    monkeypatch.setattr(messenger, "edit_progress", seen_edit)
    bot.presenter.forget_job(1)  # as after an approval whose edit to progress failed
    await services.storage.jobs.update(1, now=clock.time(), message_id=None)
    start = len(fake_discord.calls)
    # A minute at a time: the expected end shown moves, so an edit is due each time.
    clock.jump(60)
    async with asyncio.timeout(TIMEOUT):
        await tried.wait()
    assert [c for c in fake_discord.calls[start:] if c.method == "PATCH"] == [], "no message"

    await services.storage.jobs.update(1, now=clock.time(), message_id=message_id)
    fake_discord.message(message_id).components = []  # the waiting card's buttons are gone
    clock.jump(60)
    await fake_discord.wait_until(lambda: has_button(fake_discord.message(message_id), "cancel"))
