"""Edits that keep the buttons make exactly the request discord.py's own calls make.

``MemberRoutes.edit_by_webhook`` / ``edit_in_channel`` call discord.py's request layer
directly to skip building a ``Message`` from the answer. Each is compared with the public
call it stands for (``Webhook.edit_message``, ``PartialMessage.edit``) at the layer both
go through, so an upgrade of discord.py that changes what those send fails here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord
import pytest
from discord.http import HTTPClient
from discord.webhook.async_ import AsyncWebhookAdapter

from cogs.video.buttons import KEEP_BUTTONS
from cogs.video.routes import MemberRoutes
from services.models import Job, JobState, VideoRequest

CHANNEL, MESSAGE, APPLICATION = 2, 5, 77


def answer() -> dict[str, Any]:
    """Discord's answer to an edit: the message, which only the public calls read."""
    author = {"id": "9", "username": "bot", "discriminator": "0", "avatar": None, "bot": True}
    return {
        "id": str(MESSAGE),
        "channel_id": str(CHANNEL),
        "type": 0,
        "content": "",
        "author": author,
        "attachments": [],
        "embeds": [],
        "mentions": [],
        "mention_roles": [],
        "pinned": False,
        "mention_everyone": False,
        "tts": False,
        "timestamp": "2026-01-01T00:00:00+00:00",
        "edited_timestamp": None,
        "flags": 0,
        "components": [],
        "webhook_id": str(APPLICATION),
    }


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every request as discord.py's two request functions receive it (Discord is not here)."""
    seen: list[tuple[Any, ...]] = []

    async def webhook_request(self: Any, route: Any, session: Any, **kw: Any) -> Any:
        payload = json.dumps(kw.get("payload"), sort_keys=True)
        files = bool(kw.get("files")) or bool(kw.get("multipart"))
        seen.append(
            ("webhook", route.method, route.url, route.key, payload, kw.get("params"), files)
        )
        return answer()

    async def bot_request(self: Any, route: Any, **kw: Any) -> Any:
        body = json.dumps(kw.pop("json", None), sort_keys=True)
        seen.append(("channel", route.method, route.url, route.key, body, sorted(kw)))
        return answer()

    monkeypatch.setattr(AsyncWebhookAdapter, "request", webhook_request)
    monkeypatch.setattr(HTTPClient, "request", bot_request)
    return seen


@pytest.fixture(params=["none", "default", "custom"])
async def routes(request: pytest.FixtureRequest) -> AsyncIterator[MemberRoutes]:
    mentions = {
        "none": discord.AllowedMentions.none(),
        "default": None,
        "custom": discord.AllowedMentions(everyone=False, users=True),
    }[request.param]
    client = discord.Client(intents=discord.Intents.none(), allowed_mentions=mentions)
    session = aiohttp.ClientSession()
    client.http._HTTPClient__session = session  # type: ignore[attr-defined]
    client.services = SimpleNamespace(clock=SimpleNamespace(time=lambda: 100.0))  # type: ignore[attr-defined]
    try:
        yield MemberRoutes(client)  # type: ignore[arg-type]
    finally:
        await session.close()


def job() -> Job:
    return Job(
        id=1,
        guild_id=3,
        channel_id=CHANNEL,
        user_id=4,
        request=VideoRequest.create("a fox", seed=1),
        state=JobState.PROCESSING,
        created_at=0,
        message_id=MESSAGE,
        interaction_token="token",
        interaction_created_at=90.0,
        application_id=APPLICATION,
    )


def embed() -> discord.Embed:
    return discord.Embed(title="a fox", description="@everyone").add_field(name="a", value="b")


@pytest.mark.parametrize("embed_links", [True, False], ids=["embed", "folded-text"])
async def test_a_kept_buttons_edit_is_the_request_discord_py_makes(
    routes: MemberRoutes,
    requests: list[tuple[Any, ...]],
    monkeypatch: pytest.MonkeyPatch,
    embed_links: bool,
) -> None:
    monkeypatch.setattr(routes, "can_embed", lambda job: embed_links)
    await routes.webhook(job()).edit_message(MESSAGE, embed=embed())
    await routes.edit_by_webhook(job(), MESSAGE, embed(), KEEP_BUTTONS)
    body = routes.channel_body(job(), None, embed())
    await routes.channel(job()).get_partial_message(MESSAGE).edit(**body)
    await routes.edit_in_channel(job(), MESSAGE, embed(), KEEP_BUTTONS)

    public_webhook, lean_webhook, public_channel, lean_channel = requests
    assert lean_webhook == public_webhook
    assert lean_channel == public_channel
    assert public_webhook[1] == public_channel[1] == "PATCH"
