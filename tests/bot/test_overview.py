"""`/videolimit show` over the wire: blocklist, channels and approval in the whole picture."""

from __future__ import annotations

import pytest

from cogs.videobot import VideoBot
from tests.bot.test_moderation import only_for, videolimit
from tests.fakediscord import FakeDiscord, StoredMessage
from tests.fakediscord.world import FakeWorld


@pytest.fixture
def fake_world() -> FakeWorld:
    world = FakeWorld.default()
    world.guild.add_text_channel("art")
    world.guild.add_text_channel("mods")
    world.guild.add_role("Trusted")
    return world


def text(message: StoredMessage) -> str:
    return "\n".join(str(embed.get("description", "")) for embed in message.embeds)


async def test_the_overview_shows_blocklist_channels_and_approval_without_the_terms(
    bot: VideoBot, fake_discord: FakeDiscord
) -> None:
    guild = fake_discord.world.guild
    world = fake_discord.world
    mod, alice = world.member_named("mod"), world.member_named("alice")
    art = next(c for c in guild.channels if c.name == "art")
    mods = next(c for c in guild.channels if c.name == "mods")
    trusted = next(r for r in guild.roles if r.name == "Trusted")

    before = await videolimit(fake_discord, "show", {}, mod)
    assert only_for(before, mod) and not before.pinged_user_ids
    assert "**Blocklist:** none" in text(before)
    assert "**Where /video works:** everywhere" in text(before)
    assert "**Approval:** off" in text(before)

    await videolimit(fake_discord, "blocklist add", {"term": "dragon"}, mod)
    await videolimit(fake_discord, "blocklist add", {"term": "/cas+tle/"}, mod)
    await videolimit(fake_discord, "channels add", {"channel": art}, mod)
    await videolimit(fake_discord, "alerts", {"channel": mods}, mod)
    await videolimit(
        fake_discord, "approval", {"mode": "required", "role": trusted, "expires": "2h"}, mod
    )
    after = await videolimit(fake_discord, "show", {}, mod)

    assert only_for(after, mod) and not after.pinged_user_ids
    shown = text(after)
    assert "**Blocklist:** 2 terms (see `/videolimit blocklist show`)" in shown
    assert "dragon" not in shown and "cas+tle" not in shown
    assert f"**Where /video works:** <#{art.id}>, and their threads" in shown
    assert (
        f"**Approval:** required for members without <@&{trusted.id}>, requests wait up to 2h"
        in shown
    )

    # A member the server shows the command to is still refused, and sees none of it.
    refused = await videolimit(fake_discord, "show", {}, alice, bypass_permissions=True)
    assert only_for(refused, alice)
    assert "Only moderators can use `/videolimit`" in refused.content
    assert not refused.embeds
