"""Fetch a finished clip from Segmind's CDN to disk: atomically, within a size cap, whole MP4s only.

The link in a result points at a CDN, not at the API, so this module never sees the API
key: the code that holds it is ``services.segmind`` alone. Failures are the same typed
errors the client raises, so the runner treats both alike: an expired link
(403/404/410) is ``SegmindRequestExpired``; a 5xx, a dropped connection or a body that is
not a whole video (an error page served with a 200, a transfer cut short) is worth
another try.

A body that ends when the connection closes, with no ``Content-Length`` to compare, looks
complete to HTTP even when it was cut short; so a clip is accepted only once its MP4
boxes add up to the file (``services.mp4``) and ffmpeg decodes every frame of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import aiohttp
from aiohttp import hdrs
from aiohttp.abc import AbstractResolver
from yarl import URL

from services.errors import (
    ClipStorageError,
    DownloadNotAVideo,
    DownloadTooLarge,
    SegmindError,
    SegmindMalformedResponse,
    SegmindRequestExpired,
    SegmindServerError,
    SegmindUnavailable,
)
from services.http_text import (
    MAX_ERROR_BODY,
    body_text,
    cut,
    is_http_url,
    read_capped,
    without_query,
)
from services.mp4 import structure_problem
from services.transcode import TranscodeFailed, decode_problem
from services.url_policy import AddressRefused, FetchPolicy, GuardedResolver

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0  # for the whole transfer: a stalled CDN must not hold a job forever
# A CDN redirects once or twice (to a regional edge, a signed URL); more is a loop or a trap.
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_EXPIRED_STATUSES = frozenset({403, 404, 410})  # how CDNs answer an expired link
# Content types no video is served as: a CDN or proxy error page with a 200.
_NOT_VIDEO_TYPES = ("text/", "application/json")
# The box types an MP4 (ISO-BMFF / QuickTime) may open with; bytes 4..8 of the file.
_MP4_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})
_BOX_HEADER = 8


def decode_slots() -> int:
    """How many clips are checked by ffmpeg at once: half the cores, leaving the rest to
    the bot (at least one)."""
    return max(1, (os.cpu_count() or 2) // 2)


class DownloadRefused(SegmindMalformedResponse):
    """The clip's link, or a redirect from it, leads where the bot never fetches from.

    Not http(s), a private or local address, a redirect loop or too many redirects
    (``services.url_policy``): final, as another try would be refused the same way.
    """

    user_message = (
        "The video was made, but its download link pointed somewhere the bot does not "
        "fetch from, so it could not be delivered. The bot's log says where."
    )


class ClipDownloader:
    """Downloads clips over connections of its own, which reach only what FetchPolicy allows.

    One session, opened at the first download and ended by ``close``, whose connector
    resolves through ``GuardedResolver`` (no DNS cache: every new connection is checked; a
    kept-alive one stays on the address checked when it opened), keeps no cookies, takes no
    proxy from the environment and sends no default headers: it never carries the API key.
    Redirects are followed here, one checked hop at a time, never by aiohttp.
    """

    def __init__(
        self, *, trusted_base_url: str | None = None, resolver: AbstractResolver | None = None
    ) -> None:
        """``trusted_base_url`` is SEGMIND_BASE_URL: its own origin may be on any address.

        ``resolver`` does the name lookups under the guard (aiohttp's default when None).
        """
        self._policy = FetchPolicy.trusting(trusted_base_url)
        self._resolver = resolver
        # Each check is an ffmpeg decoding the whole clip: hundreds of clips finishing
        # together started hundreds at once, which took every core for seconds, and the
        # bot's own event loop (answers to Discord among its work) waited for a core.
        self._decode_slots = asyncio.Semaphore(decode_slots())
        # A session and a TCP connection per download cost the bot ~2 ms of CPU per clip.
        self._session: aiohttp.ClientSession | None = None
        self._guard: GuardedResolver | None = None

    def __repr__(self) -> str:
        return f"ClipDownloader(trusted={self._policy.describe_trusted()!r})"

    async def download(
        self, url: str, dest: Path, *, max_bytes: int, timeout: float = DEFAULT_TIMEOUT
    ) -> int:
        """Stream the MP4 at ``url`` to ``dest`` atomically; return the bytes written.

        A partial file never stays behind, and an existing ``dest`` is only ever replaced
        by a whole clip: one whose boxes add up and that ffmpeg decodes. A URL the policy
        refuses, at the start or after a redirect, raises ``DownloadRefused``: final.
        """
        if not is_http_url(url):
            raise self._refused(url, "it is not an absolute http(s) URL")
        problem = self._policy.refusal(URL(url))
        if problem is not None:
            raise self._refused(url, problem)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Same directory, so the final rename is atomic and a reader never sees half a file;
        # the hidden ".<name>.*.part" name is what ClipFiles.sweep recognises as unfinished.
        try:
            fd, temp_name = tempfile.mkstemp(
                dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"
            )
        except OSError as exc:
            raise _disk_error(dest, exc) from exc
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                written = await self._stream(url, out, max_bytes=max_bytes, timeout=timeout)
            async with self._decode_slots:
                await _refuse_broken(temp, without_query(url))
            os.replace(temp, dest)
        except BaseException as exc:
            temp.unlink(missing_ok=True)
            if isinstance(exc, OSError):  # the network's errors arrive typed: this is the disk
                raise _disk_error(dest, exc) from exc
            raise
        log.info("downloaded bytes=%d to=%s", written, dest.name)
        return written

    async def _stream(self, url: str, out: BinaryIO, *, max_bytes: int, timeout: float) -> int:
        hops = [URL(url)]  # every URL requested, the current one last
        try:
            async with asyncio.timeout(timeout):
                session = self._open_session()
                while True:
                    async with session.get(
                        hops[-1],
                        allow_redirects=False,
                        timeout=aiohttp.ClientTimeout(total=timeout),
                    ) as resp:
                        if resp.status in _REDIRECT_STATUSES:
                            hops.append(self._next_hop(resp, hops))
                            continue
                        return await _receive(resp, out, max_bytes, without_query(str(resp.url)))
        except (TimeoutError, aiohttp.ClientError) as exc:
            current = str(hops[-1])
            refused = getattr(exc, "os_error", None)
            if isinstance(refused, AddressRefused):
                raise self._refused(current, refused.reason) from exc
            # An aiohttp error may quote a URL: the shown forms drop their signatures.
            text = f"{type(exc).__name__}: {exc}"
            for hop in hops:
                text = text.replace(str(hop), without_query(str(hop)))
            shown = without_query(current)
            raise SegmindUnavailable(detail=f"download {shown} failed: {cut(text)}") from exc

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._guard = GuardedResolver(self._policy, self._resolver)
            self._session = aiohttp.ClientSession(
                # No cap on connections, as when each download had its own: clips finishing
                # together must not queue behind one another's transfers.
                connector=aiohttp.TCPConnector(resolver=self._guard, use_dns_cache=False, limit=0),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        """End the downloads' connections (at shutdown); a later download opens new ones."""
        session, guard = self._session, self._guard
        self._session = self._guard = None
        try:
            if session is not None:
                await session.close()
        finally:
            if guard is not None:
                await guard.close()

    def _next_hop(self, resp: aiohttp.ClientResponse, hops: list[URL]) -> URL:
        """Where a redirect leads, once the policy allows it; relative locations resolved."""
        shown = without_query(str(resp.url))
        location = resp.headers.get(hdrs.LOCATION)
        if not location:
            raise SegmindServerError(
                detail=f"download {shown}: HTTP {resp.status} redirect without a Location",
                status=resp.status,
            )
        try:
            target = resp.url.join(URL(location))
        except (ValueError, TypeError):
            raise self._refused(str(resp.url), "it redirects to an unreadable Location") from None
        if target.with_fragment(None) in {hop.with_fragment(None) for hop in hops}:
            raise self._refused(str(target), "the redirects loop back to it")
        if len(hops) > MAX_REDIRECTS:
            raise self._refused(
                str(target), f"it is reached after more than {MAX_REDIRECTS} redirects"
            )
        problem = self._policy.refusal(target)
        if problem is not None:
            raise self._refused(str(target), f"a redirect from {shown} leads to it, and {problem}")
        return target

    def _refused(self, url: str, reason: str) -> DownloadRefused:
        """A final refusal, logged for the operator: the URL (signature dropped) and why."""
        detail = (
            f"download refused: {without_query(url)}: {reason}. Clips are fetched only over "
            "http(s) from public addresses, or from SEGMIND_BASE_URL's own origin "
            f"({self._policy.describe_trusted()})"
        )
        log.warning("%s", detail)
        return DownloadRefused(detail=detail)


async def _receive(resp: aiohttp.ClientResponse, out: BinaryIO, max_bytes: int, shown: str) -> int:
    """The final answer of a download: its status, announced size and type checked, then copied."""
    if not 200 <= resp.status < 300:
        body = await read_capped(resp, MAX_ERROR_BODY)
        raise _status_error(resp.status, body, shown)
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise DownloadTooLarge(
            detail=f"download: {resp.content_length} bytes announced, cap {max_bytes}"
        )
    _refuse_non_video_type(resp, shown)
    return await _copy_checked(resp, out, max_bytes=max_bytes, shown_url=shown)


async def _copy_checked(
    resp: aiohttp.ClientResponse, out: BinaryIO, *, max_bytes: int, shown_url: str
) -> int:
    """Copy the body within the cap, refusing it as soon as its first box is not an MP4's."""
    written = 0
    head = b""
    async for chunk in resp.content.iter_chunked(_CHUNK):
        written += len(chunk)
        if written > max_bytes:
            raise DownloadTooLarge(detail=f"download: over the {max_bytes}-byte cap")
        if len(head) < _BOX_HEADER:
            head += chunk[: _BOX_HEADER - len(head)]
            if len(head) == _BOX_HEADER:
                _refuse_non_mp4(head, resp.status, shown_url)  # before reading on
        # Plain file writes: 64 KiB to local disk takes microseconds.
        out.write(chunk)
    if len(head) < _BOX_HEADER:
        _refuse_non_mp4(head, resp.status, shown_url)
    return written


async def _refuse_broken(path: Path, shown_url: str) -> None:
    """Refuse a clip that is not whole: boxes that do not add up, or frames ffmpeg cannot decode.

    Both run off the event loop (a thread reads the box headers; ffmpeg is a process).
    """
    problem = await asyncio.to_thread(structure_problem, path)
    if problem is None:
        try:
            problem = await decode_problem(path)
        except TimeoutError:
            problem = "ffmpeg did not finish decoding it in time"
        except TranscodeFailed as error:
            # Without ffmpeg the box check alone still catches a transfer cut short.
            log.warning("download %s: not decoded to check it (%s)", shown_url, error)
    if problem is not None:
        raise DownloadNotAVideo(detail=f"download {shown_url}: not a whole MP4: {problem}")


def _status_error(status: int, body: bytes, shown_url: str) -> SegmindError:
    detail = f"download {shown_url}: HTTP {status}: {cut(body_text(body)) or '(empty body)'}"
    if status in _EXPIRED_STATUSES:
        return SegmindRequestExpired(detail=detail, status=status)
    return SegmindServerError(detail=detail, status=status)


def _refuse_non_video_type(resp: aiohttp.ClientResponse, shown_url: str) -> None:
    """An error page served with a 200 (a CDN's or a captive proxy's) is not the clip."""
    content_type = resp.content_type.lower()
    if content_type.startswith(_NOT_VIDEO_TYPES) or content_type.endswith("+json"):
        raise DownloadNotAVideo(
            detail=f"download {shown_url}: HTTP {resp.status} is {content_type}, not a video",
            status=resp.status,
        )


def _refuse_non_mp4(head: bytes, status: int, shown_url: str) -> None:
    """Refuse a body whose first ISO-BMFF box type (bytes 4..8) no MP4 begins with."""
    if not head:
        problem = "is empty"
    elif head[4:_BOX_HEADER] not in _MP4_FIRST_BOXES:
        problem = f"does not start like an MP4 (first bytes {head.hex()})"
    else:
        return
    raise DownloadNotAVideo(detail=f"download {shown_url}: HTTP {status} {problem}", status=status)


def _disk_error(dest: Path, exc: OSError) -> ClipStorageError:
    return ClipStorageError(detail=f"cannot write the clip in {dest.parent}: {exc.strerror or exc}")
