"""No paying twice for the same clip: a seeded request already delivered here is answered
with that clip, and "Make it anew" is the way to pay for a fresh one (issue 12.4)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cogs.video.render import PROMPT_SHOWN_IN_RESULT
from services.app import Services
from services.simulator import FAIL_MARKER, SegmindSimulator
from tests.bot.conftest import SAMPLE
from tests.bot.helpers import (
    CHANNEL_MESSAGE,
    FAILED,
    MAKING,
    TIMEOUT,
    answer,
    click,
    has_button,
    title,
    video,
    wait_for_clip,
    wait_for_reply,
    wait_for_title,
    wait_idle,
)
from tests.fakediscord import FakeChannel, FakeDiscord, FakeMember, FakeWorld, Perm, StoredMessage

SEEDED = {"prompt": "a lighthouse in a storm", "seed": 1234, "steps": 30}


@pytest.fixture
def fake_world() -> FakeWorld:
    """The default world, bob, and #staff that bob may not see."""
    world = FakeWorld.default()
    staff = world.guild.add_text_channel("staff")
    staff.deny(world.guild.add_member("bob"), Perm.VIEW_CHANNEL)
    return world


async def delivered(
    fake: FakeDiscord,
    services: Services,
    member: FakeMember,
    options: dict[str, Any],
    **dispatch: Any,
) -> StoredMessage:
    """``member``'s clip for ``options``, once the bot has recorded it as delivered."""
    record = await video(fake, member, options, **dispatch)
    clip = (
        await wait_for_reply(fake, record, lambda m: bool(m.attachments))
        if options.get("private")
        else await wait_for_clip(fake, record.channel_id, after=record.original_message_id or 0)
    )
    await wait_idle(services.runner)
    return clip


def jump_url(fake: FakeDiscord, message: StoredMessage) -> str:
    return f"https://discord.com/channels/{fake.world.guild.id}/{message.channel_id}/{message.id}"


async def offer(fake: FakeDiscord, member: FakeMember, options: dict[str, Any]) -> StoredMessage:
    """What ``member`` is answered with when asking again for ``options``."""
    record = await video(fake, member, options)
    return await wait_for_reply(fake, record, lambda m: has_button(m, "anew") is not None)


async def jobs_of(services: Services, member: FakeMember, guild_id: int) -> int:
    return len(await services.storage.jobs.counted_times(guild_id, member.id, 0.0))


async def test_an_identical_seeded_request_gets_the_delivered_clip_and_spends_nothing(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.member_named("bob")
    clip = await delivered(fake_discord, services, alice, SEEDED)

    record = await video(fake_discord, bob, dict(SEEDED))
    reused = answer(fake_discord, record)

    assert record.response_type == CHANNEL_MESSAGE  # answered at once, within the 3 s
    assert reused.ephemeral and reused.visible_to == {bob.id}
    assert jump_url(fake_discord, clip) in reused.content
    assert "nothing was spent" in reused.content
    assert has_button(reused, "anew") and not reused.attachments
    assert reused.pinged_user_ids == frozenset()  # alice is not pinged, nor named
    await wait_idle(services.runner)
    assert len(simulator.submits) == 1
    assert await jobs_of(services, bob, fake_discord.world.guild.id) == 0
    public = fake_discord.channel_messages(clip.channel_id)
    assert [m.id for m in public if m.attachments] == [clip.id]


async def test_the_requester_asking_again_is_not_counted_against_the_limit(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    limit = await fake_discord.dispatch_slash_command(
        "videolimit set", {"user": alice, "count": 1, "period": "6h"}, user=mod
    )
    await fake_discord.wait_for_ack(limit)
    clip = await delivered(fake_discord, services, alice, SEEDED)

    reused = await offer(fake_discord, alice, SEEDED)  # not "limit reached": nothing to pay

    assert jump_url(fake_discord, clip) in reused.content
    assert len(simulator.submits) == 1
    assert await jobs_of(services, alice, fake_discord.world.guild.id) == 1


async def test_make_it_anew_submits_exactly_once_even_when_double_clicked(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.member_named("bob")
    clip = await delivered(fake_discord, services, alice, SEEDED)
    reused = await offer(fake_discord, bob, SEEDED)

    first = await click(fake_discord, reused, "anew", bob)
    second = await click(fake_discord, reused, "anew", bob)
    anew = await wait_for_clip(fake_discord, clip.channel_id, after=clip.id)
    await wait_idle(services.runner)

    assert len(simulator.submits) == 2
    assert simulator.submits[1] == simulator.submits[0]  # the very request, seed included
    assert anew.pinged_user_ids == {bob.id}
    assert not answer(fake_discord, first).ephemeral  # its own public progress message
    assert second.acknowledged
    assert await jobs_of(services, bob, fake_discord.world.guild.id) == 1


async def test_make_it_anew_goes_through_the_limits_like_any_request(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    limit = await fake_discord.dispatch_slash_command(
        "videolimit set", {"user": alice, "count": 1, "period": "6h"}, user=mod
    )
    await fake_discord.wait_for_ack(limit)
    await delivered(fake_discord, services, alice, SEEDED)
    reused = await offer(fake_discord, alice, SEEDED)

    anew = await click(fake_discord, reused, "anew", alice)
    refusal = await wait_for_reply(fake_discord, anew, lambda m: "limit" in m.content)

    assert refusal.ephemeral and "your personal limit: 1 clip per 6 hours" in refusal.content
    await wait_idle(services.runner)
    assert len(simulator.submits) == 1


async def test_make_it_anew_keeps_the_privacy_the_member_asked_for(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.member_named("bob")
    await delivered(fake_discord, services, alice, SEEDED)
    reused = await offer(fake_discord, bob, {**SEEDED, "private": True})

    anew = await click(fake_discord, reused, "anew", bob)
    progress = await wait_for_title(fake_discord, anew.original_message_id or 0, MAKING)

    assert progress.ephemeral and progress.visible_to == {bob.id}


@pytest.mark.parametrize(
    "change",
    [
        {"negative_prompt": "fog"},
        {"steps": 31},
        {"seed": 1235},
        {"guidance_scale": 7.5},
        {"input_frames": 20},
        {"frame_rate": 9},
        {"prompt": "a lighthouse in a storm!"},
    ],
    ids=lambda change: next(iter(change)),
)
async def test_any_other_parameter_makes_a_new_clip(
    bot,
    fake_discord: FakeDiscord,
    services: Services,
    simulator: SegmindSimulator,
    change: dict[str, Any],
):
    alice = fake_discord.world.member_named("alice")
    clip = await delivered(fake_discord, services, alice, SEEDED)

    record = await video(fake_discord, alice, {**SEEDED, **change})
    await wait_for_clip(fake_discord, clip.channel_id, after=clip.id)

    assert title(answer(fake_discord, record)) is not None  # a progress message, not an offer
    assert not has_button(answer(fake_discord, record), "anew")
    assert len(simulator.submits) == 2


async def test_a_request_without_a_seed_is_always_new(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    clip = await delivered(fake_discord, services, alice, SEEDED)
    seed = simulator.submits[0]["seed"]
    assert seed == SEEDED["seed"]
    # The same words without a seed: a fresh draw each time, so never "the same clip".
    unseeded = {k: v for k, v in SEEDED.items() if k != "seed"}

    record = await video(fake_discord, alice, unseeded)
    await wait_for_clip(fake_discord, clip.channel_id, after=clip.id)

    assert not has_button(answer(fake_discord, record), "anew")
    assert len(simulator.submits) == 2


async def test_someone_elses_private_clip_is_never_offered_until_shared(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.member_named("bob")
    carol = fake_discord.world.guild.add_member("carol")
    private = await delivered(fake_discord, services, alice, {**SEEDED, "private": True})

    record = await video(fake_discord, bob, dict(SEEDED))
    bobs = await wait_for_clip(fake_discord, record.channel_id, viewer=bob)
    await wait_idle(services.runner)

    assert len(simulator.submits) == 2  # bob paid for his own: alice's was not his to see
    assert not has_button(answer(fake_discord, record), "anew")
    seen_by_bob = fake_discord.channel_messages(record.channel_id, viewer=bob)
    assert private.id not in [m.id for m in seen_by_bob]

    # Once alice shares hers, carol is pointed at the shared post (bob's public one is newer,
    # and either is fine to show: both are in the channel for everyone).
    share = await click(fake_discord, private, "share", alice)
    shared = await wait_for_reply(fake_discord, share, lambda m: bool(m.attachments))
    reused = await offer(fake_discord, carol, SEEDED)
    assert jump_url(fake_discord, bobs) in reused.content or (
        jump_url(fake_discord, shared) in reused.content
    )
    assert len(simulator.submits) == 2


async def test_a_shared_private_clip_is_offered_by_its_shared_post(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.member_named("bob")
    private = await delivered(fake_discord, services, alice, {**SEEDED, "private": True})
    share = await click(fake_discord, private, "share", alice)
    shared = await wait_for_reply(fake_discord, share, lambda m: bool(m.attachments))
    await wait_idle(services.runner)

    reused = await offer(fake_discord, bob, SEEDED)

    assert jump_url(fake_discord, shared) in reused.content
    assert str(private.id) not in reused.content  # the private message opens for nobody else
    assert len(simulator.submits) == 1


async def test_the_requesters_own_private_clip_is_shown_to_her_again(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    await delivered(fake_discord, services, alice, {**SEEDED, "private": True})

    reused = await offer(fake_discord, alice, {**SEEDED, "private": True})

    assert reused.ephemeral and reused.visible_to == {alice.id}
    assert [a.data for a in reused.attachments] == [SAMPLE]
    assert "nothing was spent" in reused.content
    assert len(simulator.submits) == 1


async def test_an_own_private_clip_whose_file_is_gone_is_made_anew(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    await delivered(fake_discord, services, alice, {**SEEDED, "private": True})
    for stored in services.clips.directory.glob("*.mp4"):
        stored.unlink()  # swept, as the clip store does after a while

    # Asked publicly this time: the same private request within seconds would be a double
    # click (admission's duplicate window), which minutes of real life rule out.
    again = await delivered(fake_discord, services, alice, SEEDED)

    assert [a.data for a in again.attachments] == [SAMPLE]
    assert len(simulator.submits) == 2


async def test_a_failed_clip_is_not_offered(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    failing = {**SEEDED, "prompt": f"a storm {FAIL_MARKER}"}
    first = await video(fake_discord, alice, failing)
    await wait_for_title(fake_discord, first.original_message_id or 0, FAILED)
    await wait_idle(services.runner)

    second = await video(fake_discord, alice, failing)
    await wait_for_title(fake_discord, second.original_message_id or 0, FAILED)

    assert not has_button(answer(fake_discord, second), "anew")
    assert len(simulator.submits) == 2


def staff(fake: FakeDiscord) -> FakeChannel:
    return next(c for c in fake.world.guild.channels if c.name == "staff")


def job_id_of(message: StoredMessage, action: str) -> int:
    custom_id = has_button(message, action)
    assert custom_id is not None
    return int(custom_id.split(":")[2])


async def made_anew(
    fake: FakeDiscord, services: Services, member: FakeMember, options: dict[str, Any]
) -> StoredMessage:
    """``member``'s own new clip for ``options``, asked for in #general; never an offer."""
    record = await video(fake, member, options)
    first = await wait_for_reply(fake, record, lambda m: True)
    assert not has_button(first, "anew"), first.content
    clip = await wait_for_clip(
        fake, record.channel_id, viewer=member, after=record.original_message_id or 0
    )
    await wait_idle(services.runner)
    return clip


async def test_a_clip_in_a_channel_the_asker_cannot_see_is_not_offered(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.member_named("bob")
    hidden = await delivered(fake_discord, services, alice, SEEDED, channel=staff(fake_discord))
    assert hidden.channel_id == staff(fake_discord).id

    bobs = await made_anew(fake_discord, services, bob, SEEDED)

    assert str(hidden.channel_id) not in bobs.content
    assert len(simulator.submits) == 2  # bob's own: #staff's clip is not his to be shown
    # alice, who sees #staff, is still pointed at it.
    reused = await offer(fake_discord, alice, SEEDED)
    assert jump_url(fake_discord, hidden) in reused.content or (
        jump_url(fake_discord, bobs) in reused.content
    )


@pytest.mark.parametrize(
    "cut",
    [
        {"prompt": ("a lighthouse in a storm " * (PROMPT_SHOWN_IN_RESULT // 20)).strip()},
        {"negative_prompt": "blur, " + "noise " * 100},
    ],
    ids=["prompt", "negative_prompt"],
)
async def test_a_shared_clip_whose_post_cuts_its_request_short_is_not_offered_to_others(
    bot,
    fake_discord: FakeDiscord,
    services: Services,
    simulator: SegmindSimulator,
    cut: dict[str, Any],
):
    """Matching the whole request would confirm a guess at what the shared post leaves out."""
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.member_named("bob")
    options = {**SEEDED, **cut}
    private = await delivered(fake_discord, services, alice, {**options, "private": True})
    share = await click(fake_discord, private, "share", alice)
    shared = await wait_for_reply(fake_discord, share, lambda m: bool(m.attachments))
    await wait_idle(services.runner)

    bobs = await made_anew(fake_discord, services, bob, options)

    assert str(shared.id) not in bobs.content
    assert len(simulator.submits) == 2


async def wait_deleted(services: Services, job_id: int) -> None:
    """Until the bot has recorded a deleted post of the job (after the message is gone)."""

    async def recorded() -> None:
        while True:
            job = await services.storage.jobs.get(job_id)
            assert job is not None
            if job.result_deleted_at is not None or job.shared_deleted_at is not None:
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(recorded(), TIMEOUT)


async def test_a_deleted_clip_is_not_offered(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.member_named("bob")
    clip = await delivered(fake_discord, services, alice, SEEDED)
    await click(fake_discord, clip, "delete", alice)
    await fake_discord.wait_until(lambda: clip.deleted, TIMEOUT)
    await wait_deleted(services, job_id_of(clip, "delete"))

    bobs = await made_anew(fake_discord, services, bob, SEEDED)

    assert str(clip.id) not in bobs.content
    assert len(simulator.submits) == 2  # one submit for bob: no dead link


async def test_a_deleted_shared_post_is_not_offered_but_its_requester_gets_her_file(
    bot, fake_discord: FakeDiscord, services: Services, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.member_named("bob")
    private = await delivered(fake_discord, services, alice, {**SEEDED, "private": True})
    share = await click(fake_discord, private, "share", alice)
    shared = await wait_for_reply(fake_discord, share, lambda m: bool(m.attachments))
    await click(fake_discord, shared, "delete", alice)
    await fake_discord.wait_until(lambda: shared.deleted, TIMEOUT)
    await wait_deleted(services, job_id_of(shared, "delete"))

    mine = await offer(fake_discord, alice, {**SEEDED, "private": True})
    assert [a.data for a in mine.attachments] == [SAMPLE]
    assert len(simulator.submits) == 1

    bobs = await made_anew(fake_discord, services, bob, SEEDED)
    assert str(shared.id) not in bobs.content
    assert len(simulator.submits) == 2
