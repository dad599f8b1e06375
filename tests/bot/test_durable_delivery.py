# ruff: noqa: F811 - the fixtures imported from tests.bot.faultkit are test arguments here
"""A paid clip is never lost and never billed twice, as members see it (issue 9).

The real bot against the fake Discord and the simulator: Discord fails to take the clip for
longer than the runner's old retry window, or the bot restarts in the middle of that, and
the member still gets exactly one clip; Segmind's answer to a submit cannot be read, and
the job ends as "unknown" (counted, never resent) rather than failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from cogs.videobot import Timings, VideoBot, create_bot
from services.app import open_services, runner_config
from services.errors import SubmitOutcomeUnknown
from services.models import JobState
from services.simulator import SegmindSimulator
from tests.bot.conftest import SAMPLE, fast_settings
from tests.bot.faultkit import (  # noqa: F401 - fixtures
    DELIVERY_ATTEMPTS,
    FAILED,
    FINISHED,
    QUICK,
    RETRY_POLICY,
    TIMEOUT,
    JumpingClock,
    bot_timings,
    clock,
    env_overrides,
    field,
    job_when_idle,
    logged,
    request_video,
    services,
    settings_overrides,
    title,
    wait_for_clip,
    wait_for_title,
)
from tests.fakediscord import FakeDiscord, Fault, StoredMessage, running_client

# Posts Discord refuses in a row: four times the attempts after which the job used to fail.
OUTAGE = 4 * DELIVERY_ATTEMPTS
# discord.py resends a 500/502/504 itself, a second later; a 503 on a channel post it does
# not, so each refusal below is one attempt of the bot's own.
UNAVAILABLE = 503


@pytest.fixture(autouse=True)
def _capture_logs(caplog):
    caplog.set_level(logging.INFO)


def uploads_route(fake: FakeDiscord) -> str:
    """Where a public clip is posted: the channel (with a nonce), while the token is fresh too."""
    return f"POST /channels/{fake.world.guild.channels[0].id}/messages"


def uploads(fake: FakeDiscord) -> list:
    return [call for call in fake.calls_to(uploads_route(fake)) if call.files]


def clips(fake: FakeDiscord, channel_id: int) -> list[StoredMessage]:
    return [m for m in fake.channel_messages(channel_id) if m.attachments]


@asynccontextmanager
async def running_bot(
    env: dict[str, str], simulator: SegmindSimulator, fake: FakeDiscord
) -> AsyncIterator[VideoBot]:
    """The bot with faultkit's short delays, on the database ``env`` names, until it stops."""
    settings = fast_settings(env)
    runner = replace(
        runner_config(settings),
        delivery_attempts=DELIVERY_ATTEMPTS,
        delivery_backoff=QUICK,
        download_backoff=QUICK,
    )
    async with open_services(
        settings,
        clock=JumpingClock(),
        segmind_base_url=simulator.base_url,
        retry_policy=RETRY_POLICY,
        runner=runner,
    ) as opened:
        client = create_bot(
            opened, guild_ready_timeout=0.05, timings=Timings(progress_edit_interval=0.05)
        )
        async with running_client(client, fake):
            yield client


async def test_a_discord_outage_longer_than_the_old_retry_window_only_delays_the_clip(
    bot, fake_discord, services, simulator, caplog
):
    alice = fake_discord.world.member_named("alice")
    outage = fake_discord.inject(
        Fault.server_error(uploads_route(fake_discord), status=UNAVAILABLE, times=OUTAGE)
    )
    record = await request_video(fake_discord, alice)

    clip = await wait_for_clip(fake_discord, record.channel_id)
    job = await job_when_idle(services)

    assert outage.exhausted, "every refused post was tried again"
    assert len(uploads(fake_discord)) == OUTAGE + 1
    assert [m.id for m in clips(fake_discord, record.channel_id)] == [clip.id]
    assert clip.attachments[0].data == SAMPLE and clip.pinged_user_ids == {alice.id}
    assert job.state is JobState.DELIVERED and job.result_message_id == clip.id
    progress = fake_discord.message(record.original_message_id)
    await fake_discord.wait_until(lambda: title(progress) == FINISHED, TIMEOUT)
    assert logged(caplog, "delivery attempt", logging.WARNING) == OUTAGE
    assert logged(caplog, "still not delivered after", logging.ERROR) == 1  # the operator hears
    assert len(simulator.submits) == 1


async def test_a_restart_during_the_outage_still_delivers_the_clip_once(
    fake_discord, bot_env, simulator
):
    alice = fake_discord.world.member_named("alice")
    outage = fake_discord.inject(
        Fault.server_error(uploads_route(fake_discord), status=UNAVAILABLE, times=None)
    )
    async with running_bot(bot_env, simulator, fake_discord) as first:
        record = await request_video(fake_discord, alice)
        await fake_discord.wait_until(lambda: len(uploads(fake_discord)) > DELIVERY_ATTEMPTS)
        waiting = await first.services.storage.jobs.get(1)
    # Stopped mid-outage; by the time the bot is back, so is Discord.
    outage.times = outage.hits

    async with running_bot(bot_env, simulator, fake_discord) as second:
        clip = await wait_for_clip(fake_discord, record.channel_id)
        job = await job_when_idle(second.services)

    assert waiting.state is JobState.DOWNLOADED
    assert [m.id for m in clips(fake_discord, record.channel_id)] == [clip.id]
    assert clip.attachments[0].data == SAMPLE and clip.pinged_user_ids == {alice.id}
    assert job.state is JobState.DELIVERED and job.result_message_id == clip.id
    assert len(simulator.submits) == 1
    assert len(simulator.calls_to("download")) == 1  # the clip on disk waited for Discord


@pytest.mark.parametrize("env_overrides", [{"MAX_CONCURRENT_JOBS": "1"}])
async def test_videos_are_still_made_while_a_finished_one_waits_for_discord(
    bot, fake_discord, services, simulator
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.guild.add_member("bob")
    outage = fake_discord.inject(
        Fault.server_error(uploads_route(fake_discord), status=UNAVAILABLE, times=None)
    )
    first = await request_video(fake_discord, alice, "a heron at dawn")
    await fake_discord.wait_until(lambda: uploads(fake_discord))  # alice's clip waits
    second = await request_video(fake_discord, bob, "a fox at dusk")

    # Bob's video is made in the only Segmind slot while alice's clip waits for Discord.
    await fake_discord.wait_until(lambda: len(simulator.submits) == 2)
    # ... and waits for Discord too: both clips are being offered, neither is taken yet.
    await fake_discord.wait_until(
        lambda: len({call.files[0].filename for call in uploads(fake_discord)}) == 2
    )
    outage.times = outage.hits  # Discord is back

    await fake_discord.wait_until(lambda: len(clips(fake_discord, first.channel_id)) == 2)
    await job_when_idle(services, 2)

    for record, member in ((first, alice), (second, bob)):
        (clip,) = [
            m for m in clips(fake_discord, record.channel_id) if m.pinged_user_ids == {member.id}
        ]
        assert clip.attachments[0].data == SAMPLE
    for job_id in (1, 2):
        assert (await services.storage.jobs.get(job_id)).state is JobState.DELIVERED


async def test_a_clip_lost_from_disk_during_the_outage_ends_the_job_and_says_so(
    bot, fake_discord, services, simulator, caplog
):
    alice = fake_discord.world.member_named("alice")
    fake_discord.inject(
        Fault.server_error(uploads_route(fake_discord), status=UNAVAILABLE, times=None)
    )
    record = await request_video(fake_discord, alice)
    await fake_discord.wait_until(lambda: uploads(fake_discord))
    waiting = await services.storage.jobs.get(1)
    Path(waiting.clip_path).unlink()  # an operator cleaned the data directory

    failure = await wait_for_title(fake_discord, record.channel_id, FAILED)
    job = await job_when_idle(services)

    assert failure.id == record.original_message_id  # the member is told in place
    assert "file was lost" in field(failure, "Why")
    assert job.state is JobState.FAILED
    assert clips(fake_discord, record.channel_id) == []
    assert logged(caplog, "is gone; it cannot be delivered", logging.ERROR) == 1


async def test_a_submit_answer_nested_too_deep_to_read_ends_unknown_and_counted(
    bot, fake_discord, services, simulator
):
    # Segmind took the job (and the money); its 2xx answer is JSON too deep to parse.
    simulator.inject("submit", status=200, body="[" * 100_000, accept=True)
    alice = fake_discord.world.member_named("alice")
    record = await request_video(fake_discord, alice)

    failure = await wait_for_title(fake_discord, record.channel_id, FAILED)
    job = await job_when_idle(services)

    assert failure.id == record.original_message_id
    assert "it was not resent" in field(failure, "Why")
    assert job.state is JobState.UNKNOWN and job.counts_toward_limit
    assert job.error == SubmitOutcomeUnknown.user_message
    assert simulator.submit_attempts == 1 and len(simulator.submits) == 1


def discord_down(fake: FakeDiscord) -> list[Fault]:
    """Every write the bot makes is refused for now (429): edits, posts, follow-ups, DMs.

    A 429, not a 503: discord.py gives up on it after its own five quick tries, where it
    waits seconds of real time between 503s.
    """
    return [
        fake.inject(Fault.rate_limited(route, retry_after=0.01, times=None))
        for route in ("PATCH /**", "POST /**")
    ]


def discord_back(outage: list[Fault]) -> None:
    for fault in outage:
        fault.times = fault.hits


async def refused_by_segmind_during_an_outage(fake, services, simulator) -> tuple:
    """A job Segmind refuses while Discord is down: it ends, its member not yet told."""
    simulator.inject("submit", status=400, body={"error": "Prompt refused"}, times=1)
    record = await request_video(fake, fake.world.member_named("alice"))
    outage = discord_down(fake)

    async def ended():
        job = await services.storage.jobs.get(1)
        return job is not None and job.state is JobState.FAILED

    await wait_async(ended)
    return record, outage


async def wait_async(check, timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


async def test_a_failure_during_a_discord_outage_is_shown_once_discord_is_back(
    bot, fake_discord, services, simulator, caplog
):
    record, outage = await refused_by_segmind_during_an_outage(fake_discord, services, simulator)
    owed = await services.storage.jobs.get(1)
    assert owed.failure_notice_due is not None  # stored with the ending
    # Past every retry of discord.py's own: only the bot's own patience is left.
    await fake_discord.wait_until(
        lambda: logged(caplog, "failure message attempt 2 not shown", logging.WARNING), TIMEOUT
    )

    discord_back(outage)
    failure = await wait_for_title(fake_discord, record.channel_id, FAILED)

    assert failure.id == record.original_message_id  # told in place, once
    assert outage[0].hits >= 1
    await wait_async(lambda: _told(services))


async def _told(services) -> bool:
    job = await services.storage.jobs.get(1)
    return job.failure_notice_due is None


async def test_a_failure_owed_at_a_restart_is_shown_by_the_next_start(
    fake_discord, bot_env, simulator
):
    async with running_bot(bot_env, simulator, fake_discord) as first:
        record, outage = await refused_by_segmind_during_an_outage(
            fake_discord, first.services, simulator
        )
    assert not [m for m in fake_discord.channel_messages(record.channel_id) if title(m) == FAILED]
    discord_back(outage)  # by the time the bot is back, so is Discord

    async with running_bot(bot_env, simulator, fake_discord) as second:
        failure = await wait_for_title(fake_discord, record.channel_id, FAILED)
        await wait_async(lambda: _told(second.services))

    assert failure.id == record.original_message_id
    assert "Prompt refused" in field(failure, "Why")  # told again from the stored wording
