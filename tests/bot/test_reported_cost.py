"""Spend from Segmind's own figures, over the wire: usage, budgets and Details count it."""

from __future__ import annotations

from cogs.videobot import VideoBot
from services.simulator import SegmindSimulator
from tests.bot.helpers import click, video, wait_for_clip
from tests.bot.test_details import details_for
from tests.bot.test_moderation import only_for, settled_answer, videolimit
from tests.fakediscord import FakeDiscord


async def test_a_clip_segmind_prices_differently_counts_at_segminds_figure(
    bot: VideoBot, fake_discord: FakeDiscord, simulator: SegmindSimulator
) -> None:
    simulator.config.reported_cost = 0.5  # the estimate (CLIP_COST_USD) is 0.36
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")

    record = await video(fake_discord, alice, {"prompt": "a heron at dawn"})
    clip = await wait_for_clip(fake_discord, record.channel_id)
    usage = await videolimit(fake_discord, "usage", {}, mod)
    details = await details_for(fake_discord, await click(fake_discord, clip, "details", alice))

    usage_text = "\n".join(e.get("description") or "" for e in usage.embeds)
    assert f"<@{alice.id}>: 1 clip, $0.50" in usage_text
    card = {f["name"]: f["value"] for f in details[0].embeds[0]["fields"]}
    assert card["Cost"] == "$0.50, as Segmind reported it"

    # A monthly cap of $0.75 still has room for a second clip at the estimate
    # (0.36 + 0.36) but not at Segmind's figure (0.50 + 0.36): the budget counts the latter.
    await videolimit(fake_discord, "budget", {"monthly_usd": 0.75}, mod)
    second = await video(fake_discord, alice, {"prompt": "a second heron"})
    refusal = await settled_answer(fake_discord, second)

    assert only_for(refusal, alice)
    assert "($0.75) has $0.25 left" in refusal.content, refusal.content
    assert [s["prompt"] for s in simulator.submits] == ["a heron at dawn"]


async def test_a_cost_that_is_no_price_keeps_the_estimate_and_the_clip_arrives(
    bot: VideoBot, fake_discord: FakeDiscord, simulator: SegmindSimulator
) -> None:
    simulator.config.reported_cost = "free!"
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")

    record = await video(fake_discord, alice, {"prompt": "a heron at dusk"})
    clip = await wait_for_clip(fake_discord, record.channel_id)
    usage = await videolimit(fake_discord, "usage", {}, mod)
    details = await details_for(fake_discord, await click(fake_discord, clip, "details", alice))

    usage_text = "\n".join(e.get("description") or "" for e in usage.embeds)
    assert f"<@{alice.id}>: 1 clip, $0.36" in usage_text
    card = {f["name"]: f["value"] for f in details[0].embeds[0]["fields"]}
    assert card["Cost"] == "$0.36, estimated: Segmind reported no figure"
