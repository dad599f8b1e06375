"""HTTP answers shaped exactly like Discord's.

discord.py decodes a body as JSON only when Content-Type is exactly `application/json`
(`json_or_text` compares the whole header), and Discord sends it without a charset, so
aiohttp's `web.json_response` (which adds `; charset=utf-8`) would make every answer a string.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .messages import MessageBody

BODY_KEY: web.RequestKey[MessageBody] = web.RequestKey("fake_discord_body", MessageBody)


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer with the bare `application/json` content type Discord uses."""
    body = json.dumps(data, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, headers=headers, content_type="application/json")
