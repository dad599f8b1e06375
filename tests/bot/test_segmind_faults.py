# ruff: noqa: F811 - the fixtures imported from tests.bot.faultkit are test arguments here
"""Segmind faults, injected on the simulator while the real bot runs against the fake Discord.

Every fault ends in one of two things a member sees: the clip (pinging only them) or a
failure in plain words, in place of the progress message, within the job's deadline. Each
test also proves how many submits Segmind received (``submits`` = accepted jobs, billed;
``submit_attempts`` = every POST), because a job must never be billed twice.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.errors import (
    ConfigurationError,
    DeadlineExceeded,
    SegmindError,
    SegmindInsufficientCredits,
    SegmindRateLimited,
    SegmindRequestExpired,
    SubmitOutcomeUnknown,
)
from services.job_listener import DownloadFailed
from services.models import JobState
from services.runner_config import RATE_LIMITED_SUBMIT_ATTEMPTS
from services.segmind_polling import _NOT_FOUND_RETRIES
from tests.bot.conftest import SAMPLE
from tests.bot.faultkit import (  # noqa: F401 - fixtures
    DOWNLOAD_ATTEMPTS,
    FAILED,
    RETRY_POLICY,
    bot_timings,
    clock,
    env_overrides,
    field,
    job_when_idle,
    logged,
    request_video,
    services,
    settings_overrides,
    wait_for_clip,
    wait_for_status,
    wait_for_title,
)

HTML_BAD_GATEWAY = "<html><body><h1>502 Bad Gateway</h1></body></html>"
CREDITS_REFUSAL = SegmindInsufficientCredits.user_message


@pytest.fixture(autouse=True)
def _capture_logs(caplog):
    caplog.set_level(logging.INFO)


async def delivered(fake, services, record):
    """The clip message, once the job is stored as delivered; checks what the member got."""
    clip = await wait_for_clip(fake, record.channel_id)
    job = await job_when_idle(services)
    assert job.state is JobState.DELIVERED
    assert clip.attachments[0].data == SAMPLE
    assert clip.pinged_user_ids == {record.user_id}
    return clip


async def failed(fake, services, record, state: JobState):
    """The reason the member reads where the progress was, once the job ended in ``state``."""
    failure = await wait_for_title(fake, record.channel_id, FAILED)
    job = await job_when_idle(services)
    assert job.state is state
    assert failure.id == record.original_message_id
    assert [m for m in fake.channel_messages(record.channel_id) if m.attachments] == []
    return field(failure, "Why")


# --- 429 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{"Retry-After": "0.02"}, {}, {"Retry-After": "0.2"}],
    ids=["retry-after", "no-retry-after", "retry-after-beyond-the-clients-patience"],
)
async def test_a_rate_limited_submit_is_sent_again_and_billed_once(
    headers, bot, fake_discord, services, simulator, caplog
):
    simulator.inject("submit", status=429, body={"error": "Too many requests"}, headers=headers)
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    await delivered(fake_discord, services, record)

    assert simulator.submit_attempts == 2
    assert len(simulator.submits) == 1
    # The runner waits every 429 out itself, outside the shielded submit, so a cancel can stop it.
    assert logged(caplog, "rate limited at submit", logging.WARNING) == 1


@pytest.mark.parametrize("headers", [{"Retry-After": "0.01"}, {}], ids=["retry-after", "none"])
async def test_a_lasting_429_on_submit_ends_clearly_with_nothing_billed(
    headers, bot, fake_discord, services, simulator
):
    simulator.inject(
        "submit", status=429, body={"error": "Too many requests"}, headers=headers, times=1000
    )
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    why = await failed(fake_discord, services, record, JobState.FAILED)

    assert why == SegmindRateLimited.user_message
    assert simulator.submits == []
    assert simulator.submit_attempts == RATE_LIMITED_SUBMIT_ATTEMPTS  # one send per wait


@pytest.mark.parametrize("headers", [{"Retry-After": "0.02"}, {}], ids=["retry-after", "none"])
async def test_rate_limited_polls_wait_and_the_clip_arrives(
    headers, bot, fake_discord, services, simulator
):
    simulator.inject(
        "status", status=429, body={"error": "Too many requests"}, headers=headers, times=3
    )
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    await delivered(fake_discord, services, record)

    assert len(simulator.submits) == 1 == simulator.submit_attempts


# --- 5xx --------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["status", "result"])
@pytest.mark.parametrize(
    ("status", "body"),
    [(500, {"error": "Internal server error"}), (502, HTML_BAD_GATEWAY), (504, "Gateway Timeout")],
    ids=["500", "502", "504"],
)
async def test_5xx_on_status_or_result_is_retried_and_the_clip_arrives(
    route, status, body, bot, fake_discord, services, simulator
):
    simulator.inject(route, status=status, body=body, times=2)
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    await delivered(fake_discord, services, record)

    assert len(simulator.submits) == 1 == simulator.submit_attempts
    assert len(simulator.calls_to(route)) >= 3


@pytest.mark.parametrize("settings_overrides", [{"job_deadline_seconds": 0.6}], ids=["0.6s"])
async def test_lasting_5xx_on_status_ends_at_the_job_deadline(
    settings_overrides, bot, fake_discord, services, simulator
):
    simulator.inject("status", status=502, body=HTML_BAD_GATEWAY, times=100_000)
    loop = asyncio.get_running_loop()
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))
    started = loop.time()

    why = await failed(fake_discord, services, record, JobState.FAILED)

    assert why == DeadlineExceeded.user_message
    deadline = services.settings.job_deadline_seconds
    assert deadline <= loop.time() - started < deadline + 2.0
    assert len(simulator.submits) == 1 == simulator.submit_attempts


# --- lost connections and slow answers -------------------------------------------------


@pytest.mark.parametrize("route", ["status", "result", "download"])
async def test_a_reset_connection_is_retried_and_the_clip_arrives(
    route, bot, fake_discord, services, simulator
):
    simulator.reset_connection(route, times=2)
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    await delivered(fake_discord, services, record)

    assert len(simulator.submits) == 1 == simulator.submit_attempts
    assert len(simulator.calls_to(route)) >= 2


async def test_a_download_that_keeps_failing_ends_clearly_after_bounded_retries(
    bot, fake_discord, services, simulator, caplog
):
    simulator.inject("download", status=503, body="<Error>SlowDown</Error>", times=1000)
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    why = await failed(fake_discord, services, record, JobState.FAILED)

    assert why == DownloadFailed.user_message  # made and paid for: not "try again later"
    assert len(simulator.calls_to("download")) == DOWNLOAD_ATTEMPTS
    assert logged(caplog, "download failed", logging.WARNING) == DOWNLOAD_ATTEMPTS - 1
    assert len(simulator.submits) == 1 == simulator.submit_attempts


@pytest.mark.parametrize(
    ("fault", "accepted"),
    [("reset", False), ("reset", True), ("hang", True)],
    ids=["reset-before-accepting", "reset-after-accepting", "no-answer-after-accepting"],
)
async def test_a_submit_whose_answer_is_lost_is_never_sent_again(
    fault, accepted, bot, fake_discord, services, simulator
):
    if fault == "reset":
        simulator.reset_connection("submit", accept=accepted)
    else:
        simulator.hang("submit", accept=accepted)  # the bot gives up after its 0.5 s timeout
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    why = await failed(fake_discord, services, record, JobState.UNKNOWN)

    assert why == SubmitOutcomeUnknown.user_message
    assert simulator.submit_attempts == 1
    assert len(simulator.submits) == int(accepted)


@pytest.mark.parametrize("route", ["submit", "status", "result", "download"])
async def test_a_slow_answer_within_the_timeout_is_waited_for(
    route, bot, fake_discord, services, simulator
):
    simulator.slow(route, seconds=RETRY_POLICY.request_timeout / 2, times=2)
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    await delivered(fake_discord, services, record)

    assert len(simulator.submits) == 1 == simulator.submit_attempts


@pytest.mark.parametrize("route", ["status", "result"])
async def test_an_answer_slower_than_the_timeout_is_abandoned_and_asked_again(
    route, bot, fake_discord, services, simulator
):
    simulator.hang(route)
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    await delivered(fake_discord, services, record)

    assert len(simulator.submits) == 1 == simulator.submit_attempts
    assert len(simulator.calls_to(route)) >= 2


# --- malformed answers -----------------------------------------------------------------


@pytest.mark.parametrize("route", ["status", "result"])
async def test_a_few_malformed_answers_are_retried_and_the_clip_arrives(
    route, bot, fake_discord, services, simulator
):
    simulator.inject(route, status=200, body='{"status": "COMPL', times=2)
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    await delivered(fake_discord, services, record)

    assert len(simulator.submits) == 1 == simulator.submit_attempts


async def test_persistently_malformed_status_ends_clearly(bot, fake_discord, services, simulator):
    simulator.inject("status", status=200, body="<html>maintenance</html>", times=1000)
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    why = await failed(fake_discord, services, record, JobState.FAILED)

    assert why == SegmindError.user_message
    assert len(simulator.submits) == 1 == simulator.submit_attempts
    assert len(simulator.calls_to("status")) == 4  # the first answer and three retries


async def test_a_malformed_submit_answer_is_never_sent_again(
    bot, fake_discord, services, simulator
):
    simulator.inject("submit", status=200, body='{"request_id": ', accept=True)
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    why = await failed(fake_discord, services, record, JobState.UNKNOWN)

    assert why == SubmitOutcomeUnknown.user_message
    assert len(simulator.submits) == 1 == simulator.submit_attempts


# --- 404 on a known request id ---------------------------------------------------------


async def test_a_request_segmind_forgot_ends_as_expired(bot, fake_discord, services, simulator):
    simulator.config.queue_seconds = 30  # still queued when Segmind forgets it
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))
    await wait_for_status(fake_discord, record.original_message_id, "Queued at Segmind")
    request_id = (await services.storage.jobs.get(1)).request_id
    simulator.expire(request_id)

    why = await failed(fake_discord, services, record, JobState.EXPIRED)

    assert why == SegmindRequestExpired.user_message
    assert len(simulator.submits) == 1 == simulator.submit_attempts


async def test_a_lasting_404_on_the_result_ends_as_expired(bot, fake_discord, services, simulator):
    simulator.inject(
        "result", status=404, body={"error": "Request not found or expired"}, times=1000
    )
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    why = await failed(fake_discord, services, record, JobState.EXPIRED)

    assert why == SegmindRequestExpired.user_message  # minutes old: not "kept one hour"
    assert len(simulator.calls_to("result")) == _NOT_FOUND_RETRIES + 1, "asked again, briefly"
    assert len(simulator.submits) == 1 == simulator.submit_attempts


async def test_a_single_404_on_the_result_is_asked_again_and_the_clip_arrives(
    bot, fake_discord, services, simulator
):
    simulator.inject("result", status=404, body={"error": "Request not found or expired"})
    record = await request_video(fake_discord, fake_discord.world.member_named("alice"))

    await delivered(fake_discord, services, record)

    assert len(simulator.submits) == 1 == simulator.submit_attempts


# --- 406: out of credits ---------------------------------------------------------------


async def refused_privately(fake, user) -> str:
    record = await fake.dispatch_slash_command("video", {"prompt": "a cat"}, user=user)
    await fake.wait_for_ack(record)
    answer = fake.message(record.original_message_id)
    assert answer.ephemeral and answer.visible_to == {user.id}
    return answer.content


async def test_out_of_credits_tells_moderators_and_refuses_until_a_check_succeeds(
    bot, fake_discord, services, simulator, clock
):
    world = fake_discord.world
    alice = world.member_named("alice")
    simulator.inject("submit", status=406, body={"error": "Insufficient credits"})
    first = await request_video(fake_discord, alice)

    why = await failed(fake_discord, services, first, JobState.FAILED)
    assert why == CREDITS_REFUSAL
    alerts = await fake_discord.wait_until(lambda: fake_discord.dm_messages(world.owner))
    assert "out of credits" in alerts[0].content

    refusal = await refused_privately(fake_discord, alice)
    assert CREDITS_REFUSAL in refusal and "<t:" in refusal  # says when to try again
    assert simulator.submit_attempts == 1, "nothing is sent while credits are out"

    clock.jump(services.settings.credits_recheck_seconds + 1)
    check = await request_video(fake_discord, alice, "a cat, once credits are back")
    await fake_discord.wait_for_message(
        check.channel_id, lambda m: m.attachments and m.id > check.original_message_id, timeout=10
    )
    after = await request_video(fake_discord, alice, "and another")
    await fake_discord.wait_for_message(
        after.channel_id, lambda m: m.attachments and m.id > after.original_message_id, timeout=10
    )
    assert simulator.submit_attempts == 3 and len(simulator.submits) == 2
    assert len(fake_discord.dm_messages(world.owner)) == 1


async def test_a_failed_credit_check_keeps_refusing_without_telling_moderators_again(
    bot, fake_discord, services, simulator, clock, caplog
):
    world = fake_discord.world
    alice = world.member_named("alice")
    simulator.inject("submit", status=406, body={"error": "Insufficient credits"}, times=2)
    first = await request_video(fake_discord, alice)
    await failed(fake_discord, services, first, JobState.FAILED)
    await fake_discord.wait_until(lambda: fake_discord.dm_messages(world.owner))

    clock.jump(services.settings.credits_recheck_seconds + 1)
    check = await request_video(fake_discord, alice, "is there money yet?")
    await fake_discord.wait_until(
        lambda: fake_discord.message(check.original_message_id).embeds[0]["title"] == FAILED
    )
    await job_when_idle(services, job_id=2)

    assert CREDITS_REFUSAL in await refused_privately(fake_discord, alice)
    assert simulator.submit_attempts == 2 and simulator.submits == []
    assert len(fake_discord.dm_messages(world.owner)) == 1, "moderators are told once"
    assert logged(caplog, "needs the operator", logging.ERROR) == 1


# --- 401: the key was rejected ------------------------------------------------------------


async def test_a_rejected_key_tells_moderators_and_later_requests_are_refused_privately(
    bot, fake_discord, services, simulator
):
    world = fake_discord.world
    alice = world.member_named("alice")
    simulator.inject("submit", status=401, body={"error": "Invalid API key"}, times=100)
    first = await request_video(fake_discord, alice)

    why = await failed(fake_discord, services, first, JobState.FAILED)
    assert why == ConfigurationError.user_message
    alerts = await fake_discord.wait_until(lambda: fake_discord.dm_messages(world.owner))
    assert "SEGMIND_API_KEY" in alerts[0].content and "Error" not in alerts[0].content

    refusal = await refused_privately(fake_discord, alice)
    assert ConfigurationError.user_message in refusal
    assert simulator.submit_attempts == 1, "nothing more is sent while the key is refused"
    assert len(fake_discord.dm_messages(world.owner)) == 1  # told once, not per request
