"""A clip an older version of the bot posted is still recognised after an upgrade.

Clips used to be named ``video-<id>.mp4``; they are now named from the prompt. A job whose
clip the old version posted by DM (where only the file name marks it) and whose post was
never recorded must not be posted again by the new version.
"""

from __future__ import annotations

from services.models import JobState
from services.simulator import SegmindSimulator
from tests.bot.helpers import crash_after_post, running_bot, video, wait_idle
from tests.fakediscord import FakeDiscord, Fault


async def test_a_dm_clip_posted_under_the_old_file_name_is_not_posted_again(
    fake_discord: FakeDiscord, bot_env, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    # Neither the channel nor the interaction takes the clip: it goes to the member's DMs.
    channel = fake_discord.world.guild.channels[0]
    fake_discord.inject(
        Fault.missing_permissions(f"POST /channels/{channel.id}/messages", times=None)
    )
    fake_discord.inject(Fault.missing_permissions("POST /webhooks/*/*", times=None))
    async with running_bot(bot_env, simulator, fake_discord) as bot:
        await video(fake_discord, alice, {"prompt": "a moth at a lamp"})
        await fake_discord.wait_until(
            lambda: any(m.attachments for m in fake_discord.dm_messages(alice))
        )
        await wait_idle(bot.services.runner)
        job = await bot.services.storage.jobs.get(1)
        assert job is not None and job.state is JobState.DELIVERED, job and job.error
        [clip] = [m for m in fake_discord.dm_messages(alice) if m.attachments]
        await crash_after_post(bot)
    # As the version before file names were read from the prompt had named it.
    clip.attachments[0].filename = "video-1.mp4"
    fake_discord.advance(6 * 60)  # past the nonce's few minutes: only the look protects

    async with running_bot(bot_env, simulator, fake_discord) as bot:
        await wait_idle(bot.services.runner)
        job = await bot.services.storage.jobs.get(1)

    assert [m.id for m in fake_discord.dm_messages(alice) if m.attachments] == [clip.id]
    assert job is not None and job.state is JobState.DELIVERED
    assert job.result_message_id == clip.id
