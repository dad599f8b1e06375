"""The gateway protocol byte for byte, with a raw websocket client instead of discord.py."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakediscord import FakeDiscord

GUILDS, GUILD_MESSAGES = 1 << 0, 1 << 9
SYNC_FLUSH_SUFFIX = b"\x00\x00\xff\xff"


class RawGateway:
    """A minimal gateway client that decodes zlib-stream like discord.py does."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.inflater = zlib.decompressobj()
        self.raw_frames: list[bytes] = []

    async def receive(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=2)
        if msg.type == aiohttp.WSMsgType.BINARY:
            self.raw_frames.append(msg.data)
            assert msg.data.endswith(SYNC_FLUSH_SUFFIX)
            return json.loads(self.inflater.decompress(msg.data))
        if msg.type == aiohttp.WSMsgType.TEXT:
            return json.loads(msg.data)
        raise ConnectionError(f"closed: {msg.type} {self.ws.close_code}")

    async def send(self, op: int, data: Any) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": data}))

    async def identify(self, token: str, intents: int) -> None:
        await self.send(
            2,
            {
                "token": token,
                "intents": intents,
                "properties": {"os": "linux", "browser": "raw", "device": "raw"},
            },
        )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def connect(session: aiohttp.ClientSession, fake: FakeDiscord) -> RawGateway:
    """Connect as discord.py 2.7.1 does here: JSON, zlib-stream transport compression."""
    ws = await session.ws_connect(fake.gateway_url + "?v=10&encoding=json&compress=zlib-stream")
    return RawGateway(ws)


async def test_zlib_stream_hello_heartbeat_ready_and_guild_create(
    fake_discord: FakeDiscord, session: aiohttp.ClientSession
):
    gw = await connect(session, fake_discord)
    hello = await gw.receive()
    assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 41_250
    await gw.send(1, None)
    assert (await gw.receive())["op"] == 11
    await gw.identify(fake_discord.world.token, GUILDS | GUILD_MESSAGES)
    ready = await gw.receive()
    assert (ready["t"], ready["s"]) == ("READY", 1)
    assert ready["d"]["guilds"] == [{"id": str(fake_discord.world.guild.id), "unavailable": True}]
    assert ready["d"]["resume_gateway_url"] == fake_discord.gateway_url
    assert ready["d"]["application"]["id"] == str(fake_discord.world.application_id)
    guild = await gw.receive()
    assert guild["t"] == "GUILD_CREATE" and guild["s"] == 2
    # Without GUILD_PRESENCES only the bot's own member is sent, as on Discord.
    assert [m["user"]["id"] for m in guild["d"]["members"]] == [str(fake_discord.world.bot.id)]
    assert all(frame.endswith(SYNC_FLUSH_SUFFIX) for frame in gw.raw_frames)


@pytest.mark.parametrize(
    ("token", "intents", "code"),
    [
        ("wrong-token", GUILDS, 4004),
        (None, -1, 4013),
    ],
)
async def test_bad_identify_is_closed_with_discords_code(
    fake_discord: FakeDiscord,
    session: aiohttp.ClientSession,
    token: str | None,
    intents: int,
    code: int,
):
    gw = await connect(session, fake_discord)
    await gw.receive()
    await gw.identify(token or fake_discord.world.token, intents)
    with pytest.raises(ConnectionError):
        await gw.receive()
    assert gw.ws.close_code == code


async def test_requests_before_identify_are_refused_with_4003(
    fake_discord: FakeDiscord, session: aiohttp.ClientSession
):
    gw = await connect(session, fake_discord)
    await gw.receive()
    await gw.send(8, {"guild_id": "1", "query": "", "limit": 0})
    with pytest.raises(ConnectionError):
        await gw.receive()
    assert gw.ws.close_code == 4003


async def test_resume_is_refused_so_discord_py_identifies_afresh(
    fake_discord: FakeDiscord, session: aiohttp.ClientSession
):
    gw = await connect(session, fake_discord)
    await gw.receive()
    await gw.send(6, {"token": fake_discord.world.token, "session_id": "old", "seq": 3})
    assert await gw.receive() == {"op": 9, "d": False, "s": None, "t": None}
