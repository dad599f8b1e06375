"""Clip files: names, copies re-encoded to fit a limit (with the real ffmpeg), removal, sweeps."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from services.clips import ClipFiles
from services.models import Job, JobState, VideoRequest
from services.simulator import DEFAULT_VIDEO_PATH
from tests.services.test_transcode import make_big_clip


def a_job(clip: Path | None = None, job_id: int = 1) -> Job:
    return Job(
        id=job_id,
        guild_id=10,
        channel_id=20,
        user_id=30,
        request=VideoRequest.create("a lighthouse at dusk"),
        state=JobState.DOWNLOADED,
        created_at=0.0,
        clip_path=None if clip is None else str(clip),
    )


@pytest.fixture
def clips(tmp_path: Path) -> ClipFiles:
    return ClipFiles(tmp_path)


def test_a_jobs_clip_is_named_for_the_job_in_the_clips_folder(
    clips: ClipFiles, tmp_path: Path
) -> None:
    assert clips.path_for(42) == tmp_path / "job-42.mp4"
    assert clips.directory == tmp_path


def test_a_clip_exists_only_while_its_stored_file_is_there(
    clips: ClipFiles, tmp_path: Path
) -> None:
    path = clips.path_for(1)
    assert not clips.exists(a_job(None))
    assert not clips.exists(a_job(path))
    path.write_bytes(b"clip")
    assert clips.exists(a_job(path))
    assert not clips.exists(a_job(tmp_path))  # a folder is not a clip


async def test_a_clip_that_fits_is_sent_as_it_is(clips: ClipFiles, tmp_path: Path) -> None:
    path = clips.path_for(1)
    path.write_bytes(DEFAULT_VIDEO_PATH.read_bytes())

    assert await clips.fit(a_job(path), path.stat().st_size) == path
    assert list(tmp_path.iterdir()) == [path]  # nothing re-encoded


async def test_a_given_source_is_used_instead_of_the_stored_clip(
    clips: ClipFiles, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere.mp4"
    other.write_bytes(b"small")

    assert await clips.fit(a_job(None), 1000, source=other) == other


async def test_a_job_without_a_stored_clip_or_a_source_is_a_mistake(clips: ClipFiles) -> None:
    with pytest.raises(ValueError, match="job=1 has no stored clip"):
        await clips.fit(a_job(None), 1000)


async def test_a_copy_already_made_for_that_limit_is_reused(
    clips: ClipFiles, tmp_path: Path
) -> None:
    path = clips.path_for(1)
    path.write_bytes(b"not a video, so no encode could succeed" * 100)
    fitted = tmp_path / "job-1-fit-500.mp4"
    fitted.write_bytes(b"a copy made earlier")

    assert await clips.fit(a_job(path), 500) == fitted


async def test_a_copy_over_the_limit_is_not_trusted(clips: ClipFiles, tmp_path: Path) -> None:
    path = clips.path_for(1)
    path.write_bytes(b"not a video at all" * 100)
    (tmp_path / "job-1-fit-500.mp4").write_bytes(b"x" * 501)  # left by an older, larger try

    assert await clips.fit(a_job(path), 500) is None


async def test_a_large_clip_is_re_encoded_under_the_limit_once(
    clips: ClipFiles, tmp_path: Path
) -> None:
    path = make_big_clip(clips.path_for(1), seconds=3)
    limit = 200_000
    assert path.stat().st_size > limit

    fitted = await clips.fit(a_job(path), limit)

    assert fitted == tmp_path / f"job-1-fit-{limit}.mp4"
    assert 0 < fitted.stat().st_size <= limit
    made = fitted.stat().st_mtime_ns
    assert await clips.fit(a_job(path), limit) == fitted
    assert fitted.stat().st_mtime_ns == made  # the second post reuses it


async def test_when_no_copy_can_be_made_fit_says_none_and_warns(
    clips: ClipFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = clips.path_for(7)
    path.write_bytes(b"not a video at all" * 100)

    with caplog.at_level(logging.WARNING, logger="services.clips"):
        assert await clips.fit(a_job(path, job_id=7), 500) is None

    assert "job=7" in caplog.text
    assert list(tmp_path.iterdir()) == [path]  # no half-made copy left


async def test_removing_a_clip_takes_the_copy_fit_made_without_listing_the_folder(
    clips: ClipFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = clips.path_for(1)
    path.write_bytes(b"x" * 1000)
    reused = tmp_path / "job-1-fit-500.mp4"
    reused.write_bytes(b"a copy made earlier")

    async def encode(src: Path, dest: Path, max_bytes: int, **_: float) -> Path:
        dest.write_bytes(b"small")
        return dest

    monkeypatch.setattr("services.clips.fit_to_size", encode)
    made = await clips.fit(a_job(path), 900)
    assert await clips.fit(a_job(path), 500) == reused
    other = clips.path_for(10)
    other.write_bytes(b"x")
    monkeypatch.setattr(Path, "glob", lambda *_: pytest.fail("the clips folder was listed"))

    clips.remove(path)

    assert made is not None and not made.exists()
    assert not path.exists() and not reused.exists()
    assert other.exists()
    clips.remove(path)  # already gone: harmless


def test_copies_left_by_an_earlier_process_go_with_their_clip_after_the_start_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clips = ClipFiles(tmp_path)  # a new process: it made none of these
    mine = [clips.path_for(1), tmp_path / "job-1-fit-500.mp4", tmp_path / "job-1-fit-9000.mp4"]
    others = [clips.path_for(10), tmp_path / "job-10-fit-500.mp4"]
    for path in (*mine, *others):
        path.write_bytes(b"x")
    clips.sweep(older_than=86_400, now=time.time(), keep=set(), partial_downloads=True)
    monkeypatch.setattr(Path, "glob", lambda *_: pytest.fail("the clips folder was listed"))

    clips.remove(clips.path_for(1))

    monkeypatch.undo()
    assert sorted(tmp_path.iterdir()) == sorted(others)


def test_a_swept_copy_is_forgotten_and_a_later_removal_still_works(
    clips: ClipFiles, tmp_path: Path
) -> None:
    clip, copy = clips.path_for(1), tmp_path / "job-1-fit-500.mp4"
    for path in (clip, copy):
        path.write_bytes(b"x")
    now = time.time()
    clips.sweep(older_than=86_400, now=now, keep=set())
    os.utime(copy, (now - 90_000, now - 90_000))

    assert clips.sweep(older_than=86_400, now=now, keep=set()) == 1

    assert not copy.exists()
    clips.remove(clip)
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_removes_old_clips_but_keeps_pending_ones_and_live_downloads(
    clips: ClipFiles, tmp_path: Path
) -> None:
    old, pending, fresh = clips.path_for(1), clips.path_for(2), clips.path_for(3)
    part = tmp_path / ".job-4.mp4.x.part"
    for path in (old, pending, fresh, part):
        path.write_bytes(b"x")
    now = time.time()
    for path in (old, pending, part):
        os.utime(path, (now - 90_000, now - 90_000))

    removed = clips.sweep(older_than=86_400, now=now, keep={str(pending)})

    assert removed == 1
    assert not old.exists()
    assert pending.exists() and fresh.exists()
    assert part.exists()  # a download may be writing it


def test_a_sweep_at_start_also_removes_every_partial_download(
    clips: ClipFiles, tmp_path: Path
) -> None:
    part = tmp_path / ".job-4.mp4.x.part"
    part.write_bytes(b"half a clip")  # cut short by a crash, however recent

    assert clips.sweep(older_than=86_400, now=time.time(), keep=set(), partial_downloads=True) == 0
    assert not part.exists()


def test_a_sweep_of_a_missing_folder_removes_nothing(tmp_path: Path) -> None:
    clips = ClipFiles(tmp_path / "never-made")
    assert clips.sweep(older_than=0, now=time.time(), keep=set(), partial_downloads=True) == 0
