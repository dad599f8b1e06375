"""Fetching a finished clip from the CDN, against the simulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from services.download import MAX_REDIRECTS, ClipDownloader, DownloadRefused
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
from tests.services.test_url_policy import HostsResolver

SAMPLE_MP4 = DEFAULT_VIDEO_PATH.read_bytes()
MP4_HEADER = b"\x00\x00\x00\x18ftypmp42"  # the first box of an MP4: size, then "ftyp"


_made: list[ClipDownloader] = []


def clip_downloader(**options: Any) -> ClipDownloader:
    """A ``ClipDownloader`` whose connections end with the test (``close_downloaders``)."""
    made = ClipDownloader(**options)
    _made.append(made)
    return made


@pytest.fixture(autouse=True)
async def close_downloaders() -> AsyncIterator[None]:
    yield
    while _made:
        await _made.pop().close()


def downloader_for(sim: SegmindSimulator) -> ClipDownloader:
    """A downloader that trusts the simulator's origin, as the bot trusts SEGMIND_BASE_URL's."""
    return clip_downloader(trusted_base_url=sim.base_url)


@pytest.fixture
def downloader(simulator: SegmindSimulator) -> ClipDownloader:
    """For the default ``simulator`` (on loopback, so trusted only as Segmind's own origin)."""
    return downloader_for(simulator)


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
    url = await finished_video_url(segmind_client)  # the keyed client asked for the link

    await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    (call,) = simulator.calls_to("download")
    assert "x-api-key" not in call.headers
    assert all(TEST_SEGMIND_API_KEY not in value for value in call.headers.values())
    assert TEST_SEGMIND_API_KEY not in repr(downloader)


@pytest.mark.parametrize("content_length", [True, False], ids=["announced", "streamed"])
async def test_an_oversized_clip_is_refused_and_leaves_no_file(
    simulator_factory: SimulatorFactory,
    segmind_client_factory: SegmindClientFactory,
    tmp_path: Path,
    content_length: bool,
) -> None:
    sim = await simulator_factory(
        video_bytes=MP4_HEADER + b"\x00" * 300_000, download_content_length=content_length
    )
    url = await finished_video_url(segmind_client_factory(sim.base_url))

    with pytest.raises(DownloadTooLarge):
        await downloader_for(sim).download(url, tmp_path / "big.mp4", max_bytes=100_000)

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
    tmp_path: Path,
) -> None:
    sim = await simulator_factory(download_content_length=False)
    url = await finished_video_url(segmind_client_factory(sim.base_url))

    await downloader_for(sim).download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

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


async def test_downloads_share_a_connection_and_a_new_one_is_checked_again(
    segmind_client: SegmindClient, tmp_path: Path
) -> None:
    """A session per download cost a TCP connection (and CPU) per clip; the guard still
    checks each connection opened, as after ``close``."""
    url = URL(await finished_video_url(segmind_client)).with_host("segmind.test")
    resolver = HostsResolver({"segmind.test": ["127.0.0.1"]})
    downloader = clip_downloader(trusted_base_url=str(url.origin()), resolver=resolver)

    await downloader.download(str(url), tmp_path / "a.mp4", max_bytes=10_000_000)
    await downloader.download(str(url), tmp_path / "b.mp4", max_bytes=10_000_000)
    assert resolver.lookups == ["segmind.test"]  # the second reused the first's connection

    await downloader.close()
    await downloader.download(str(url), tmp_path / "c.mp4", max_bytes=10_000_000)
    assert resolver.lookups == ["segmind.test", "segmind.test"]


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
    tmp_path: Path,
    box: bytes,
) -> None:
    clip = opening_with(box)
    sim = await simulator_factory(video_bytes=clip, download_content_length=False)
    url = await finished_video_url(segmind_client_factory(sim.base_url))

    await downloader_for(sim).download(url, tmp_path / "a.mp4", max_bytes=100_000)

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
    tmp_path: Path,
) -> None:
    damaged = bytearray(SAMPLE_MP4)
    damaged[5_000:9_000] = bytes(4_000)  # inside the frames: every box still adds up
    sim = await simulator_factory(video_bytes=bytes(damaged))
    url = await finished_video_url(segmind_client_factory(sim.base_url))

    with pytest.raises(DownloadNotAVideo) as info:
        await downloader_for(sim).download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert "ffmpeg could not decode it" in info.value.detail
    assert list(tmp_path.iterdir()) == []


# --- only safe URLs, hop by hop ------------------------------------------------------------
#
# The simulator runs on 127.0.0.1, a loopback address: its own origin is trusted (it is
# SEGMIND_BASE_URL), nothing else there is. Redirects are scripted with ``inject``.


def redirect(
    simulator: SegmindSimulator, location: str, *, times: int = 1, status: int = 302
) -> None:
    simulator.inject("download", status=status, headers={"Location": location}, times=times)


def assert_refused_final(error: DownloadRefused) -> None:
    """Final: not one of the errors the runner tries a download again after."""
    assert not isinstance(error, (SegmindUnavailable, SegmindServerError))
    assert "Clips are fetched only over http(s) from public addresses" in error.detail


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_within_segminds_origin_is_followed_relative_location_resolved(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
    status: int,
) -> None:
    url = await finished_video_url(segmind_client)
    file_name = url.rsplit("/", 1)[1]
    redirect(simulator, f"{file_name}?edge=2", status=status)  # relative to /files/

    size = await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert size == len(SAMPLE_MP4)
    assert [call.path for call in simulator.calls_to("download")] == [f"/files/{file_name}"] * 2


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://127.0.0.1/clip.mp4", "gopher://127.0.0.1:70/_x"]
)
async def test_a_redirect_to_another_scheme_is_refused(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
    location: str,
) -> None:
    url = await finished_video_url(segmind_client)
    redirect(simulator, location)

    with pytest.raises(DownloadRefused) as info:
        await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert "is not http or https" in info.value.detail
    assert_refused_final(info.value)
    assert list(tmp_path.iterdir()) == []


async def test_a_redirect_loop_is_refused(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    url = await finished_video_url(segmind_client)
    redirect(simulator, f"{url}?via=edge")  # A -> B
    redirect(simulator, url)  # B -> A

    with pytest.raises(DownloadRefused) as info:
        await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert "the redirects loop back to it" in info.value.detail
    assert len(simulator.calls_to("download")) == 2
    assert_refused_final(info.value)


async def test_more_redirects_than_the_maximum_are_refused(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    url = await finished_video_url(segmind_client)
    for hop in range(1, MAX_REDIRECTS + 2):
        redirect(simulator, f"{url}?hop={hop}")

    with pytest.raises(DownloadRefused) as info:
        await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert f"after more than {MAX_REDIRECTS} redirects" in info.value.detail
    assert len(simulator.calls_to("download")) == MAX_REDIRECTS + 1
    assert_refused_final(info.value)


async def test_exactly_the_maximum_of_redirects_is_followed(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    url = await finished_video_url(segmind_client)
    for hop in range(1, MAX_REDIRECTS + 1):
        redirect(simulator, f"{url}?hop={hop}")

    assert await downloader.download(url, tmp_path / "a.mp4", max_bytes=10**7) == len(SAMPLE_MP4)


async def test_a_redirect_to_another_port_on_the_same_loopback_address_is_refused(
    simulator_factory: SimulatorFactory,
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    """Only SEGMIND_BASE_URL's own origin is trusted on loopback, not its whole address."""
    other = await simulator_factory()
    url = await finished_video_url(segmind_client)
    redirect(simulator, url.replace(simulator.base_url, other.base_url))

    with pytest.raises(DownloadRefused) as info:
        await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert "127.0.0.1 is a loopback address" in info.value.detail
    assert other.calls == []  # refused before connecting
    assert_refused_final(info.value)


async def test_a_redirect_to_another_name_for_loopback_is_refused_when_resolved(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    """``localhost`` is a name: the connection's own lookup finds loopback and refuses it."""
    url = await finished_video_url(segmind_client)
    redirect(simulator, url.replace("://127.0.0.1:", "://localhost:"))

    with pytest.raises(DownloadRefused) as info:
        await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert "localhost resolves to" in info.value.detail
    assert "a loopback address" in info.value.detail
    assert len(simulator.calls_to("download")) == 1  # the redirect, never the second request
    assert_refused_final(info.value)


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("10.1.2.3", "10.1.2.3 is a private address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1 is a loopback address"),
        ("[::1]", "::1 is a loopback address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),
        ("2130706433", "2130706433 is an IPv4 address in a non-standard form"),
    ],
)
async def test_a_redirect_to_a_non_public_address_is_refused_before_connecting(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
    host: str,
    reason: str,
) -> None:
    url = await finished_video_url(segmind_client)
    redirect(simulator, f"http://{host}/latest/meta-data/?X-Amz-Signature=s3cr3t")

    with pytest.raises(DownloadRefused) as info:
        await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000, timeout=5)

    assert reason in info.value.detail
    assert "s3cr3t" not in info.value.detail
    assert_refused_final(info.value)


async def test_a_redirect_without_a_location_is_a_server_error_tried_again(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
) -> None:
    url = await finished_video_url(segmind_client)
    simulator.inject("download", status=302)

    with pytest.raises(SegmindServerError) as info:
        await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert "redirect without a Location" in info.value.detail


async def test_a_link_to_loopback_is_refused_unless_it_is_segminds_own_origin(
    simulator: SegmindSimulator, segmind_client: SegmindClient, tmp_path: Path
) -> None:
    url = await finished_video_url(segmind_client)

    with pytest.raises(DownloadRefused) as info:
        await clip_downloader().download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    assert "127.0.0.1 is a loopback address" in info.value.detail
    assert simulator.calls_to("download") == []
    assert list(tmp_path.iterdir()) == []


async def test_the_connection_uses_the_addresses_that_were_checked(
    simulator: SegmindSimulator, segmind_client: SegmindClient, tmp_path: Path
) -> None:
    """A name is checked by the connector's own lookup, so no other answer is connected to."""
    url = await finished_video_url(segmind_client)
    port = simulator.base_url.rsplit(":", 1)[1]
    cdn_url = url.replace(simulator.base_url, f"http://cdn.test:{port}")
    hosts = HostsResolver({"cdn.test": ["127.0.0.1"]})

    with pytest.raises(DownloadRefused) as info:
        await clip_downloader(resolver=hosts).download(cdn_url, tmp_path / "a.mp4", max_bytes=10**7)
    assert "cdn.test resolves to 127.0.0.1, a loopback address" in info.value.detail
    assert simulator.calls_to("download") == []

    # The same lookup, trusted as Segmind's own origin, is the one the connection uses.
    trusting = clip_downloader(trusted_base_url=f"http://cdn.test:{port}", resolver=hosts)
    assert await trusting.download(cdn_url, tmp_path / "a.mp4", max_bytes=10**7) == len(SAMPLE_MP4)
    assert hosts.lookups == ["cdn.test", "cdn.test"]


async def test_a_refusal_is_logged_for_the_operator_without_the_signature(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="services.download")
    url = await finished_video_url(segmind_client)
    redirect(simulator, "http://192.168.1.1/clip.mp4?sig=s3cr3t")

    with pytest.raises(DownloadRefused):
        await downloader.download(url, tmp_path / "a.mp4", max_bytes=10_000_000)

    (record,) = [r for r in caplog.records if r.name == "services.download"]
    assert record.levelno == logging.WARNING
    assert "download refused: http://192.168.1.1/clip.mp4" in record.getMessage()
    assert "s3cr3t" not in caplog.text


def test_the_simulators_sample_clip_looks_like_an_mp4() -> None:
    assert SAMPLE_MP4[4:8] == b"ftyp"


async def test_many_clips_finishing_together_are_decoded_a_few_at_a_time(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    downloader: ClipDownloader,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """500 ffmpeg decodes at once took every core for seconds: the event loop waited too."""
    import services.download as download_module

    running = peak = 0

    async def decoding(path: Path) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    monkeypatch.setattr(download_module, "decode_problem", decoding)
    url = await finished_video_url(segmind_client)

    await asyncio.gather(
        *(downloader.download(url, tmp_path / f"{n}.mp4", max_bytes=10_000_000) for n in range(12))
    )

    assert peak == download_module.decode_slots()
    assert all((tmp_path / f"{n}.mp4").read_bytes() == SAMPLE_MP4 for n in range(12))
