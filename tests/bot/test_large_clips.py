"""A clip over the upload limit: re-encoded to fit wherever it is posted; a link as a last resort.

Segmind (held on its own clock) serves a clip larger than Discord's default 10 MiB, so no
upload-limit knob is needed: the reply uses the interaction's own limit, a channel post
after the token expired uses the server's, exactly as in production.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cogs.videobot import Timings
from services.simulator import SegmindSimulator
from services.transcode import ffmpeg_exe, probe_duration
from tests.bot.helpers import (
    FINISHED,
    finish_segmind_jobs,
    start_held_simulator,
    video,
    wait_for_clip,
    wait_for_message_text,
    wait_for_status,
    wait_for_title,
)
from tests.conftest import SimulatorFactory
from tests.fakeclock import FakeClock
from tests.fakediscord import FakeDiscord, StoredMessage

DISCORD_DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
BIG_CLIP_SECONDS = 3
TOKEN_LIFETIME = 15 * 60


def make_clip_over_ten_mib(path: Path) -> bytes:
    """A 3 s, 640x480 clip of lossless noise (noise does not compress): about 11-12 MB."""
    subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"nullsrc=s=640x480:r=8:d={BIG_CLIP_SECONDS},geq=random(1)*255:128:128",
            "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    data = path.read_bytes()
    assert len(data) > DISCORD_DEFAULT_UPLOAD_LIMIT, len(data)
    return data


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Made once per module: ffmpeg takes a fraction of a second."""
    return make_clip_over_ten_mib(tmp_path_factory.mktemp("clips") / "big.mp4")


@pytest.fixture
def bot_timings() -> Timings:
    """Progress edits paced at 0.2 s instead of 5 s, so scenarios can wait for Segmind's state."""
    return Timings(progress_edit_interval=0.2)


@pytest.fixture
async def simulator(
    simulator_factory: SimulatorFactory, segmind_clock: FakeClock, big_clip: bytes
) -> SegmindSimulator:
    """Segmind holding each job in each state until the scenario advances ``segmind_clock``."""
    return await start_held_simulator(simulator_factory, segmind_clock, video_bytes=big_clip)


async def assert_playable_clip_of_the_same_length(message: StoredMessage, tmp_path: Path) -> None:
    """The attachment is still a video of about the original's duration, not a truncated file."""
    copy = tmp_path / "received.mp4"
    copy.write_bytes(message.attachments[0].data)
    duration = await probe_duration(copy)
    assert duration is not None and abs(duration - BIG_CLIP_SECONDS) < 0.5, duration


async def test_a_clip_over_the_upload_limit_is_re_encoded_to_fit_the_channel(
    bot, fake_discord: FakeDiscord, segmind_clock: FakeClock, tmp_path: Path
):
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": "static on an old television"})
    await wait_for_status(fake_discord, record.original_message_id, "Queued at Segmind")

    finish_segmind_jobs(segmind_clock)
    clip = await wait_for_clip(fake_discord, record.channel_id)

    assert clip.interaction_id is None  # to the channel, where Discord enforces its nonce
    assert len(clip.attachments) == 1
    assert 0 < clip.attachments[0].size <= DISCORD_DEFAULT_UPLOAD_LIMIT
    await assert_playable_clip_of_the_same_length(clip, tmp_path)
    assert "expires" not in clip.content and "http" not in clip.content
    assert clip.pinged_user_ids == {alice.id}
    assert [c for c in fake_discord.calls if c.status == 413] == []  # it fit the first time


async def test_after_the_token_expired_a_large_clip_is_re_encoded_for_the_channel(
    bot, fake_discord: FakeDiscord, segmind_clock: FakeClock, tmp_path: Path
):
    alice = fake_discord.world.member_named("alice")
    record = await video(fake_discord, alice, {"prompt": "snow on a dead channel"})
    await wait_for_status(fake_discord, record.original_message_id, "Queued at Segmind")

    fake_discord.advance(TOKEN_LIFETIME + 1)
    finish_segmind_jobs(segmind_clock)
    clip = await wait_for_clip(fake_discord, record.channel_id)
    await wait_for_title(fake_discord, record.original_message_id, FINISHED)

    assert clip.interaction_id is None  # a plain channel message
    assert 0 < clip.attachments[0].size <= DISCORD_DEFAULT_UPLOAD_LIMIT
    await assert_playable_clip_of_the_same_length(clip, tmp_path)
    assert clip.pinged_user_ids == {alice.id}
    assert [c for c in fake_discord.calls if c.status == 413] == []


async def test_a_clip_that_cannot_be_made_small_enough_is_posted_as_an_expiring_link(
    bot, fake_discord: FakeDiscord, simulator: SegmindSimulator, segmind_clock: FakeClock
):
    alice = fake_discord.world.member_named("alice")
    # A private clip goes by the interaction, whose upload limit no re-encoding can meet.
    record = await video(
        fake_discord, alice, {"prompt": "pure noise", "private": True}, attachment_size_limit=8_000
    )
    await wait_for_status(fake_discord, record.original_message_id, "Queued at Segmind")

    finish_segmind_jobs(segmind_clock)
    linked = await wait_for_message_text(
        fake_discord, record.channel_id, "The link expires <t:", viewer=alice
    )

    assert linked.attachments == []
    assert f"{simulator.base_url}/files/" in linked.content  # Segmind's own link
    assert linked.content.startswith(f"<@{alice.id}>, your video is ready.")
    assert linked.id == record.original_message_id  # the private progress, replaced
    seen = fake_discord.channel_messages(record.channel_id, viewer=alice)
    assert not any(m.attachments for m in seen)
    assert [c for c in fake_discord.calls if c.status == 413] == []  # never tried blindly
