"""`bot.py generate` and the operator's daily ceiling: checked, printed and counted.

The CLI runs against the simulator on loopback as a real Segmind; the bot is its database
(held open throughout, as a running bot holds it) and its admission gate on that database,
on each engine: the CLI counts its clip wherever DATABASE_URL says the bot keeps its spend.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.admission import Admission
from services.cli import EXIT_CEILING, EXIT_DATABASE, generate
from services.gates import AccountGates
from services.models import JobOrigin, JobState, VideoRequest
from services.periods import LimitSpec
from services.settings import Settings, load_settings
from services.simulator import SegmindSimulator
from services.spend_caps import SpendCeilingReached, spent_today
from services.storage import NewJob, Storage
from tests.fakeclock import FakeClock
from tests.postgres_server import SQLITE_ONLY

PRICE = 0.36
CEILING = 2 * PRICE
REQUEST = VideoRequest.create("a lighthouse in a storm", seed=42)
NOON = datetime(2024, 5, 15, 12, tzinfo=UTC).timestamp()  # far from the UTC day's ends


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture
def settings(
    simulator: SegmindSimulator,
    segmind_api_key: str,
    tmp_path: Path,
    database_location: Path | str,
) -> Settings:
    loaded = load_settings({"SEGMIND_API_KEY": segmind_api_key}, need_discord=False)
    return dataclasses.replace(
        loaded,
        segmind_base_url=simulator.base_url,
        poll_interval_seconds=0.01,  # the simulator is on loopback
        # A server's URL, or a SQLite file in a folder the bot has not made yet.
        database_path=tmp_path / "data" / "bot.db",
        database_url=database_location if isinstance(database_location, str) else None,
        clip_cost_usd=PRICE,
        max_daily_spend_usd=CEILING,
    )


@pytest.fixture
async def bot(settings: Settings) -> AsyncIterator[Storage]:
    """The running bot's database: open for the whole test, as the bot keeps it."""
    storage = await Storage.open(settings.database_location)
    yield storage
    await storage.close()


def admission(bot: Storage, settings: Settings, clock: FakeClock) -> Admission:
    return Admission(
        bot,
        default_limit=LimitSpec(100, 86400),
        clip_cost_usd=settings.clip_cost_usd,
        clock=clock,
        gates=AccountGates.create(clock, recheck_seconds=600),
        daily_spend_ceiling_usd=settings.max_daily_spend_usd,
    )


def member(guild: int) -> JobOrigin:
    return JobOrigin(guild_id=guild, channel_id=5, user_id=1)


async def spent(bot: Storage, clock: FakeClock) -> float:
    async with bot.db.transaction() as tx:
        return await spent_today(bot.jobs, clock.time(), tx=tx)


async def test_past_the_ceiling_nothing_is_sent_and_the_operator_is_told_why(
    settings: Settings, bot: Storage, clock: FakeClock, simulator: SegmindSimulator, tmp_path: Path
) -> None:
    gate = admission(bot, settings, clock)
    await gate.admit(REQUEST, member(10))
    await gate.admit(REQUEST, member(20))  # the two servers used the whole day's ceiling
    out, printed = tmp_path / "clip.mp4", io.StringIO()

    code = await generate(settings, REQUEST, out, stream=printed, clock=clock)

    assert code == EXIT_CEILING != 0
    assert simulator.submit_attempts == 0 and simulator.calls == []
    assert not out.exists()
    text = printed.getvalue()
    assert "Nothing was sent" in text and "MAX_DAILY_SPEND_USD" in text
    assert "ceiling of $0.72" in text and "$0.72 was already spent today" in text
    assert "midnight UTC (in 12h 00m)" in text
    assert "sending to" not in text
    assert await spent(bot, clock) == pytest.approx(CEILING)  # nothing held for it


async def test_under_the_ceiling_the_clip_is_made_and_the_bot_counts_it(
    settings: Settings, bot: Storage, clock: FakeClock, simulator: SegmindSimulator, tmp_path: Path
) -> None:
    gate = admission(bot, settings, clock)
    await gate.admit(REQUEST, member(10))
    out, printed = tmp_path / "clip.mp4", io.StringIO()

    code = await generate(settings, REQUEST, out, stream=printed, clock=clock)

    assert code == 0 and out.exists()
    assert len(simulator.submits) == 1
    text = printed.getvalue()
    price = (
        "this clip costs about $0.36; today's spend $0.36 of the MAX_DAILY_SPEND_USD ceiling $0.72"
    )
    assert price in text
    assert text.index(price) < text.index("sending to")  # told before anything is sent
    # The bot's own gate now sees the CLI's clip: its next request would pass the ceiling.
    assert await spent(bot, clock) == pytest.approx(CEILING)
    with pytest.raises(SpendCeilingReached) as refused:
        await gate.admit(REQUEST, member(20))
    assert refused.value.spent_usd == pytest.approx(CEILING)
    # Stored as billed and finished: a restarted bot never resumes (and re-bills) it.
    cli_rows = await bot.jobs.recent(0)
    assert [(j.state, j.cost_usd) for j in cli_rows] == [(JobState.DELIVERED, PRICE)]
    assert cli_rows[0].request_id is not None
    assert all(j.guild_id != 0 for j in await bot.jobs.unfinished())


async def test_a_submit_segmind_refused_is_not_counted(
    settings: Settings, bot: Storage, clock: FakeClock, simulator: SegmindSimulator, tmp_path: Path
) -> None:
    wrong_key = dataclasses.replace(settings, segmind_api_key="sg-not-the-key")
    printed = io.StringIO()

    code = await generate(wrong_key, REQUEST, tmp_path / "clip.mp4", stream=printed, clock=clock)

    assert code == 1
    assert "check SEGMIND_API_KEY" in printed.getvalue()
    assert simulator.submits == []
    assert await spent(bot, clock) == 0.0  # the hold was released: nothing was billed
    assert [j.state for j in await bot.jobs.recent(0)] == [JobState.FAILED]


async def test_without_a_ceiling_generate_is_unchanged_and_leaves_the_bots_database_alone(
    settings: Settings, clock: FakeClock, simulator: SegmindSimulator, tmp_path: Path
) -> None:
    no_ceiling = dataclasses.replace(settings, max_daily_spend_usd=None)
    out, printed = tmp_path / "clip.mp4", io.StringIO()

    code = await generate(no_ceiling, REQUEST, out, stream=printed, clock=clock)

    assert code == 0 and out.exists()
    assert len(simulator.submits) == 1
    assert "this clip costs about $0.36; no MAX_DAILY_SPEND_USD is set" in printed.getvalue()
    assert not settings.database_path.parent.exists()


async def test_the_simulator_bills_nothing_so_the_ceiling_does_not_stop_it(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    simulated = dataclasses.replace(
        settings,
        simulate=True,
        max_daily_spend_usd=0.0,  # "stop all spending": there is none to stop
        simulator_queue_seconds=0.05,
        simulator_processing_seconds=0.1,
    )
    out, printed = tmp_path / "clip.mp4", io.StringIO()

    code = await generate(simulated, REQUEST, out, stream=printed, clock=clock)

    assert code == 0 and out.exists()
    assert "the simulator bills nothing" in printed.getvalue()
    assert not settings.database_path.parent.exists()


@SQLITE_ONLY
async def test_an_unreadable_bot_database_sends_nothing(
    settings: Settings, clock: FakeClock, simulator: SegmindSimulator, tmp_path: Path
) -> None:
    # A folder where the database file should be: today's spend cannot be read.
    unreadable = dataclasses.replace(settings, database_path=tmp_path)
    printed = io.StringIO()

    code = await generate(unreadable, REQUEST, tmp_path / "clip.mp4", stream=printed, clock=clock)

    assert code == EXIT_DATABASE != 0
    assert simulator.calls == []
    assert "Nothing was sent" in printed.getvalue() and "DATABASE_URL" in printed.getvalue()


# --- priced as admission prices it: the reservation, then what Segmind reported ---------

YESTERDAY = NOON - 86400.0  # within the week admission reads prices from, not in today's spend


async def segmind_charged(bot: Storage, cost: float, request: VideoRequest = REQUEST) -> None:
    """A server's clip of yesterday that Segmind reported costing ``cost``."""
    job = await bot.jobs.insert(
        NewJob(guild_id=10, channel_id=5, user_id=1, request=request, created_at=YESTERDAY)
    )
    await bot.jobs.update(
        job.id,
        now=YESTERDAY,
        state=JobState.DELIVERED,
        request_id=f"r{job.id}",
        cost_usd=cost,
        cost_reported=True,
    )


async def test_the_ceiling_is_checked_at_the_price_segmind_lately_charged_for_this_size(
    settings: Settings, bot: Storage, clock: FakeClock, simulator: SegmindSimulator, tmp_path: Path
) -> None:
    await segmind_charged(bot, 0.5)
    # Room for a clip at CLIP_COST_USD ($0.36), not at what Segmind charged for this size.
    tight = dataclasses.replace(settings, max_daily_spend_usd=0.45)
    out, printed = tmp_path / "clip.mp4", io.StringIO()

    code = await generate(tight, REQUEST, out, stream=printed, clock=clock)

    assert code == EXIT_CEILING
    assert simulator.calls == [] and not out.exists()
    assert "this clip (about $0.50) would pass your MAX_DAILY_SPEND_USD" in printed.getvalue()
    assert await spent(bot, clock) == 0.0
    # The bot's own gate agrees: it refuses this clip at the same price.
    with pytest.raises(SpendCeilingReached) as refused:
        await admission(bot, tight, clock).admit(REQUEST, member(20))
    assert refused.value.clip_cost_usd == pytest.approx(0.5)


async def test_the_clip_is_held_at_the_reservation_and_counted_at_segminds_figure(
    settings: Settings, bot: Storage, clock: FakeClock, simulator: SegmindSimulator, tmp_path: Path
) -> None:
    await segmind_charged(bot, 0.5)
    # Another clip size's price does not raise this one's.
    await segmind_charged(bot, 0.9, dataclasses.replace(REQUEST, steps=REQUEST.steps - 10))
    simulator.config.reported_cost = 0.42
    printed = io.StringIO()

    code = await generate(settings, REQUEST, tmp_path / "clip.mp4", stream=printed, clock=clock)

    assert code == 0
    text = printed.getvalue()
    assert "this clip costs about $0.50; today's spend $0.00 of the" in text
    cli_rows = await bot.jobs.recent(0)
    assert [(round(j.cost_usd, 6), j.cost_reported) for j in cli_rows] == [(0.42, True)]
    assert await spent(bot, clock) == pytest.approx(0.42)


async def test_a_figure_segmind_did_not_report_leaves_the_reservation_counted(
    settings: Settings, bot: Storage, clock: FakeClock, simulator: SegmindSimulator, tmp_path: Path
) -> None:
    await segmind_charged(bot, 0.5)
    simulator.config.reported_cost = "free!"  # not a price: the estimate stands

    code = await generate(
        settings, REQUEST, tmp_path / "clip.mp4", stream=io.StringIO(), clock=clock
    )

    assert code == 0
    cli_rows = await bot.jobs.recent(0)
    assert [(round(j.cost_usd, 6), j.cost_reported) for j in cli_rows] == [(0.5, False)]


async def test_without_a_ceiling_the_quoted_price_is_the_reservation(
    settings: Settings, bot: Storage, clock: FakeClock, simulator: SegmindSimulator, tmp_path: Path
) -> None:
    await segmind_charged(bot, 0.5)
    no_ceiling = dataclasses.replace(settings, max_daily_spend_usd=None)
    printed = io.StringIO()

    code = await generate(no_ceiling, REQUEST, tmp_path / "clip.mp4", stream=printed, clock=clock)

    assert code == 0
    assert "this clip costs about $0.50; no MAX_DAILY_SPEND_USD is set" in printed.getvalue()
    assert await bot.jobs.recent(0) == []  # quoted only: nothing is counted without a ceiling
