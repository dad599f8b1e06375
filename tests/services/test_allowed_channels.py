"""The channel allow-list on each engine: where /video works, cached, audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.allowed_channels import (
    MOST_CHANNELS,
    AllowedChannels,
    ChannelNotAllowed,
)
from services.errors import RefusedError, ValidationError
from services.storage import Storage
from tests.fakeclock import FakeClock

GUILD = 111
OTHER_GUILD = 222
MOD = 9
GENERAL, ART, THREAD = 1001, 1002, 1003


@pytest.fixture
async def storage(database_location: Path | str) -> AsyncIterator[Storage]:
    store = await Storage.open(database_location)
    yield store
    await store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def channels(storage: Storage, clock: FakeClock) -> AllowedChannels:
    return AllowedChannels(storage, clock)


async def test_with_no_channel_listed_video_works_everywhere(channels: AllowedChannels) -> None:
    await channels.check(GUILD, GENERAL, None)
    await channels.check(GUILD, THREAD, GENERAL)


async def test_a_listed_channel_and_its_threads_are_allowed_and_nowhere_else(
    channels: AllowedChannels,
) -> None:
    await channels.add(GUILD, ART, actor_id=MOD)

    await channels.check(GUILD, ART, None)
    await channels.check(GUILD, THREAD, ART)  # a thread of #art
    with pytest.raises(ChannelNotAllowed) as refused:
        await channels.check(GUILD, GENERAL, None)
    assert isinstance(refused.value, RefusedError)
    # The service hands the cog the channels as data; it writes no Discord markup itself.
    assert refused.value.channel_ids == (ART,)
    assert "<#" not in refused.value.user_message
    with pytest.raises(ChannelNotAllowed):
        await channels.check(GUILD, THREAD, GENERAL)  # a thread of another channel
    await channels.check(OTHER_GUILD, GENERAL, None)  # each server has its own list


async def test_removing_the_last_channel_lets_video_work_everywhere_again(
    channels: AllowedChannels,
) -> None:
    await channels.add(GUILD, ART, actor_id=MOD)
    with pytest.raises(ChannelNotAllowed):
        await channels.check(GUILD, GENERAL, None)

    change = await channels.remove(GUILD, ART, actor_id=MOD)

    assert change.changed and change.listed == 0
    await channels.check(GUILD, GENERAL, None)


async def test_adding_twice_or_removing_an_unlisted_channel_changes_nothing(
    channels: AllowedChannels, storage: Storage
) -> None:
    first = await channels.add(GUILD, ART, actor_id=MOD)
    again = await channels.add(GUILD, ART, actor_id=MOD)
    absent = await channels.remove(GUILD, GENERAL, actor_id=MOD)

    assert (first.changed, first.listed) == (True, 1)
    assert (again.changed, again.listed) == (False, 1)
    assert (absent.changed, absent.listed) == (False, 1)
    assert len(await storage.limits.audit_log(GUILD)) == 1  # only the real change


async def test_every_change_is_in_the_audit_log_with_who_and_what(
    channels: AllowedChannels, storage: Storage
) -> None:
    await channels.add(GUILD, ART, actor_id=MOD)
    await channels.add(GUILD, GENERAL, actor_id=MOD)
    await channels.remove(GUILD, ART, actor_id=MOD, why="deleted")

    entries = await storage.limits.audit_log(GUILD)

    assert [(e.action, e.target, e.detail, e.actor_id) for e in entries] == [
        ("disallow_channel", f"channel:{ART}", "listed=1; deleted", MOD),
        ("allow_channel", f"channel:{GENERAL}", "listed=2", MOD),
        ("allow_channel", f"channel:{ART}", "listed=1", MOD),
    ]


async def test_the_list_is_read_once_and_again_only_after_a_change(
    channels: AllowedChannels, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = 0
    real_list = storage.channels.list

    async def counted(guild_id: int):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        return await real_list(guild_id)

    monkeypatch.setattr(storage.channels, "list", counted)
    await channels.add(GUILD, ART, actor_id=MOD)
    for _ in range(5):
        await channels.check(GUILD, ART, None)
    assert reads == 1

    await channels.add(GUILD, GENERAL, actor_id=MOD)
    await channels.check(GUILD, GENERAL, None)  # seen at once: the cache was dropped
    assert reads == 2


async def test_a_change_made_by_another_instance_is_not_seen_until_its_own_change(
    storage: Storage,
) -> None:
    """Documents the cache's scope: a server's changes are all made by one process, the one
    running its shard (its interactions and channel events reach no other)."""
    mine = AllowedChannels(storage, FakeClock())
    await mine.check(GUILD, GENERAL, None)  # caches "nothing listed"
    await AllowedChannels(storage, FakeClock()).add(GUILD, ART, actor_id=MOD)
    await mine.check(GUILD, GENERAL, None)
    await mine.add(GUILD, ART, actor_id=MOD)  # any change here re-reads
    with pytest.raises(ChannelNotAllowed):
        await mine.check(GUILD, GENERAL, None)


async def test_the_list_has_a_ceiling_and_a_full_list_refuses_clearly(
    channels: AllowedChannels,
) -> None:
    for channel_id in range(MOST_CHANNELS):
        await channels.add(GUILD, 5000 + channel_id, actor_id=MOD)

    with pytest.raises(ValidationError, match="already lists"):
        await channels.add(GUILD, ART, actor_id=MOD)
    again = await channels.add(GUILD, 5000, actor_id=MOD)  # already listed: no refusal
    assert not again.changed


async def test_listed_channels_say_who_added_them_oldest_first(
    channels: AllowedChannels, clock: FakeClock
) -> None:
    await channels.add(GUILD, ART, actor_id=MOD)
    clock.advance(60)
    await channels.add(GUILD, GENERAL, actor_id=MOD + 1)

    listed = await channels.listed(GUILD)

    assert [(c.channel_id, c.added_by) for c in listed] == [(ART, MOD), (GENERAL, MOD + 1)]
