"""The gallery channel: `/videolimit gallery`, Publish, auto mode, at most one post per clip."""

from __future__ import annotations

import asyncio

import pytest

from services.simulator import SegmindSimulator
from tests.bot.conftest import SAMPLE
from tests.bot.faultkit import bot_member
from tests.bot.helpers import (
    TIMEOUT,
    answer,
    click,
    field,
    has_button,
    running_bot,
    video,
    wait_for_clip,
    wait_for_reply,
    wait_idle,
)
from tests.fakediscord import (
    FakeDiscord,
    FakeMember,
    FakeWorld,
    Fault,
    InteractionRecord,
    Perm,
    StoredMessage,
    payloads,
)

UNPOSTABLE = "I cannot post in this server's gallery channel"


@pytest.fixture
def fake_world() -> FakeWorld:
    """The default server with a #showcase channel for the gallery."""
    world = FakeWorld.default()
    world.guild.add_text_channel("showcase")
    return world


def showcase(fake: FakeDiscord):
    return next(c for c in fake.world.guild.channels if c.name == "showcase")


async def settled(fake: FakeDiscord, record: InteractionRecord) -> StoredMessage:
    await fake.wait_for_ack(record)
    message = answer(fake, record)
    await fake.wait_until(lambda: not message.loading, TIMEOUT)
    return message


async def set_gallery(
    fake: FakeDiscord, user: FakeMember, *, bypass: bool = False, **options
) -> StoredMessage:
    """`/videolimit gallery` as ``user``; ``bypass`` models a server that shows it to anyone."""
    record = await fake.dispatch_slash_command(
        "videolimit gallery", options, user=user, bypass_permissions=bypass
    )
    return await settled(fake, record)


async def clip_for(fake: FakeDiscord, member: FakeMember, prompt: str, **options) -> StoredMessage:
    record = await video(fake, member, {"prompt": prompt, "seed": 42, **options})
    return await wait_for_clip(fake, record.channel_id, viewer=member)


async def publish(fake: FakeDiscord, clip: StoredMessage, user: FakeMember) -> StoredMessage:
    """``user`` clicks Publish; the bot's private answer once it has one."""
    record = await click(fake, clip, "publish", user)
    return await wait_for_reply(fake, record, lambda m: bool(m.content) and not m.loading)


def gallery_posts(fake: FakeDiscord) -> list[StoredMessage]:
    return fake.all_channel_messages(showcase(fake))


async def test_a_moderator_sets_the_gallery_privately_and_a_member_may_not(
    bot, fake_discord: FakeDiscord
):
    mod = fake_discord.world.member_named("mod")
    alice = fake_discord.world.member_named("alice")
    channel = showcase(fake_discord)

    refused = await set_gallery(fake_discord, alice, bypass=True, channel=channel)
    done = await set_gallery(fake_discord, mod, channel=channel, mode="auto")
    history = await settled(
        fake_discord, await fake_discord.dispatch_slash_command("videolimit history", {}, user=mod)
    )
    off = await set_gallery(fake_discord, mod)

    assert refused.ephemeral and "Only moderators" in refused.content
    assert done.ephemeral and done.visible_to == {mod.id}
    assert f"<#{channel.id}>, in auto mode" in done.content
    assert f"set the gallery to <#{channel.id}> (auto)" in history.embeds[0]["description"]
    assert "The gallery is off" in off.content
    assert done.pinged_user_ids == set()


async def test_no_gallery_no_publish_button_and_auto_mode_none_either(
    bot, fake_discord: FakeDiscord
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    plain = await clip_for(fake_discord, alice, "no gallery yet")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord), mode="auto")
    auto = await clip_for(fake_discord, alice, "auto gallery")

    assert has_button(plain, "publish") is None
    assert has_button(auto, "publish") is None


async def test_publish_posts_the_clip_once_with_credit_seed_and_link_and_pings_nobody(
    bot, fake_discord: FakeDiscord, services
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord))
    hostile = f"@everyone <@{mod.id}> **bold** [x](https://evil.example) `code`"
    clip = await clip_for(fake_discord, alice, hostile)
    assert not services.clips.exists(await services.storage.jobs.get(1))  # public: removed

    # A double click: the second arrives while the first post waits out a rate limit.
    fake_discord.inject(
        Fault.rate_limited(f"POST /channels/{showcase(fake_discord).id}/messages", retry_after=0.5)
    )
    custom_id = has_button(clip, "publish")
    assert custom_id is not None
    clicks = await asyncio.gather(
        fake_discord.dispatch_component(clip, custom_id, user=alice),
        fake_discord.dispatch_component(clip, custom_id, user=alice),
    )
    answers = [
        await wait_for_reply(fake_discord, record, lambda m: bool(m.content) and not m.loading)
        for record in clicks
    ]

    posts = gallery_posts(fake_discord)
    assert len(posts) == 1
    post = posts[0]
    assert [a.data for a in post.attachments] == [SAMPLE]
    assert post.pinged_user_ids == set() and "@everyone" not in post.content
    assert "\\*\\*bold\\*\\*" in post.embeds[0]["description"]
    assert field(post, "Made by") == f"<@{alice.id}>"
    assert field(post, "Seed") == "`42`"
    assert f"/{clip.channel_id}/{clip.id})" in (field(post, "Original") or "")
    texts = sorted(a.content for a in answers)
    assert texts[0].startswith("Published in") and str(post.id) in texts[0]
    assert "already in the gallery" in texts[1]
    assert all(a.ephemeral and a.visible_to == {alice.id} for a in answers)


async def test_another_member_may_not_publish_but_a_moderator_may(bot, fake_discord: FakeDiscord):
    alice = fake_discord.world.member_named("alice")
    bob = fake_discord.world.guild.add_member("bob")
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord))
    clip = await clip_for(fake_discord, alice, "a lighthouse at dusk")

    refusal = await publish(fake_discord, clip, bob)
    assert refusal.ephemeral and refusal.visible_to == {bob.id}
    assert "Only the person who asked for this video, or a moderator" in refusal.content
    assert gallery_posts(fake_discord) == []

    published = await publish(fake_discord, clip, mod)
    assert published.content.startswith("Published in")
    assert len(gallery_posts(fake_discord)) == 1


async def test_after_a_restart_a_published_clip_is_not_posted_again(
    fake_discord: FakeDiscord, bot_env, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    async with running_bot(bot_env, simulator, fake_discord):
        await set_gallery(fake_discord, mod, channel=showcase(fake_discord))
        clip = await clip_for(fake_discord, alice, "a once-only comet")
        await publish(fake_discord, clip, alice)

    async with running_bot(bot_env, simulator, fake_discord):
        again = await publish(fake_discord, clip, mod)

    assert "already in the gallery" in again.content
    assert len(gallery_posts(fake_discord)) == 1


async def test_auto_mode_publishes_each_public_clip_once_and_never_a_private_one(
    bot, fake_discord: FakeDiscord, services
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord), mode="auto")

    first = await clip_for(fake_discord, alice, "first public clip")
    second = await clip_for(fake_discord, alice, "second public clip", seed=43)
    await clip_for(fake_discord, alice, "a private clip", private=True)
    await wait_idle(services.runner)
    await fake_discord.wait_until(lambda: len(gallery_posts(fake_discord)) >= 2, TIMEOUT)
    await fake_discord.wait_until(lambda: len(bot.background) == 0, TIMEOUT)

    posts = gallery_posts(fake_discord)
    links = sorted(field(p, "Original") or "" for p in posts)
    assert len(posts) == 2
    assert [p.embeds[0]["description"] for p in posts] == [
        "first public clip",
        "second public clip",
    ]
    assert f"/{first.id})" in links[0] + links[1] and f"/{second.id})" in links[0] + links[1]
    assert all(p.pinged_user_ids == set() for p in posts)


async def test_a_shared_private_clip_can_be_published_from_its_shared_post(
    bot, fake_discord: FakeDiscord
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord))
    private = await clip_for(fake_discord, alice, "a secret garden", private=True)
    assert has_button(private, "publish") is None

    share = await click(fake_discord, private, "share", alice)
    shared = await wait_for_reply(fake_discord, share, lambda m: bool(m.attachments))
    published = await publish(fake_discord, shared, alice)

    assert published.content.startswith("Published in")
    (post,) = gallery_posts(fake_discord)
    assert [a.data for a in post.attachments] == [SAMPLE]
    assert f"/{shared.id})" in (field(post, "Original") or "")


# Without Embed Links Discord would take the post and drop its embed: no credit, no prompt.
@pytest.mark.parametrize(
    "taken",
    [Perm.SEND_MESSAGES, Perm.EMBED_LINKS, Perm.ATTACH_FILES],
    ids=["send-messages", "embed-links", "attach-files"],
)
async def test_a_gallery_channel_the_bot_cannot_post_in_is_told_to_moderators_once(
    taken, bot, fake_discord: FakeDiscord
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    owner = fake_discord.world.owner
    channel = showcase(fake_discord)
    await set_gallery(fake_discord, mod, channel=channel)
    channel.deny(bot_member(fake_discord), taken)
    await fake_discord.dispatch_event("CHANNEL_UPDATE", payloads.channel(channel))
    first = await clip_for(fake_discord, alice, "first, refused")
    second = await clip_for(fake_discord, alice, "second, refused", seed=43)

    answers = [await publish(fake_discord, clip, alice) for clip in (first, second)]

    assert all(UNPOSTABLE in a.content and a.ephemeral for a in answers)
    assert gallery_posts(fake_discord) == []

    def alerts() -> list[StoredMessage]:
        return [m for m in fake_discord.dm_messages(owner) if "gallery channel" in m.content]

    await fake_discord.wait_until(lambda: bool(alerts()), TIMEOUT)
    # Both publishes have answered; an alert the second one sent would be among these.
    await fake_discord.wait_until(lambda: len(bot.background) == 0, TIMEOUT)
    assert len(alerts()) == 1 and f"<#{channel.id}>" in alerts()[0].content

    # Once the channel is fixed, the refused clip is still publishable: its claim was released.
    channel.overwrites.clear()
    await fake_discord.dispatch_event("CHANNEL_UPDATE", payloads.channel(channel))
    published = await publish(fake_discord, first, alice)
    assert published.content.startswith("Published in")
    assert len(gallery_posts(fake_discord)) == 1


async def test_publish_after_the_clip_left_the_disk_says_so_and_posts_nothing(
    bot, fake_discord: FakeDiscord, services
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord))
    clip = await clip_for(fake_discord, alice, "swept away")
    kept = list(services.clips.directory.glob("gallery-*.mp4"))
    assert len(kept) == 1  # kept for the gallery past the delivery
    kept[0].unlink()  # as the retention sweep does

    answer_ = await publish(fake_discord, clip, alice)

    # Not "make it again with the seed": other settings make another clip, and a
    # moderator would pay for someone else's.
    assert answer_.content == "This clip is no longer kept, so it can no longer be published."
    assert gallery_posts(fake_discord) == []


async def test_a_post_whose_answer_was_lost_is_never_posted_again(bot, fake_discord: FakeDiscord):
    """Discord stored the post but answered 503: it may be there, so no second post."""
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord))
    clip = await clip_for(fake_discord, alice, "a lost answer")
    fake_discord.inject(
        Fault.server_error(
            f"POST /channels/{showcase(fake_discord).id}/messages", status=503, after_apply=True
        )
    )

    first = await publish(fake_discord, clip, alice)
    again = await publish(fake_discord, clip, alice)

    assert "went wrong" in first.content
    assert "already in the gallery" in again.content
    assert len(gallery_posts(fake_discord)) == 1


async def test_auto_mode_publishes_at_the_next_start_a_clip_it_could_not_publish_before(
    fake_discord: FakeDiscord, bot_env, simulator: SegmindSimulator
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    owner = fake_discord.world.owner
    channel = showcase(fake_discord)
    async with running_bot(bot_env, simulator, fake_discord) as first_bot:
        await set_gallery(fake_discord, mod, channel=channel, mode="auto")
        channel.deny(bot_member(fake_discord), Perm.SEND_MESSAGES)
        clip = await clip_for(fake_discord, alice, "a comet the gallery missed")
        # The auto-publish was tried and refused (the owner was told), then the bot stops.
        await fake_discord.wait_until(
            lambda: any("gallery channel" in m.content for m in fake_discord.dm_messages(owner)),
            TIMEOUT,
        )
        await fake_discord.wait_until(lambda: len(first_bot.background) == 0, TIMEOUT)
    assert gallery_posts(fake_discord) == []

    channel.overwrites.clear()  # fixed while the bot was down
    for _ in range(2):  # and a second start posts nothing more
        async with running_bot(bot_env, simulator, fake_discord) as bot:
            await fake_discord.wait_until(lambda: len(gallery_posts(fake_discord)) >= 1, TIMEOUT)
            await fake_discord.wait_until(lambda: len(bot.background) == 0, TIMEOUT)

    posts = gallery_posts(fake_discord)
    assert len(posts) == 1 and posts[0].embeds[0]["description"] == "a comet the gallery missed"
    assert f"/{clip.id})" in (field(posts[0], "Original") or "")


async def test_a_mode_alone_changes_the_mode_of_the_gallery_and_the_history_says_what_it_was(
    bot, fake_discord: FakeDiscord, services
):
    mod = fake_discord.world.member_named("mod")
    channel = showcase(fake_discord)
    guild_id = fake_discord.world.guild.id

    refused = await set_gallery(fake_discord, mod, mode="auto")
    assert refused.ephemeral and "Choose a channel for the gallery first" in refused.content
    assert await services.storage.gallery.get(guild_id) is None

    await set_gallery(fake_discord, mod, channel=channel)
    auto = await set_gallery(fake_discord, mod, mode="auto")
    moved = await set_gallery(fake_discord, mod, channel=channel)  # a channel alone keeps auto
    off = await set_gallery(fake_discord, mod)
    history = await settled(
        fake_discord, await fake_discord.dispatch_slash_command("videolimit history", {}, user=mod)
    )

    assert f"<#{channel.id}>, in auto mode" in auto.content
    assert f"<#{channel.id}>, in auto mode" in moved.content
    assert "The gallery is off" in off.content
    lines = history.embeds[0]["description"].splitlines()
    assert [line.split("> ", 2)[-1] for line in lines] == [
        f"turned the gallery off (was: <#{channel.id}>, auto)",
        f"set the gallery to <#{channel.id}> (auto) (was: <#{channel.id}>, manual)",
        f"set the gallery to <#{channel.id}> (manual) (was: off)",
    ]


async def test_videolimit_show_says_where_the_gallery_is(bot, fake_discord: FakeDiscord):
    mod = fake_discord.world.member_named("mod")

    async def shown() -> str:
        record = await fake_discord.dispatch_slash_command("videolimit show", {}, user=mod)
        message = await settled(fake_discord, record)
        return "\n".join(str(embed.get("description", "")) for embed in message.embeds)

    assert "**Gallery:** off" in await shown()
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord), mode="auto")
    assert f"**Gallery:** <#{showcase(fake_discord).id}>, auto" in await shown()
