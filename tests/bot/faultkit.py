"""Fixtures and helpers for the fault-injection scenarios (Discord faults, Segmind faults).

The real bot runs against the fake Discord and the simulator on the real clock, with every
delay shortened through the seams production also uses (``open_services``' retry policy and
runner configuration, the bot's ``Timings``), so a fault's whole story takes well under a
second. ``clock`` is the real clock plus a jump a test can make: it plays an interaction
token's age, or a credit recheck falling due, without waiting for it.

Import the fixtures into a test module (they override tests/bot/conftest.py's ``services``
and ``bot_timings``; the simulator is the conftest's, queue 0.05 s and processing 0.1 s):

    from tests.bot.faultkit import bot_timings, clock, env_overrides, services  # noqa: F401

A test changes a setting by parametrizing ``env_overrides`` (as an operator would write it) or,
for a value below an operator's floor (a deadline of a second), ``settings_overrides``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from cogs.videobot import Timings
from services.app import Services, open_services, runner_config
from services.backoff import Backoff
from services.clock import SystemClock
from services.segmind import RetryPolicy
from services.simulator import SegmindSimulator
from tests.bot.conftest import fast_settings
from tests.fakediscord import FakeDiscord, FakeMember, InteractionRecord, StoredMessage

# Every wait below returns as soon as its condition holds; this only bounds a broken run.
TIMEOUT = 10.0
# Milliseconds instead of seconds; the shape (backoff, give up) is production's.
RETRY_POLICY = RetryPolicy(base_delay=0.01, max_delay=0.05, request_timeout=0.5)
QUICK = Backoff(base=0.01, cap=0.02)
DELIVERY_ATTEMPTS = 3
DOWNLOAD_ATTEMPTS = 3

# Titles of the job messages (cogs/video/render.py), as members read them.
FINISHED = "Video finished"
FAILED = "This video could not be made"


class JumpingClock(SystemClock):
    """The real clock plus an offset a test moves forward (``jump``); sleeps stay real."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return super().time() + self.offset

    def monotonic(self) -> float:
        return super().monotonic() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> JumpingClock:
    return JumpingClock()


@pytest.fixture
def env_overrides() -> dict[str, str]:
    """Extra .env entries; a test parametrizes this name to change a setting."""
    return {}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Settings fields to replace after loading; a test parametrizes this name."""
    return {}


@pytest.fixture
def bot_timings() -> Timings:
    """Progress edits every 50 ms instead of 5 s, so a fault on an edit shows at once."""
    return Timings(progress_edit_interval=0.05)


@pytest.fixture
async def services(
    bot_env: dict[str, str],
    env_overrides: dict[str, str],
    settings_overrides: dict[str, Any],
    simulator: SegmindSimulator,
    clock: JumpingClock,
) -> AsyncIterator[Services]:
    settings = replace(fast_settings({**bot_env, **env_overrides}), **settings_overrides)
    runner = replace(
        runner_config(settings),
        delivery_attempts=DELIVERY_ATTEMPTS,
        delivery_backoff=QUICK,
        download_attempts=DOWNLOAD_ATTEMPTS,
        download_backoff=QUICK,
        submit_backoff=Backoff(base=0.01, cap=0.01),
    )
    async with open_services(
        settings,
        clock=clock,
        segmind_base_url=simulator.base_url,
        retry_policy=RETRY_POLICY,
        runner=runner,
    ) as opened:
        yield opened


# --- driving and reading ---------------------------------------------------------------


async def request_video(
    fake: FakeDiscord, user: FakeMember, prompt: str = "a red fox in the snow", **options: Any
) -> InteractionRecord:
    """``/video`` as ``user`` types it; returns once Discord has the bot's acknowledgement."""
    record = await fake.dispatch_slash_command("video", {"prompt": prompt, **options}, user=user)
    return await fake.wait_for_ack(record)


def title(message: StoredMessage) -> str | None:
    return message.embeds[0].get("title") if message.embeds else None


def field(message: StoredMessage, name: str) -> str:
    for item in message.embeds[0].get("fields", []) if message.embeds else []:
        if item.get("name") == name:
            return str(item.get("value"))
    return ""


async def wait_for_clip(fake: FakeDiscord, channel_id: int) -> StoredMessage:
    return await fake.wait_for_message(channel_id, lambda m: bool(m.attachments), timeout=TIMEOUT)


async def wait_for_title(fake: FakeDiscord, channel_id: int, wanted: str) -> StoredMessage:
    """The first message everyone sees in the channel whose embed is titled ``wanted``."""
    return await fake.wait_for_message(channel_id, lambda m: title(m) == wanted, timeout=TIMEOUT)


async def wait_for_status(fake: FakeDiscord, message_id: int, status: str) -> StoredMessage:
    """The progress message, once its Progress field shows ``status``."""
    message = fake.message(message_id)
    await fake.wait_until(lambda: status in field(message, "Progress"), TIMEOUT)
    return message


async def job_when_idle(services: Services, job_id: int = 1) -> Any:
    """The stored job once the runner has nothing left to do (call after an outcome showed)."""
    await asyncio.wait_for(services.runner.wait_idle(), TIMEOUT)
    return await services.storage.jobs.get(job_id)


def bot_member(fake: FakeDiscord) -> FakeMember:
    member = fake.world.guild.member(fake.world.bot.id)
    assert member is not None
    return member


def logged(caplog: pytest.LogCaptureFixture, text: str, level: int = logging.DEBUG) -> int:
    """How many captured log records at ``level`` or above contain ``text``."""
    return sum(
        1 for record in caplog.records if record.levelno >= level and text in record.getMessage()
    )
