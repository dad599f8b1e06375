"""The real bot, built by create_bot as bot.py does, against a fake Discord and the simulator.

``bot`` gives a logged-in, connected, ready bot whose commands were synced to the fake
guild at start (through the same schema-hash logic as production). Scenarios drive it
only through the fake: dispatch an interaction, then read what members see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from cogs.videobot import Timings, VideoBot, create_bot
from services.app import Services, open_services
from services.settings import Settings, load_settings
from tests.fakeclock import FakeClock
from tests.fakediscord import FakeDiscord, running_client

SAMPLE = (Path(__file__).resolve().parents[2] / "services" / "assets" / "sample.mp4").read_bytes()
# Tests poll the loopback simulator far faster than an operator may poll Segmind
# (POLL_INTERVAL_SECONDS has a 0.5 s floor), so that a finished job is seen at once.
TEST_POLL_SECONDS = 0.01


def fast_settings(env: Mapping[str, str]) -> Settings:
    """What load_settings makes of ``env``, polling every TEST_POLL_SECONDS."""
    return replace(load_settings(env), poll_interval_seconds=TEST_POLL_SECONDS)


@pytest.fixture
def bot_env(tmp_path, segmind_api_key, fake_world) -> dict[str, str]:
    """Settings as an operator's .env would hold them; tests may change entries first."""
    return {
        "DISCORD_TOKEN": fake_world.token,
        "SEGMIND_API_KEY": segmind_api_key,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'bot.db'}",
        "DISCORD_GUILD_ID": str(fake_world.guild.id),
        "DEFAULT_LIMIT": "5/1d",
    }


@pytest.fixture
async def services(bot_env, simulator) -> AsyncIterator[Services]:
    async with open_services(fast_settings(bot_env), segmind_base_url=simulator.base_url) as opened:
        yield opened


@pytest.fixture
def bot_timings() -> Timings:
    """The bot's pacing: production's by default; a module overrides it to see edits sooner."""
    return Timings()


@pytest.fixture
def segmind_clock() -> FakeClock:
    """A clock for a module's own simulator: its jobs change state only when a test advances it."""
    return FakeClock()


@pytest.fixture
async def bot(
    fake_discord: FakeDiscord, services: Services, bot_timings: Timings
) -> AsyncIterator[VideoBot]:
    client = create_bot(services, guild_ready_timeout=0.05, timings=bot_timings)
    async with running_client(client, fake_discord):
        yield client
