"""The gallery keeps a clip until it is published, and takes a deleted clip down for good."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from tests.bot.conftest import SAMPLE
from tests.bot.faultkit import bot_member
from tests.bot.helpers import (
    TIMEOUT,
    click,
    wait_for_reply,
    wait_idle,
)
from tests.bot.test_gallery import clip_for, gallery_posts, publish, set_gallery, showcase
from tests.fakediscord import (
    FakeDiscord,
    FakeWorld,
    Perm,
)


def kept_files(services) -> list[Path]:
    return list(services.clips.directory.glob("gallery-*.mp4"))


@pytest.fixture
def fake_world() -> FakeWorld:
    """The default server with a #showcase channel for the gallery."""
    world = FakeWorld.default()
    world.guild.add_text_channel("showcase")
    return world


async def test_a_deleted_clip_has_its_gallery_post_taken_down_and_is_never_posted_again(
    bot, fake_discord: FakeDiscord, services
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord))
    clip = await clip_for(fake_discord, alice, "regretted at once")
    await publish(fake_discord, clip, alice)
    (post,) = gallery_posts(fake_discord)
    job = await services.storage.jobs.get(1)

    await bot.presenter.gallery.take_down(job)
    await bot.presenter.gallery.take_down(job)  # twice (two clicks): nothing more to do
    again = await publish(fake_discord, clip, mod)

    assert fake_discord.message(post.id).deleted
    assert gallery_posts(fake_discord) == []
    assert again.content == "This video was deleted, so it stays out of the gallery."
    claim = await services.storage.gallery.post_of(job.id)
    assert claim is not None and claim.taken_down


async def test_a_deleted_clip_never_published_is_not_kept_nor_caught_up_in_auto_mode(
    bot, fake_discord: FakeDiscord, services
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    owner = fake_discord.world.owner
    channel = showcase(fake_discord)
    await set_gallery(fake_discord, mod, channel=channel, mode="auto")
    channel.deny(bot_member(fake_discord), Perm.SEND_MESSAGES)
    await clip_for(fake_discord, alice, "deleted before the gallery took it")
    await fake_discord.wait_until(
        lambda: any("gallery channel" in m.content for m in fake_discord.dm_messages(owner)),
        TIMEOUT,
    )
    await fake_discord.wait_until(lambda: len(bot.background) == 0, TIMEOUT)
    assert len(kept_files(services)) == 1  # the auto publish was refused: kept for later

    await bot.presenter.gallery.take_down(await services.storage.jobs.get(1))
    channel.overwrites.clear()
    caught_up = await bot.presenter.gallery.catch_up()

    assert kept_files(services) == []
    assert caught_up == 0 and gallery_posts(fake_discord) == []


async def test_a_clip_is_kept_for_the_gallery_by_a_copy_where_hard_links_fail(
    bot, fake_discord: FakeDiscord, services, monkeypatch: pytest.MonkeyPatch
):
    def no_links(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord))
    clip = await clip_for(fake_discord, alice, "on a FAT stick")
    await wait_idle(services.runner)
    assert not services.clips.exists(await services.storage.jobs.get(1))  # public: removed

    published = await publish(fake_discord, clip, alice)

    assert published.content.startswith("Published in")
    (post,) = gallery_posts(fake_discord)
    assert [a.data for a in post.attachments] == [SAMPLE]
    assert not any(services.clips.directory.glob("*gallery-*"))  # no copy nor part left


async def test_a_clip_swept_between_its_fitting_and_its_post_is_not_posted_and_stays_publishable(
    bot, fake_discord: FakeDiscord, services, monkeypatch: pytest.MonkeyPatch
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord))
    clip = await clip_for(fake_discord, alice, "swept at the worst moment")
    fit = services.clips.fit

    async def fit_then_swept(*args, **kwargs):
        path = await fit(*args, **kwargs)
        saved = path.read_bytes()
        path.unlink()  # the retention sweep, just then
        monkeypatch.setattr(services.clips, "fit", fit)
        swept.append((path, saved))
        return path

    swept: list[tuple[Path, bytes]] = []
    monkeypatch.setattr(services.clips, "fit", fit_then_swept)
    refused = await publish(fake_discord, clip, alice)

    assert refused.content == "This clip is no longer kept, so it can no longer be published."
    assert gallery_posts(fake_discord) == []
    assert await services.storage.gallery.post_of(1) is None  # surely unsent: released
    # The clip back (a retry finding it), Publish works: nothing was claimed forever.
    ((path, saved),) = swept
    path.write_bytes(saved)
    published = await publish(fake_discord, clip, alice)
    assert published.content.startswith("Published in")


async def test_a_clip_deleted_while_its_gallery_post_goes_out_has_that_post_deleted(
    bot, fake_discord: FakeDiscord, services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord))
    clip = await clip_for(fake_discord, alice, "deleted mid-post")
    fit = services.clips.fit
    claimed, go_on = asyncio.Event(), asyncio.Event()

    async def held_fit(*args, **kwargs):
        # A copy: the upload has the file open, so the take-down's removal cannot stop it.
        uploading = tmp_path / "uploading.mp4"
        uploading.write_bytes((await fit(*args, **kwargs)).read_bytes())
        claimed.set()  # the claim is taken; the post is about to go out
        await go_on.wait()
        return uploading

    monkeypatch.setattr(services.clips, "fit", held_fit)
    record = await click(fake_discord, clip, "publish", alice)
    await asyncio.wait_for(claimed.wait(), TIMEOUT)
    await bot.presenter.gallery.take_down(await services.storage.jobs.get(1))
    go_on.set()
    answer_ = await wait_for_reply(fake_discord, record, lambda m: bool(m.content))

    assert answer_.content == "This video was deleted, so it stays out of the gallery."
    assert gallery_posts(fake_discord) == []
    assert (
        len(fake_discord.store.channel_history(showcase(fake_discord).id)) == 1
    )  # posted, then deleted
    claim = await services.storage.gallery.post_of(1)
    assert claim is not None and claim.taken_down


async def test_a_clip_swept_before_its_fitting_is_not_posted_and_its_claim_released(
    bot, fake_discord: FakeDiscord, services, monkeypatch: pytest.MonkeyPatch
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord))
    clip = await clip_for(fake_discord, alice, "swept before fitting")
    fit = services.clips.fit

    async def swept_first(job, limit, source=None):
        source.unlink()  # the retention sweep, between finding the clip and fitting it
        return await fit(job, limit, source=source)

    monkeypatch.setattr(services.clips, "fit", swept_first)
    refused = await publish(fake_discord, clip, alice)

    assert refused.content == "This clip is no longer kept, so it can no longer be published."
    assert await services.storage.gallery.post_of(1) is None
    assert gallery_posts(fake_discord) == []


async def test_deleting_a_published_clip_takes_its_gallery_post_down_for_good(
    bot, fake_discord: FakeDiscord, services
):
    alice = fake_discord.world.member_named("alice")
    mod = fake_discord.world.member_named("mod")
    await set_gallery(fake_discord, mod, channel=showcase(fake_discord))
    clip = await clip_for(fake_discord, alice, "published, then regretted")
    await publish(fake_discord, clip, alice)
    (post,) = gallery_posts(fake_discord)

    await click(fake_discord, clip, "delete", mod)
    await fake_discord.wait_until(lambda: fake_discord.message(post.id).deleted, TIMEOUT)

    assert fake_discord.message(clip.id).deleted
    assert gallery_posts(fake_discord) == []
    assert kept_files(services) == []
    post_of = await services.storage.gallery.post_of(1)
    assert post_of is not None and post_of.taken_down
