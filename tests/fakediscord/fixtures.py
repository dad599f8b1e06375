"""pytest fixtures: a started fake with discord.py pointed at it, torn down cleanly.

tests/conftest.py registers this module as a pytest plugin, so every test can ask for them.
Override `fake_world` in a test module to change the world the fake starts with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .fake import FakeDiscord
from .seams import point_discord_py_at
from .world import FakeWorld


@pytest.fixture
def fake_world() -> FakeWorld:
    """The default world: one guild, #general, Moderator role, owner, mod and alice."""
    return FakeWorld.default()


@pytest.fixture
async def fake_discord(fake_world: FakeWorld) -> AsyncIterator[FakeDiscord]:
    """A running FakeDiscord with discord.py's Route.BASE and default gateway aimed at it."""
    fake = FakeDiscord(fake_world)
    await fake.start()
    try:
        with point_discord_py_at(fake):
            yield fake
    finally:
        await fake.stop()
    assert not fake.internal_errors, f"the fake crashed: {fake.internal_errors!r}"
