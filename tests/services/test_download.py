"""Fetching a finished clip from the CDN, against the simulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import pytest

from services.download import ClipDownloader
from services.errors import (
    DownloadNotAVideo,
    DownloadTooLarge,
    SegmindError,
    SegmindMalformedResponse,
    SegmindRequestExpired,
    SegmindServerError,
    SegmindUnavailable,
)
from services.models import VideoRequest
from services.segmind import SegmindClient
from services.simulator import DEFAULT_VIDEO_PATH, SegmindSimulator
from tests.conftest import TEST_SEGMIND_API_KEY, SegmindClientFactory, SimulatorFactory

SAMPLE_MP4 = DEFAULT_VIDEO_PATH.read_bytes()
MP4_HEADER = b"\x00\x00\x00\x18ftypmp42"  # the first box of an MP4: size, then "ftyp"


@pytest.fixture
def downloader(http_session: aiohttp.ClientSession) -> ClipDownloader:
    """On the same session as the keyed client, as in the bot."""
    return ClipDownloader(http_session)


async def finished_video_url(client: SegmindClient) -> str:
    submission = await client.submit(VideoRequest.create("A red fox in fresh snow", seed=7))
    result = await client.poll_until_done(submission, deadline=time.monotonic() + 30)
    return result.video_url


async def test_the_clip_is_written_whole_and_nothing_else_is_left(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    url = await finished_video_url(segmind_client)
    dest = tmp_path / "clips" / "job-1.mp4"  # a folder that does not exist yet

    size = await downloader.download(url, dest, max_bytes=10_000_000)

    assert dest.read_bytes() == SAMPLE_MP4
    assert size == len(SAMPLE_MP4)
    assert list(dest.parent.iterdir()) == [dest]  # no partial file left behind


async def test_the_download_carries_no_api_key(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    url = await finished_video_url(segmind_client)  # the keyed client used the same session

    await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    (call,) = simulator.calls_to("download")
    assert "x-api-key" not in call.headers
    assert all(TEST_SEGMIND_API_KEY not in value for value in call.headers.values())
    assert TEST_SEGMIND_API_KEY not in repr(downloader)


@pytest.mark.parametrize("content_length", [True, False], ids=["announced", "streamed"])
async def test_an_oversized_clip_is_refused_and_leaves_no_file(
    simulator_factory: SimulatorFactory,
    segmind_client_factory: SegmindClientFactory,
    downloader: ClipDownloader,
    tmp_path: Path,
    content_length: bool,
) -> None:
    sim = await simulator_factory(
        video_bytes=MP4_HEADER + b"\x00" * 300_000, download_content_length=content_length
    )
    url = await finished_video_url(segmind_client_factory(sim.base_url))

    with pytest.raises(DownloadTooLarge):
        await downloader.download(url, tmp_path / "big.mp4", max_bytes=100_000)

    assert list(tmp_path.iterdir()) == []


async def test_a_clip_exactly_at_the_cap_is_accepted(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    url = await finished_video_url(segmind_client)

    size = await downloader.download(url, tmp_path / "a.mp4", max_bytes=len(SAMPLE_MP4))

    assert size == len(SAMPLE_MP4)


async def test_a_streamed_clip_without_length_is_downloaded_whole(
    simulator_factory: SimulatorFactory,
    segmind_client_factory: SegmindClientFactory,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    sim = await simulator_factory(download_content_length=False)
    url = await finished_video_url(segmind_client_factory(sim.base_url))

    await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert (tmp_path / "a.mp4").read_bytes() == SAMPLE_MP4


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (403, SegmindRequestExpired),
        (404, SegmindRequestExpired),
        (410, SegmindRequestExpired),
        (500, SegmindServerError),
        (503, SegmindServerError),
    ],
)
async def test_download_errors_are_typed_and_keep_the_old_file(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
    status: int,
    error_type: type[SegmindError],
) -> None:
    url = await finished_video_url(segmind_client)
    dest = tmp_path / "a.mp4"
    dest.write_bytes(b"previous clip")
    simulator.inject("download", status=status, body="<Error><Code>AccessDenied</Code></Error>")

    with pytest.raises(error_type) as info:
        await downloader.download(url, dest, max_bytes=10_000_000)

    assert type(info.value) is error_type
    assert info.value.status == status
    assert "AccessDenied" in info.value.detail and "<" not in info.value.detail
    assert dest.read_bytes() == b"previous clip"
    assert list(tmp_path.iterdir()) == [dest]


async def test_download_of_an_expired_result_is_expired(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    submission = await segmind_client.submit(VideoRequest.create("a heron", seed=3))
    result = await segmind_client.poll_until_done(submission, deadline=time.monotonic() + 30)
    simulator.expire(submission.request_id)

    with pytest.raises(SegmindRequestExpired):
        await downloader.download(result.video_url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert list(tmp_path.iterdir()) == []


async def test_download_times_out_as_a_whole(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    url = await finished_video_url(segmind_client)
    simulator.hang("download")

    with pytest.raises(SegmindUnavailable):
        await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000, timeout=0.2)

    assert list(tmp_path.iterdir()) == []


async def test_a_download_cancelled_midway_leaves_no_partial_file(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    url = await finished_video_url(segmind_client)
    simulator.hang("download")
    download = asyncio.create_task(downloader.download(url, tmp_path / "a.mp4", max_bytes=10**7))
    async with asyncio.timeout(5):
        while not list(tmp_path.glob(".a.mp4.*.part")):  # the transfer has begun
            await asyncio.sleep(0.005)

    download.cancel()  # a shutdown, or the member's Cancel
    with pytest.raises(asyncio.CancelledError):
        await download

    assert list(tmp_path.iterdir()) == []


async def test_download_refuses_a_non_http_url(downloader: ClipDownloader, tmp_path: Path) -> None:
    with pytest.raises(SegmindMalformedResponse):
        await downloader.download("file:///etc/passwd", tmp_path / "a.mp4", max_bytes=10)

    assert list(tmp_path.iterdir()) == []


async def test_a_signed_links_signature_stays_out_of_errors_and_logs(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = await finished_video_url(segmind_client) + "?X-Amz-Signature=s3cr3t-signature"
    simulator.inject("download", status=500, body="<Error>try later</Error>")

    with pytest.raises(SegmindServerError) as info:
        await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)
    await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert "/files/" in info.value.detail  # the link is named, without its signature
    assert "s3cr3t" not in info.value.detail and "s3cr3t" not in str(info.value)
    assert "s3cr3t" not in caplog.text


NOT_A_VIDEO: dict[str, dict[str, object]] = {
    "empty": {"body": None, "headers": {"Content-Type": "video/mp4"}},
    "html": {"body": "<html><body>Access denied</body></html>"},
    "json": {"body": {"error": "quota exceeded"}},
    "text": {"body": "Service temporarily unavailable"},
    "text typed as video": {
        "body": "Service temporarily unavailable",
        "headers": {"Content-Type": "video/mp4"},
    },
    "too short for a box": {"body": "\x00\x00\x00", "headers": {"Content-Type": "video/mp4"}},
}


@pytest.mark.parametrize("fault", NOT_A_VIDEO.values(), ids=NOT_A_VIDEO)
async def test_a_download_that_is_not_an_mp4_is_refused_as_retryable(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
    fault: dict[str, object],
) -> None:
    url = await finished_video_url(segmind_client)
    simulator.inject("download", status=200, **fault)  # type: ignore[arg-type]

    with pytest.raises(DownloadNotAVideo) as info:
        await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert isinstance(info.value, SegmindServerError)  # the runner tries a download again
    assert list(tmp_path.iterdir()) == []


def opening_with(box: bytes) -> bytes:
    """The sample clip rearranged to open with ``box``, still whole and still playable.

    Every variant keeps the frames (mdat) at the same offset, so the index (moov) that
    points into them stays right: ftyp (32 bytes) gives way to a box of the same size.
    """
    ftyp, moov, free, mdat = (
        SAMPLE_MP4[:32],
        SAMPLE_MP4[32:1417],
        SAMPLE_MP4[1417:1425],
        SAMPLE_MP4[1425:],
    )
    assert (ftyp[4:8], moov[4:8], free[4:8], mdat[4:8]) == (b"ftyp", b"moov", b"free", b"mdat")
    if box == b"ftyp":
        return SAMPLE_MP4
    if box == b"moov":
        return moov + ftyp + free + mdat
    if box == b"mdat":  # an empty first mdat: some muxers write one
        return b"\x00\x00\x00\x20mdat" + bytes(24) + SAMPLE_MP4[32:]
    return SAMPLE_MP4[:4] + box + SAMPLE_MP4[8:]


@pytest.mark.parametrize("box", [b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"])
async def test_every_box_an_mp4_may_open_with_is_accepted(
    simulator_factory: SimulatorFactory,
    segmind_client_factory: SegmindClientFactory,
    downloader: ClipDownloader,
    tmp_path: Path,
    box: bytes,
) -> None:
    clip = opening_with(box)
    sim = await simulator_factory(video_bytes=clip, download_content_length=False)
    url = await finished_video_url(segmind_client_factory(sim.base_url))

    await downloader.download(url, tmp_path / "a.mp4", max_bytes=100_000)

    assert (tmp_path / "a.mp4").read_bytes() == clip


# --- a whole clip or none -----------------------------------------------------------------


@pytest.mark.parametrize(
    "keep", [20, 500, 20_000, len(SAMPLE_MP4) - 1], ids=["ftyp", "moov", "mdat", "last byte"]
)
async def test_a_transfer_cut_short_without_a_length_is_refused_as_retryable(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
    keep: int,
) -> None:
    """The body ends when the connection closes, so HTTP cannot tell: the MP4 check does."""
    url = await finished_video_url(segmind_client)
    dest = tmp_path / "a.mp4"
    dest.write_bytes(b"previous clip")
    simulator.cut_download_short(keep_bytes=keep)

    with pytest.raises(DownloadNotAVideo) as info:
        await downloader.download(url, dest, max_bytes=10_000_000)

    assert isinstance(info.value, SegmindServerError)  # the runner fetches it again
    assert "not a whole MP4" in info.value.detail
    assert dest.read_bytes() == b"previous clip"
    assert list(tmp_path.iterdir()) == [dest]


async def test_the_next_try_after_a_cut_transfer_gets_the_whole_clip(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    url = await finished_video_url(segmind_client)
    simulator.cut_download_short(keep_bytes=20_000)
    with pytest.raises(DownloadNotAVideo):
        await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    size = await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert size == len(SAMPLE_MP4)
    assert (tmp_path / "a.mp4").read_bytes() == SAMPLE_MP4


async def test_a_whole_length_clip_whose_frames_do_not_decode_is_refused(
    simulator_factory: SimulatorFactory,
    segmind_client_factory: SegmindClientFactory,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    damaged = bytearray(SAMPLE_MP4)
    damaged[5_000:9_000] = bytes(4_000)  # inside the frames: every box still adds up
    sim = await simulator_factory(video_bytes=bytes(damaged))
    url = await finished_video_url(segmind_client_factory(sim.base_url))

    with pytest.raises(DownloadNotAVideo) as info:
        await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert "ffmpeg could not decode it" in info.value.detail
    assert list(tmp_path.iterdir()) == []


def test_the_simulators_sample_clip_looks_like_an_mp4() -> None:
    assert SAMPLE_MP4[4:8] == b"ftyp"
