"""The shortest whole-bot path: /video in, clip out, through real discord.py."""

from tests.bot.conftest import SAMPLE


async def test_video_is_acknowledged_then_delivered_pinging_only_the_requester(
    bot, fake_discord, simulator
):
    alice = fake_discord.world.member_named("alice")
    record = await fake_discord.dispatch_slash_command(
        "video", {"prompt": "a red fox", "seed": 7}, user=alice
    )
    await fake_discord.wait_for_ack(record)
    clip = await fake_discord.wait_for_message(
        record.channel_id, lambda m: m.attachments, timeout=10
    )
    assert clip.attachments[0].data == SAMPLE
    assert clip.pinged_user_ids == {alice.id}
    assert clip.embeds[0]["fields"][0] == {"inline": True, "name": "Seed", "value": "`7`"}
    progress = fake_discord.message(record.original_message_id)
    await fake_discord.wait_until(lambda: progress.embeds[0]["title"] == "Video finished")
    assert len(simulator.submits) == 1 and simulator.submits[0]["seed"] == 7
