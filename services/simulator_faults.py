"""The simulator's scripted misbehaviours: what a test armed, and how each plays out on the wire.

``SegmindSimulator.inject``, ``hang``, ``reset_connection``, ``slow`` and
``cut_download_short`` queue an ``Override`` per route; the route's next calls take them
from here in order, and ``act_out`` answers (or fails to answer) as scripted.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Override:
    """A scripted misbehaviour for the next calls on one route."""

    action: str  # "respond" | "hang" | "reset" | "slow" | "cut"
    times: int
    accept: bool
    status: int = 200
    body: str | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # "slow": seconds (real time, like a slow network) before answering
    keep_bytes: int = 0  # "cut": how much of the clip is sent before the connection closes


async def next_misbehaviour(queue: deque[Override]) -> Override | None:
    """The scripted misbehaviour for this call; a slow answer waits here, then is normal."""
    override = _take(queue)
    if override is not None and override.action == "slow":
        await asyncio.sleep(override.delay)
        return None
    return override


def _take(queue: deque[Override]) -> Override | None:
    if not queue:
        return None
    override = queue[0]
    override.times -= 1
    if override.times == 0:
        queue.popleft()
    return override


async def act_out(
    override: Override, request: web.Request, *, video: bytes, release_hung: asyncio.Event
) -> web.StreamResponse:
    """Answer ``request`` as ``override`` scripts: a canned answer, a cut clip, or none at all."""
    # Read the whole request first, so the client is sure it was sent: the failures
    # below happen after sending, the case a client must never resubmit on.
    await request.read()
    if override.action == "respond":
        return _scripted_response(override)
    if override.action == "cut":
        _send_cut_short(request, video[: override.keep_bytes])
        return web.Response(status=499)  # the connection is closing: aiohttp drops it
    if override.action == "hang":
        await release_hung.wait()
    _drop_connection(request)
    # Nothing can reach the client now; aiohttp discards this answer.
    return web.Response(status=499)


def _scripted_response(override: Override) -> web.Response:
    """The scripted answer, headers as given: a test's Content-Type wins over the guessed one."""
    body = override.body
    headers = dict(override.headers)
    if body is None:
        return web.Response(status=override.status, headers=headers)
    has_type = any(name.lower() == "content-type" for name in headers)
    if isinstance(body, dict):
        # Serialized here: aiohttp's json_response refuses a Content-Type header next to it.
        text = json.dumps(body)
        guessed = "application/json"
    else:
        text = body
        guessed = "text/html" if body.lstrip().startswith("<") else "text/plain"
    if not has_type:
        headers["Content-Type"] = f"{guessed}; charset=utf-8"
    return web.Response(status=override.status, body=text.encode(), headers=headers)


def _send_cut_short(request: web.Request, body: bytes) -> None:
    """A 200 whose body ends when the connection closes: written raw, as aiohttp's own
    response would announce a length or use chunked encoding, which a client checks."""
    transport = request.transport
    if transport is None:
        return
    head = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nConnection: close\r\n\r\n"
    transport.write(head + body)
    transport.close()  # flushes what was written first, then closes: an early, clean end


def _drop_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()
