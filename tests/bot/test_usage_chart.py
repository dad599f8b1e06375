"""`/videolimit usage` over the wire: the text and a chart of the clips members really made."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from PIL import Image

from cogs.words import format_usd
from services import usage_chart
from services.app import Services
from services.usage_chart import HEIGHT_PX, WIDTH_PX
from tests.bot.helpers import answer, embed_text, video, wait_for_clip
from tests.fakediscord import FakeDiscord, FakeMember, StoredMessage


async def videolimit(
    fake: FakeDiscord, subcommand: str, options: dict[str, Any], user: FakeMember, **dispatch: Any
) -> StoredMessage:
    """``/videolimit <subcommand>`` as ``user``; the bot's answer once it says something."""
    record = await fake.dispatch_slash_command(
        f"videolimit {subcommand}", options, user=user, **dispatch
    )
    await fake.wait_for_ack(record)
    message = answer(fake, record)
    await fake.wait_until(lambda: not message.loading)
    return message


async def make_clips(fake: FakeDiscord, member: FakeMember, *prompts: str) -> None:
    for prompt in prompts:
        record = await video(fake, member, {"prompt": prompt})
        last = max((m.id for m in fake.channel_messages(record.channel_id)), default=0)
        await wait_for_clip(fake, record.channel_id, after=last)


async def test_a_moderator_s_usage_carries_a_chart_of_the_clips_made(
    bot, fake_discord: FakeDiscord, services: Services
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await make_clips(fake_discord, alice, "a red fox", "a blue heron")
    await make_clips(fake_discord, mod, "a slow tide")

    reply = await videolimit(fake_discord, "usage", {"period": "1d"}, mod)

    assert reply.ephemeral and reply.visible_to == {mod.id} and not reply.pinged_user_ids
    [chart] = reply.attachments
    assert chart.filename == "usage.png"
    image = Image.open(io.BytesIO(chart.data))
    assert (image.format, image.size) == ("PNG", (WIDTH_PX, HEIGHT_PX))
    # The numbers behind the picture are the jobs stored for this server, as the text says.
    jobs = await services.storage.jobs.recent(fake_discord.world.guild.id, limit=10)
    spent = format_usd(sum(job.cost_usd for job in jobs))
    assert len(jobs) == 3
    assert f"**Last day:** 3 clips, {spent}" in embed_text(reply)
    assert chart.description is not None
    assert "per UTC day" in chart.description and f": 3 clips, {spent}." in chart.description
    # The moderator (shown as Mod) came with the command; alice is not in the bot's cache
    # (it has no member list), so the chart names her by her id's end.
    top = chart.description.split("Top members: ", 1)[1]
    alice_spent = format_usd(sum(j.cost_usd for j in jobs if j.user_id == alice.id))
    mod_spent = format_usd(sum(j.cost_usd for j in jobs if j.user_id == mod.id))
    assert top == f"member …{str(alice.id)[-4:]} 2 clips ({alice_spent}); Mod 1 clip ({mod_spent})."
    assert "<@" not in chart.description  # names, never mentions


async def test_one_member_s_usage_charts_only_their_clips(
    bot, fake_discord: FakeDiscord, services: Services
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await make_clips(fake_discord, alice, "a red fox")
    await make_clips(fake_discord, mod, "a slow tide")

    reply = await videolimit(fake_discord, "usage", {"period": "1w", "user": alice}, mod)

    [chart] = reply.attachments
    assert Image.open(io.BytesIO(chart.data)).size == (WIDTH_PX, HEIGHT_PX)
    assert chart.description is not None
    assert "per UTC day for Alice, " in chart.description and ": 1 clip, " in chart.description
    assert "Top members" not in chart.description


async def test_the_text_still_answers_when_the_chart_cannot_be_drawn(
    bot, fake_discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch, caplog
):
    def broken(*args: object) -> bytes:
        raise RuntimeError("no fonts on this host")

    monkeypatch.setattr(usage_chart, "render_usage_png", broken)
    mod = fake_discord.world.member_named("mod")
    with caplog.at_level(logging.ERROR, logger="cogs.limits.usage_chart"):
        reply = await videolimit(fake_discord, "usage", {}, mod)

    assert reply.attachments == []
    assert "**Last week:** 0 clips, $0.00" in embed_text(reply)
    assert any("usage chart could not be drawn" in r.getMessage() for r in caplog.records)


async def test_a_member_cannot_see_usage_or_its_chart(bot, fake_discord: FakeDiscord):
    alice = fake_discord.world.member_named("alice")
    refusal = await videolimit(fake_discord, "usage", {}, alice, bypass_permissions=True)
    assert refusal.ephemeral and refusal.visible_to == {alice.id}
    assert "Only moderators can use `/videolimit`" in refusal.content
    assert refusal.attachments == [] and not refusal.embeds
