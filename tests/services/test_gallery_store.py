"""The gallery store on each engine: settings, and a clip's one post across reopens."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.errors import ValidationError
from services.gallery import GalleryService
from services.models import Gallery, GalleryMode, VideoRequest
from services.storage import NewJob, Storage
from tests.fakeclock import FakeClock

GUILD = 111
CHANNEL = 222


async def _job(storage: Storage) -> int:
    job = await storage.jobs.insert(
        NewJob(
            guild_id=GUILD,
            channel_id=5,
            user_id=7,
            request=VideoRequest.create("a cat", seed=1),
            created_at=1.0,
        )
    )
    return job.id


async def test_a_gallery_is_set_changed_and_turned_off_with_an_audit_entry_each(
    database_location: Path | str,
) -> None:
    storage = await Storage.open(database_location)
    try:
        assert await storage.gallery.get(GUILD) is None
        await storage.gallery.set(GUILD, (CHANNEL, GalleryMode.MANUAL), actor_id=9, now=1.0)
        await storage.gallery.set(GUILD, (CHANNEL + 1, GalleryMode.AUTO), actor_id=9, now=2.0)
        assert await storage.gallery.get(GUILD) == Gallery(GUILD, CHANNEL + 1, GalleryMode.AUTO)
        assert await storage.gallery.get(GUILD + 1) is None
        await storage.gallery.set(GUILD, None, actor_id=9, now=3.0)
        await storage.gallery.set(GUILD, None, actor_id=9, now=4.0)  # already off: no entry
        assert await storage.gallery.get(GUILD) is None
        entries = await storage.limits.audit_log(GUILD, limit=10)
        assert [e.detail for e in entries] == [
            f"off; was {CHANNEL + 1} auto",
            f"{CHANNEL + 1} auto; was {CHANNEL} manual",
            f"{CHANNEL} manual; was off",
        ]
    finally:
        await storage.close()


async def test_a_mode_alone_changes_the_gallery_there_is_and_none_without_one(
    database_location: Path | str,
) -> None:
    storage = await Storage.open(database_location)
    try:
        assert await storage.gallery.set_mode(GUILD, GalleryMode.AUTO, actor_id=9, now=1.0) is None
        assert await storage.gallery.get(GUILD) is None
        await storage.gallery.set(GUILD, (CHANNEL, GalleryMode.MANUAL), actor_id=9, now=2.0)
        changed = await storage.gallery.set_mode(GUILD, GalleryMode.AUTO, actor_id=9, now=3.0)
        assert changed == Gallery(GUILD, CHANNEL, GalleryMode.AUTO)
        assert await storage.gallery.get(GUILD) == changed
        entries = await storage.limits.audit_log(GUILD, limit=10)
        assert entries[0].detail == f"{CHANNEL} auto; was {CHANNEL} manual"
    finally:
        await storage.close()


async def test_a_clip_is_claimed_once_even_by_simultaneous_claims(
    database_location: Path | str,
) -> None:
    storage = await Storage.open(database_location)
    try:
        job_id = await _job(storage)
        claims = await asyncio.gather(
            *(storage.gallery.claim(job_id, GUILD, CHANNEL, by=7, now=1.0) for _ in range(5))
        )
        assert sorted(claims) == [False] * 4 + [True]
    finally:
        await storage.close()


async def test_a_released_claim_can_be_claimed_again_but_a_posted_one_never(
    database_location: Path | str,
) -> None:
    storage = await Storage.open(database_location)
    try:
        job_id = await _job(storage)
        assert await storage.gallery.claim(job_id, GUILD, CHANNEL, by=7, now=1.0)
        await storage.gallery.release(job_id)
        assert await storage.gallery.claim(job_id, GUILD, CHANNEL, by=7, now=2.0)
        await storage.gallery.posted(job_id, 999)
        await storage.gallery.release(job_id)  # too late: it is posted
    finally:
        await storage.close()
    reopened = await Storage.open(database_location)
    try:
        assert not await reopened.gallery.claim(job_id, GUILD, CHANNEL, by=7, now=3.0)
        post = await reopened.gallery.post_of(job_id)
        assert post is not None and post.message_id == 999 and post.channel_id == CHANNEL
    finally:
        await reopened.close()


async def test_a_taken_down_clip_is_never_claimed_again_and_a_post_under_way_learns_it(
    database_location: Path | str,
) -> None:
    storage = await Storage.open(database_location)
    try:
        never_posted, posting, posted = [await _job(storage) for _ in range(3)]
        assert await storage.gallery.claim(posting, GUILD, CHANNEL, by=7, now=1.0)
        assert await storage.gallery.claim(posted, GUILD, CHANNEL, by=7, now=1.0)
        assert await storage.gallery.posted(posted, 999)

        assert await storage.gallery.take_down(never_posted, GUILD, by=1, now=2.0) is None
        under_way = await storage.gallery.take_down(posting, GUILD, by=1, now=2.0)
        was_posted = await storage.gallery.take_down(posted, GUILD, by=1, now=2.0)

        assert under_way is not None and under_way.message_id is None
        assert was_posted is not None and was_posted.message_id == 999
        # The post under way went out after all: it learns that it must go.
        assert not await storage.gallery.posted(posting, 1000)
        await storage.gallery.release(posting)  # a failed post releases no take-down
        for job_id in (never_posted, posting, posted):
            assert not await storage.gallery.claim(job_id, GUILD, CHANNEL, by=7, now=3.0)
            post = await storage.gallery.post_of(job_id)
            assert post is not None and post.taken_down
    finally:
        await storage.close()


async def test_a_moderators_choice_keeps_what_it_leaves_out(database_location: Path | str) -> None:
    """A channel alone keeps the mode; a mode alone keeps the channel; nothing turns it off."""
    storage = await Storage.open(database_location)
    gallery = GalleryService(storage, FakeClock())
    try:
        with pytest.raises(ValidationError):
            await gallery.choose(1, None, GalleryMode.AUTO, actor_id=9)
        assert await gallery.choose(1, 5, None, actor_id=9) == Gallery(1, 5, GalleryMode.MANUAL)
        assert await gallery.choose(1, None, GalleryMode.AUTO, actor_id=9) == Gallery(
            1, 5, GalleryMode.AUTO
        )
        assert await gallery.choose(1, 6, None, actor_id=9) == Gallery(1, 6, GalleryMode.AUTO)
        assert await gallery.setting(1) == Gallery(1, 6, GalleryMode.AUTO)
        assert await gallery.choose(1, None, None, actor_id=9) is None
        assert await gallery.setting(1) is None
    finally:
        await storage.close()
