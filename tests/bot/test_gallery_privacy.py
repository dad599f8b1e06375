"""The gallery shows a clip to the whole server: never one made where not everyone may look."""

from __future__ import annotations

import pytest

from tests.bot.helpers import TIMEOUT, video, wait_for_clip, wait_idle
from tests.bot.test_gallery import gallery_posts, publish, set_gallery, showcase
from tests.fakediscord import FakeDiscord, FakeWorld, Perm


@pytest.fixture
def fake_world() -> FakeWorld:
    """#showcase for the gallery, and #staff that bob may not see."""
    world = FakeWorld.default()
    world.guild.add_text_channel("showcase")
    staff = world.guild.add_text_channel("staff")
    staff.deny(world.guild.add_member("bob"), Perm.VIEW_CHANNEL)
    return world


async def staff_clip(fake: FakeDiscord, prompt: str):
    alice = fake.world.member_named("alice")
    staff = next(c for c in fake.world.guild.channels if c.name == "staff")
    record = await video(fake, alice, {"prompt": prompt, "seed": 7}, channel=staff)
    return await wait_for_clip(fake, record.channel_id, viewer=alice)


async def test_auto_mode_leaves_out_a_clip_from_a_channel_some_cannot_see(
    bot, fake_discord: FakeDiscord, services
):
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord), mode="auto")

    await staff_clip(fake_discord, "the staff-only plan")
    await wait_idle(services.runner)
    await fake_discord.wait_until(lambda: len(bot.background) == 0, TIMEOUT)

    assert gallery_posts(fake_discord) == []


async def test_publish_refuses_a_clip_from_a_channel_some_cannot_see(
    bot, fake_discord: FakeDiscord
):
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord))
    clip = await staff_clip(fake_discord, "the staff-only plan")

    answer = await publish(fake_discord, clip, mod)

    assert "not everyone can see" in answer.content and answer.ephemeral
    assert "staff-only plan" not in answer.content
    assert gallery_posts(fake_discord) == []
