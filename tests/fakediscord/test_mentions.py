"""Who gets pinged, by Discord's allowed-mentions and permission rules."""

from __future__ import annotations

import pytest

from tests.fakediscord import DiscordError, FakeWorld, Perm
from tests.fakediscord.mentions import resolve, validate_allowed_mentions


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld.default()


def pings(world: FakeWorld, content: str, allowed: dict | None, **kw) -> frozenset[int]:
    guild = world.guild
    return resolve(
        content, allowed, guild=guild, channel=guild.channels[0], author_id=world.bot.id, **kw
    ).pinged_user_ids


def test_absent_allowed_mentions_parses_everything(world: FakeWorld):
    alice = world.member_named("alice")
    assert pings(world, f"hi {alice.mention}", None) == {alice.id}


def test_everyone_needs_the_mention_everyone_permission(world: FakeWorld):
    assert pings(world, "@everyone", None) == frozenset()
    world.guild.roles[1].permissions |= Perm.MENTION_EVERYONE  # the bot's role
    everyone_but_bot = {m.id for m in world.guild.members} - {world.bot.id}
    assert pings(world, "@everyone", None) == everyone_but_bot
    assert pings(world, "@everyone", {"parse": []}) == frozenset()


def test_role_pings_need_a_mentionable_role_or_mention_everyone(world: FakeWorld):
    moderator = world.guild.roles[2]
    mod = world.member_named("mod")
    assert pings(world, moderator.mention, {"parse": ["roles"]}) == frozenset()
    moderator.mentionable = True
    assert pings(world, moderator.mention, {"parse": ["roles"]}) == {mod.id}
    assert pings(world, moderator.mention, {"parse": [], "roles": [str(moderator.id)]}) == {mod.id}


def test_explicit_user_list_limits_pings(world: FakeWorld):
    alice, mod = world.member_named("alice"), world.member_named("mod")
    content = f"{alice.mention} {mod.mention}"
    assert pings(world, content, {"parse": [], "users": [str(alice.id)]}) == {alice.id}


def test_members_who_cannot_see_the_channel_are_not_notified(world: FakeWorld):
    alice = world.member_named("alice")
    world.guild.channels[0].deny(alice, Perm.VIEW_CHANNEL)
    assert pings(world, alice.mention, None) == frozenset()


def test_ephemeral_messages_only_notify_their_viewer(world: FakeWorld):
    alice, mod = world.member_named("alice"), world.member_named("mod")
    content = f"{alice.mention} {mod.mention}"
    assert pings(world, content, None, visible_to=frozenset({alice.id})) == {alice.id}


def test_replies_ping_their_author_unless_allowed_mentions_says_otherwise(world: FakeWorld):
    alice = world.member_named("alice")
    assert pings(world, "done", None, replied_author_id=alice.id) == {alice.id}
    assert pings(world, "done", {"parse": []}, replied_author_id=alice.id) == frozenset()
    assert pings(
        world, "done", {"parse": [], "replied_user": True}, replied_author_id=alice.id
    ) == {alice.id}


def test_parse_users_and_a_users_list_together_is_a_400():
    with pytest.raises(DiscordError) as bad:
        validate_allowed_mentions({"parse": ["users"], "users": ["1"]})
    assert (bad.value.status, bad.value.code) == (400, 50035)
