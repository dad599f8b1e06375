# ruff: noqa: F811 - the fixtures imported from tests.bot.faultkit are test arguments here
"""Discord faults and the interaction token's 15 minutes, against the fake Discord.

Each test runs the real bot, makes Discord fail the way it does in production (an expired
token, a deleted message, a permission taken away, 413, 5xx), and checks what the member
sees, that the fault is logged once, and that the bot's calls to Discord stay bounded.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from cogs.discord_errors import TOKEN_LIFETIME
from cogs.video.messenger import JobMessenger
from services.models import Job, JobState, VideoRequest
from tests.bot.conftest import SAMPLE
from tests.bot.faultkit import (  # noqa: F401 - fixtures
    DELIVERY_ATTEMPTS,
    FAILED,
    FINISHED,
    bot_member,
    bot_timings,
    clock,
    env_overrides,
    field,
    job_when_idle,
    logged,
    request_video,
    services,
    settings_overrides,
    title,
    wait_for_clip,
    wait_for_status,
    wait_for_title,
)
from tests.bot.helpers import MAKING, has_button
from tests.fakeclock import FakeClock
from tests.fakediscord import Fault, Perm, payloads

EXPIRED_LOG = "interaction token expired; using channel messages"
CHANNEL_POST = "POST /channels/*/messages"
WEBHOOK_POST = "POST /webhooks/*/*"


@pytest.fixture(autouse=True)
def _capture_logs(caplog):
    caplog.set_level(logging.INFO)


def slow_segmind(simulator, seconds: float = 0.5) -> None:
    """Keep the job at Segmind long enough for the test to act before the clip arrives."""
    simulator.config.processing_seconds = seconds


def after(calls, seq: int):
    return [c for c in calls if c.seq > seq]


# --- 3. the interaction token's lifetime --------------------------------------------------


async def test_expired_token_moves_the_job_to_channel_messages_and_pings_only_the_requester(
    bot, fake_discord, services, simulator, caplog
):
    slow_segmind(simulator)
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    record = await request_video(
        fake_discord, alice, f"a fox waving at {mod.mention} and @everyone"
    )
    fake_discord.advance(15 * 60 + 1)  # Discord now answers the token with 401 50027

    clip = await wait_for_clip(fake_discord, record.channel_id)

    assert clip.interaction_id is None  # a plain channel message, not the dead webhook
    assert clip.attachments[0].data == SAMPLE
    assert clip.pinged_user_ids == {alice.id}
    assert fake_discord.pinged() == {clip.id: frozenset({alice.id})}
    refused = [c for c in fake_discord.calls_to("/webhooks/**") if c.error_code == 50027]
    assert len(refused) == 1, "the token is dropped at the first 50027"
    assert after(fake_discord.calls_to("/webhooks/**"), refused[0].seq) == []
    progress = fake_discord.message(record.original_message_id)
    await fake_discord.wait_until(lambda: title(progress) == FINISHED)
    job = await job_when_idle(services)
    assert job.state is JobState.DELIVERED and job.interaction_token is None
    assert logged(caplog, EXPIRED_LOG) == 1
    assert len(simulator.submits) == 1


async def test_a_public_clip_goes_to_the_channel_with_a_nonce_discord_enforces(
    bot, fake_discord, services, simulator
):
    """The interaction webhook has no nonce, and discord.py resends it after a 5xx that
    Discord may have stored: a clip posted there could appear twice."""
    alice = fake_discord.world.member_named("alice")
    record = await request_video(fake_discord, alice)

    clip = await wait_for_clip(fake_discord, record.channel_id)
    job = await job_when_idle(services)

    assert clip.interaction_id is None and clip.pinged_user_ids == {alice.id}
    assert fake_discord.calls_to(WEBHOOK_POST) == []
    [upload] = [c for c in fake_discord.calls_to(CHANNEL_POST) if c.files]
    assert upload.json["nonce"] == f"videobot-clip-{job.id}" and upload.json["enforce_nonce"]
    assert job.state is JobState.DELIVERED and job.result_message_id == clip.id
    assert job.posting_started_at is not None  # marked before it was sent
    assert len(fake_discord.channel_messages(record.channel_id)) == 2  # progress + clip


async def test_a_private_clip_whose_token_expired_arrives_by_dm_not_in_the_channel(
    bot, fake_discord, services, simulator
):
    slow_segmind(simulator)
    alice = fake_discord.world.member_named("alice")
    record = await request_video(fake_discord, alice, private=True)
    fake_discord.advance(15 * 60 + 1)

    dm = await fake_discord.wait_until(lambda: fake_discord.dm_messages(alice))
    job = await job_when_idle(services)

    assert dm[0].attachments[0].data == SAMPLE
    guild = fake_discord.world.guild
    assert f"You asked for it in **{guild.name}**, <#{record.channel_id}>." in dm[0].content
    assert job.state is JobState.DELIVERED
    assert fake_discord.channel_messages(record.channel_id) == [], "nothing private went public"
    assert fake_discord.calls_to(f"POST /channels/{record.channel_id}/messages") == []


async def test_token_near_15_minutes_is_abandoned_before_discord_refuses_it(
    bot, fake_discord, services, simulator, clock, caplog
):
    slow_segmind(simulator)
    alice = fake_discord.world.member_named("alice")
    record = await request_video(fake_discord, alice)
    # Only the bot's clock moves: Discord would still take the token, the bot must not try.
    clock.jump(TOKEN_LIFETIME - 59)
    jumped_at = fake_discord.calls[-1].seq

    clip = await wait_for_clip(fake_discord, record.channel_id)

    assert clip.interaction_id is None
    assert clip.pinged_user_ids == {alice.id}
    assert after(fake_discord.calls_to("/webhooks/**"), jumped_at) == []
    assert [c.error_code for c in fake_discord.calls if c.error_code == 50027] == []
    progress = fake_discord.message(record.original_message_id)
    await fake_discord.wait_until(lambda: title(progress) == FINISHED)
    assert (await job_when_idle(services)).state is JobState.DELIVERED


@pytest.mark.parametrize(
    ("age", "usable"),
    [(0, True), (13 * 60 + 59, True), (14 * 60, False), (15 * 60, False), (3600, False)],
)
def test_token_is_usable_until_a_minute_before_discords_15_minutes(age, usable):
    clock = FakeClock()
    messenger = JobMessenger(SimpleNamespace(services=SimpleNamespace(clock=clock)))
    job = Job(
        id=1,
        guild_id=2,
        channel_id=3,
        user_id=4,
        request=VideoRequest.create("a fox", seed=1),
        state=JobState.PROCESSING,
        created_at=clock.time() - age,
        interaction_token="token",
        interaction_created_at=clock.time() - age,
        application_id=5,
    )
    assert messenger.token_usable(job) is usable
    assert messenger.token_usable(replace(job, interaction_token=None)) is False


# --- 4. Discord faults -------------------------------------------------------------------


@pytest.mark.parametrize("token", ["fresh", "expired"])
async def test_deleted_progress_message_is_posted_again_once(
    token, bot, fake_discord, services, simulator, caplog
):
    simulator.config.queue_seconds = 0.4
    simulator.config.processing_seconds = 0.4
    alice = fake_discord.world.member_named("alice")
    record = await request_video(fake_discord, alice)
    original = await wait_for_status(fake_discord, record.original_message_id, "Queued at Segmind")
    if token == "expired":
        fake_discord.advance(15 * 60 + 1)
    await fake_discord.store.delete_message(original)  # a moderator deletes it

    clip = await wait_for_clip(fake_discord, record.channel_id)
    await job_when_idle(services)

    def progress_messages() -> list[Any]:
        return [m for m in fake_discord.channel_messages(record.channel_id) if m is not clip]

    # The progress message is tidied after the delivery is recorded, not before.
    await fake_discord.wait_until(lambda: FINISHED in [title(m) for m in progress_messages()])
    progress = progress_messages()
    assert [title(m) for m in progress] == [FINISHED], "one progress message, posted again"
    assert progress[0].id != original.id and progress[0].pinged_user_ids == frozenset()
    assert progress[0].edit_count >= 1, "the new message is edited in place"
    assert logged(caplog, "progress message is gone; posting it again") == 1
    assert clip.pinged_user_ids == {alice.id}


async def test_a_progress_message_posted_again_has_its_cancel_button(
    bot, fake_discord, services, simulator, caplog
):
    """Progress edits leave the button out (Discord keeps it); a message posted anew
    because the old one is gone must still carry it."""
    slow_segmind(simulator, 30.0)
    alice = fake_discord.world.member_named("alice")
    record = await request_video(fake_discord, alice)
    original = await wait_for_status(fake_discord, record.original_message_id, "Queued at Segmind")
    fake_discord.advance(15 * 60 + 1)
    await fake_discord.store.delete_message(original)

    def posted_again() -> list[Any]:
        return [
            m
            for m in fake_discord.channel_messages(record.channel_id)
            if m.id != original.id and title(m) == MAKING
        ]

    again = await fake_discord.wait_until(posted_again)
    assert has_button(again[0], "cancel")
    assert logged(caplog, "progress message is gone; posting it again") == 1


@pytest.mark.parametrize(
    ("taken", "code", "channel_posts"),
    [(Perm.SEND_MESSAGES, 50013, 2), (Perm.VIEW_CHANNEL, 50001, 1)],
    ids=["send-messages", "view-channel"],
)
async def test_a_channel_the_bot_can_no_longer_post_in_gets_the_clip_by_dm(
    taken, code, channel_posts, bot, fake_discord, services, simulator, caplog
):
    slow_segmind(simulator)
    alice = fake_discord.world.member_named("alice")
    channel = fake_discord.world.guild.channels[0]
    await request_video(fake_discord, alice)
    fake_discord.advance(15 * 60 + 1)  # the token no longer helps: only the channel is left
    channel.deny(bot_member(fake_discord), taken)

    dm = await fake_discord.wait_until(lambda: fake_discord.dm_messages(alice))
    job = await job_when_idle(services)

    assert dm[0].attachments[0].data == SAMPLE
    assert f"<@{alice.id}>" in dm[0].content
    assert job.state is JobState.DELIVERED
    refused = fake_discord.calls_to(CHANNEL_POST)
    assert [c.error_code for c in refused if c.path.endswith(f"/{channel.id}/messages")] == [
        code
    ] * channel_posts
    assert logged(caplog, "cannot post in channel", logging.WARNING) == 1
    assert len(simulator.submits) == 1


async def test_while_the_token_is_fresh_the_clip_needs_no_channel_permission(
    bot, fake_discord, services, simulator, caplog
):
    alice = fake_discord.world.member_named("alice")
    channel = fake_discord.world.guild.channels[0]
    channel.deny(bot_member(fake_discord), Perm.SEND_MESSAGES | Perm.ATTACH_FILES)
    record = await request_video(fake_discord, alice)

    clip = await wait_for_clip(fake_discord, record.channel_id)
    job = await job_when_idle(services)

    assert clip.interaction_id == record.id  # the interaction's own webhook
    assert clip.pinged_user_ids == {alice.id}
    assert job.state is JobState.DELIVERED
    # The channel is tried first (it takes a nonce): with the file, then the link; both refused.
    assert [c.error_code for c in fake_discord.calls_to(CHANNEL_POST)] == [50013, 50013]
    assert fake_discord.dm_messages(alice) == []
    assert logged(caplog, "cannot post in channel", logging.WARNING) == 1


async def test_no_channel_and_closed_dms_end_the_job_at_once(
    bot, fake_discord, services, simulator, caplog
):
    slow_segmind(simulator)
    alice = fake_discord.world.member_named("alice")
    alice.user.accepts_dms = False
    channel = fake_discord.world.guild.channels[0]
    record = await request_video(fake_discord, alice)
    fake_discord.advance(15 * 60 + 1)
    channel.deny(bot_member(fake_discord), Perm.VIEW_CHANNEL)

    await fake_discord.wait_until(
        lambda: logged(caplog, "failure could not be shown to the member") == 1
    )
    job = await job_when_idle(services)

    assert job.state is JobState.FAILED
    # No route can ever reach her (not an outage to wait out): one try, then it ends.
    dm_posts = [c for c in fake_discord.calls_to(CHANNEL_POST) if c.error_code == 50007]
    assert len(dm_posts) == 1
    assert logged(caplog, "could not be delivered", logging.ERROR) == 1
    assert fake_discord.dm_messages(alice) == []
    assert fake_discord.channel_messages(record.channel_id)[0].id == record.original_message_id


@pytest.mark.parametrize("token", ["fresh", "expired"])
async def test_missing_attach_files_posts_an_expiring_link(
    token, bot, fake_discord, services, simulator, caplog
):
    slow_segmind(simulator)
    alice = fake_discord.world.member_named("alice")
    record = await request_video(fake_discord, alice)
    if token == "expired":
        fake_discord.advance(15 * 60 + 1)
    # Either way the clip goes to the channel, where the bot may not attach files.
    fake_discord.world.guild.channels[0].deny(bot_member(fake_discord), Perm.ATTACH_FILES)
    refused_route = CHANNEL_POST

    link = await fake_discord.wait_for_message(
        record.channel_id, lambda m: "The link expires <t:" in m.content, timeout=10
    )
    job = await job_when_idle(services)

    assert link.attachments == []
    assert f"{simulator.base_url}/files/" in link.content
    assert link.pinged_user_ids == {alice.id}
    assert [c.error_code for c in fake_discord.calls_to(refused_route) if not c.ok] == [50013]
    assert job.state is JobState.DELIVERED
    assert logged(caplog, "upload refused") == 1


@pytest.mark.parametrize("token", ["fresh", "expired"])
async def test_413_on_upload_posts_an_expiring_link(
    token, bot, fake_discord, services, simulator, caplog
):
    slow_segmind(simulator)
    alice = fake_discord.world.member_named("alice")
    record = await request_video(fake_discord, alice)
    if token == "expired":
        fake_discord.advance(15 * 60 + 1)
    # Discord's real limit is below what the bot was told: only the 413 says so.
    fake_discord.world.upload_limit = len(SAMPLE) - 1
    refused_route = CHANNEL_POST

    link = await fake_discord.wait_for_message(
        record.channel_id, lambda m: "The link expires <t:" in m.content, timeout=10
    )
    job = await job_when_idle(services)

    assert link.attachments == [] and link.pinged_user_ids == {alice.id}
    assert [c.status for c in fake_discord.calls_to(refused_route) if not c.ok] == [413]
    assert job.state is JobState.DELIVERED
    assert logged(caplog, "upload refused") == 1


async def test_a_5xx_on_upload_is_retried_by_discord_py_and_posted_once(
    bot, fake_discord, services, simulator
):
    alice = fake_discord.world.member_named("alice")
    fake_discord.inject(Fault.server_error(CHANNEL_POST, status=500))  # discord.py waits 1 s
    record = await request_video(fake_discord, alice)

    clip = await wait_for_clip(fake_discord, record.channel_id)
    job = await job_when_idle(services)

    assert [c.status for c in fake_discord.calls_to(CHANNEL_POST) if c.files] == [500, 200]
    assert [m.id for m in fake_discord.channel_messages(record.channel_id) if m.attachments] == [
        clip.id
    ]
    assert job.state is JobState.DELIVERED


async def test_a_channel_deleted_while_the_token_is_fresh_still_reaches_the_member_by_dm(
    bot, fake_discord, services, simulator
):
    """A 404 on the interaction's follow-up and on the channel: the clip goes by DM, once."""
    alice = fake_discord.world.member_named("alice")
    channel = fake_discord.world.guild.channels[0]
    gone = f"POST /channels/{channel.id}/messages"  # the server channel only; DMs still work
    fake_discord.inject(Fault.custom(WEBHOOK_POST, 404, 10003, "Unknown Channel", times=None))
    fake_discord.inject(Fault.custom(gone, 404, 10003, "Unknown Channel", times=None))
    await request_video(fake_discord, alice)

    dm = await fake_discord.wait_until(lambda: fake_discord.dm_messages(alice))
    job = await job_when_idle(services)

    assert dm[0].attachments[0].data == SAMPLE
    assert job.state is JobState.DELIVERED
    assert len(simulator.submits) == 1


@pytest.mark.parametrize(
    ("status", "uploads_sent"),
    [
        (502, 2),  # discord.py resends a 502 itself: the nonce makes Discord return the first
        (503, 1),  # the bot's own retry looks for its message first and finds it
    ],
)
async def test_a_clip_posted_whose_answer_was_lost_is_not_posted_twice(
    status, uploads_sent, bot, fake_discord, services, simulator
):
    slow_segmind(simulator)
    alice = fake_discord.world.member_named("alice")
    channel = fake_discord.world.guild.channels[0]
    await request_video(fake_discord, alice)
    fake_discord.advance(TOKEN_LIFETIME + 1)  # the clip goes by channel message
    uploads = f"POST /channels/{channel.id}/messages"
    # Discord stores the message, then its edge answers 5xx: the bot cannot know it worked.
    fake_discord.inject(Fault.server_error(uploads, status=status, after_apply=True))

    await wait_for_clip(fake_discord, channel.id)
    job = await job_when_idle(services)

    assert job.state is JobState.DELIVERED
    clips = [m for m in fake_discord.channel_messages(channel.id) if m.attachments]
    assert len(clips) == 1 and clips[0].pinged_user_ids == {alice.id}
    assert job.result_message_id == clips[0].id
    assert len([c for c in fake_discord.calls_to(uploads) if c.files]) == uploads_sent


async def test_a_progress_answer_discord_took_but_failed_to_confirm_still_runs_the_job(
    bot, fake_discord, services, simulator
):
    alice = fake_discord.world.member_named("alice")
    # The answer to /video is stored, then 502: discord.py resends it and Discord says 40060.
    fake_discord.inject(
        Fault.server_error("POST /interactions/*/*/callback", status=502, after_apply=True)
    )
    record = await request_video(fake_discord, alice)

    clip = await wait_for_clip(fake_discord, record.channel_id)
    job = await job_when_idle(services)

    assert job.state is JobState.DELIVERED and job.message_id == record.original_message_id
    assert clip.attachments[0].data == SAMPLE
    assert len(simulator.submits) == 1


async def test_without_embed_links_the_clip_still_shows_its_prompt_and_seed(
    bot, fake_discord, services, simulator
):
    """Discord drops a bot's embeds where it lacks Embed Links; the words must survive."""
    slow_segmind(simulator)
    alice = fake_discord.world.member_named("alice")
    channel = fake_discord.world.guild.channels[0]
    await request_video(fake_discord, alice, prompt="a heron at dawn", seed=77)
    fake_discord.advance(TOKEN_LIFETIME + 1)  # from now on, plain channel messages
    channel.deny(bot_member(fake_discord), Perm.EMBED_LINKS)
    await fake_discord.dispatch_event("CHANNEL_UPDATE", payloads.channel(channel))
    guild = bot.get_guild(fake_discord.world.guild.id)
    await fake_discord.wait_until(  # the bot has heard of the change, as from Discord
        lambda: not bot.get_channel(channel.id).permissions_for(guild.me).embed_links
    )

    clip = await wait_for_clip(fake_discord, channel.id)

    assert clip.embeds == []
    assert clip.content.startswith(f"<@{alice.id}>, your video is ready.")
    assert "a heron at dawn" in clip.content and "**Seed:** `77`" in clip.content
    assert clip.attachments[0].data == SAMPLE and clip.pinged_user_ids == {alice.id}
    assert len(clip.content) <= 2000
