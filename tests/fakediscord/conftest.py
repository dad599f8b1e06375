"""Fixtures for the fake's own tests (other packages import them the same way)."""

from tests.fakediscord.fixtures import fake_discord, fake_world  # noqa: F401
