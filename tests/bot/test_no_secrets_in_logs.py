"""A whole /video at LOG_LEVEL=DEBUG: no log record holds an interaction token, bot token or key.

Logging is set up as bot.py sets it up (``configure_logging`` then ``logsafety.install``),
before the bot logs in, and every record of every logger is captured at DEBUG from the
start of the run to the end of its shutdown: discord.py's gateway and HTTP, aiosqlite,
aiohttp, the services and the cogs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from services import logsafety
from services.settings import configure_logging
from tests.bot.conftest import SAMPLE
from tests.bot.helpers import video, wait_for_clip, wait_idle
from tests.fakediscord import FakeDiscord, InteractionRecord

Phase = str
PHASES: tuple[Phase, ...] = ("setup", "call", "teardown")


def leaks(
    caplog: pytest.LogCaptureFixture, secrets: list[str], phases: tuple[Phase, ...]
) -> list[str]:
    """Every formatted record (message, traceback, stack) of ``phases`` that holds a secret."""
    found = []
    for phase in phases:
        for record in caplog.get_records(phase):  # type: ignore[arg-type]
            text = caplog.handler.format(record) + (record.exc_text or "")
            found += [f"{record.name}: {text[:300]}" for secret in secrets if secret in text]
    return found


@pytest.fixture
def secrets_seen() -> list[str]:
    """The secrets of this run; the test adds each interaction's token as it dispatches it."""
    return []


@pytest.fixture(autouse=True)
def debug_logging(
    caplog: pytest.LogCaptureFixture,
    fake_world,
    segmind_api_key: str,
    secrets_seen: list[str],
) -> Iterator[None]:
    """LOG_LEVEL=DEBUG as bot.py applies it, before the bot starts; undone after shutdown."""
    caplog.set_level(logging.DEBUG)
    levels = {name: logging.getLogger(name).level for name in logsafety.PAYLOAD_LOGGERS}
    configure_logging("DEBUG")
    redactor = logsafety.install([fake_world.token, segmind_api_key])
    filtered = [h for h in logging.getLogger().handlers if redactor in h.filters]
    secrets_seen += [fake_world.token, segmind_api_key]
    yield
    try:
        # Shutdown logs too: every other fixture has been torn down by now.
        assert leaks(caplog, secrets_seen, ("teardown",)) == []
    finally:
        for handler in filtered:
            handler.removeFilter(redactor)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


async def test_a_whole_clip_at_debug_level_logs_no_token_and_no_key(
    bot, fake_discord: FakeDiscord, services, caplog: pytest.LogCaptureFixture, secrets_seen
):
    alice = fake_discord.world.member_named("alice")
    record: InteractionRecord = await video(
        fake_discord, alice, {"prompt": "a lantern on a night river", "seed": 5}
    )
    secrets_seen.append(record.token)

    clip = await wait_for_clip(fake_discord, record.channel_id)
    await wait_idle(services.runner)

    assert [a.data for a in clip.attachments] == [SAMPLE]
    everything = [r for phase in PHASES[:2] for r in caplog.get_records(phase)]  # type: ignore[arg-type]
    messages = [r.getMessage() for r in everything]
    # The run was logged at DEBUG, by discord.py and by the bot: there was something to leak.
    assert any(r.name.startswith("discord.") and r.levelno == logging.DEBUG for r in everything)
    assert any(r.name.startswith("services.") for r in everything)
    # discord.py's webhook log names the interaction's callback route, the token blanked.
    assert any(f"/interactions/{record.id}/{logsafety.REDACTED}/callback" in m for m in messages)
    assert leaks(caplog, secrets_seen, PHASES[:2]) == []
    # aiosqlite's statement dumps (the token is a parameter when the job is stored) stay off.
    assert not any(r.name == "aiosqlite" and r.levelno < logging.INFO for r in everything)
