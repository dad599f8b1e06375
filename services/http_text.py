"""Reading HTTP answers safely: capped bodies, and text from them fit to log or show.

Shared by the Segmind client and the clip downloader; neither a key nor any other
secret is known here, so scrubbing one stays with the client that holds it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
from yarl import URL

MAX_ERROR_BODY = 64 * 1024  # an error page is only read for an excerpt
EXCERPT_CHARS = 300

_SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read at most ``limit`` bytes of the body; the rest is dropped with the connection."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(16 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def parse_json(body: bytes) -> Any:
    """The body as JSON, or None when it is not JSON this process can read.

    Nesting deep enough to exhaust the interpreter's recursion limit is one way not to be
    readable (``json.loads`` then raises ``RecursionError``, not ``ValueError``): a body is
    data from outside, and no shape of it may escape as an error nobody expects.
    """
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def clean_text(text: str) -> str:
    """Printable, single-spaced text without markup, as safe to log as to show."""
    text = _SCRIPT_OR_STYLE.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())


def body_text(body: bytes) -> str:
    """An error body as clean text, not yet cut: a secret must be scrubbed before cutting."""
    return clean_text(body[:MAX_ERROR_BODY].decode("utf-8", errors="replace"))


def cut(text: str, limit: int = EXCERPT_CHARS) -> str:
    return text[: limit - 1] + "…" if len(text) > limit else text


def is_http_url(text: str) -> bool:
    try:
        url = URL(text)
    except (ValueError, TypeError):
        return False
    return url.scheme in ("http", "https") and bool(url.host)


def without_query(url: str) -> str:
    """The URL without credentials, query or fragment: signatures and passwords stay out of logs."""
    try:
        return str(URL(url).with_user(None).with_query(None).with_fragment(None))
    except (ValueError, TypeError):
        return "(invalid URL)"
