"""The per-channel message buckets, as Discord keeps them: off by default, per route and channel."""

from __future__ import annotations

import pytest

from tests.fakediscord import DiscordError
from tests.fakediscord.clock import FakeDiscordClock
from tests.fakediscord.ratelimits import ChannelRateLimits

CREATE = ("POST", "/channels/{channel_id}/messages")
EDIT = ("PATCH", "/channels/{channel_id}/messages/{message_id}")


def test_off_by_default():
    limits = ChannelRateLimits(FakeDiscordClock())
    assert all(limits.take(*CREATE, "1") is None for _ in range(50))


def test_the_sixth_write_in_five_seconds_is_refused_with_discords_headers():
    clock = FakeDiscordClock()
    limits = ChannelRateLimits(clock)
    limits.enable(5, 5.0)
    answers = [limits.take(*CREATE, "1") for _ in range(5)]
    assert [a["X-RateLimit-Remaining"] for a in answers if a] == ["4", "3", "2", "1", "0"]
    with pytest.raises(DiscordError) as refused:
        limits.take(*CREATE, "1")
    error = refused.value
    assert error.status == 429
    assert error.body()["global"] is False and 0 < error.body()["retry_after"] <= 5.0
    assert error.headers["Retry-After"] == "5"
    assert error.headers["X-RateLimit-Scope"] == "user"
    clock.advance(5.0)
    assert limits.take(*CREATE, "1") is not None  # a new window


def test_channels_and_routes_have_their_own_buckets():
    limits = ChannelRateLimits(FakeDiscordClock())
    limits.enable(1, 5.0)
    assert limits.take(*CREATE, "1") is not None
    assert limits.take(*CREATE, "2") is not None
    assert limits.take(*EDIT, "1") is not None
    with pytest.raises(DiscordError):
        limits.take(*EDIT, "1")
    assert limits.refused == 1
