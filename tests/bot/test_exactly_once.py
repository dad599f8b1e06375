"""A paid clip is posted once on every route, even when Discord's answer is lost or the bot
dies between Discord storing the clip and the bot recording it."""

from __future__ import annotations

from services.models import JobState
from services.simulator import SegmindSimulator
from tests.bot.helpers import crash_after_post, running_bot, video, wait_for_clip, wait_idle
from tests.fakediscord import FakeDiscord, Fault


async def test_a_crash_after_discord_stored_the_clip_does_not_post_it_again(
    fake_discord: FakeDiscord, bot_env, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    async with running_bot(bot_env, simulator, fake_discord) as bot:
        record = await video(fake_discord, alice, {"prompt": "a moth at a lamp"})
        clip = await wait_for_clip(fake_discord, record.channel_id)
        await wait_idle(bot.services.runner)
        await crash_after_post(bot)

    async with running_bot(bot_env, simulator, fake_discord) as bot:
        await wait_idle(bot.services.runner)
        job = await bot.services.storage.jobs.get(1)

    uploads = [c for c in fake_discord.calls_to("POST /channels/*/messages") if c.files]
    assert len(uploads) == 1  # the restart looked, found its own message and did not post
    assert job is not None and job.state is JobState.DELIVERED
    assert job.result_message_id == clip.id
    assert [m.id for m in fake_discord.channel_messages(clip.channel_id) if m.attachments] == [
        clip.id
    ]


async def test_a_private_clip_whose_answer_was_lost_is_shown_once(
    bot, fake_discord: FakeDiscord, services
):
    alice = fake_discord.world.member_named("alice")
    # Discord applies the edit that turns the progress into the clip, then answers 503.
    fake_discord.inject(
        Fault.server_error("PATCH /webhooks/*/*/messages/*", status=503, after_apply=True)
    )
    record = await video(fake_discord, alice, {"prompt": "a locked diary", "private": True})
    clip = await wait_for_clip(fake_discord, record.channel_id, viewer=alice)
    await fake_discord.wait_until(
        lambda: (
            len([c for c in fake_discord.calls_to("PATCH /webhooks/*/*/messages/*") if c.files])
            >= 2
        )
    )

    seen = fake_discord.channel_messages(record.channel_id, viewer=alice)
    assert [m.id for m in seen if m.attachments] == [clip.id] == [record.original_message_id]
    assert clip.pinged_user_ids == frozenset()  # an edit never pings
