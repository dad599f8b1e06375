"""The gateway protocol byte for byte, with a raw websocket client instead of discord.py."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakediscord import FakeDiscord

GUILDS, GUILD_MEMBERS, GUILD_MESSAGES = 1 << 0, 1 << 1, 1 << 9
SYNC_FLUSH_SUFFIX = b"\x00\x00\xff\xff"


class RawGateway:
    """A minimal gateway client that decodes zlib-stream like discord.py does."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, compressed: bool) -> None:
        self.ws = ws
        self.compressed = compressed
        self.inflater = zlib.decompressobj()
        self.raw_frames: list[bytes] = []

    async def receive(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=2)
        if msg.type == aiohttp.WSMsgType.BINARY:
            self.raw_frames.append(msg.data)
            if self.compressed:
                assert msg.data.endswith(SYNC_FLUSH_SUFFIX)
                return json.loads(self.inflater.decompress(msg.data))
            return json.loads(zlib.decompress(msg.data))
        if msg.type == aiohttp.WSMsgType.TEXT:
            return json.loads(msg.data)
        raise ConnectionError(f"closed: {msg.type} {self.ws.close_code}")

    async def send(self, op: int, data: Any) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": data}))

    async def identify(self, token: str, intents: int, **extra: Any) -> None:
        await self.send(
            2,
            {
                "token": token,
                "intents": intents,
                "properties": {"os": "linux", "browser": "raw", "device": "raw"},
                **extra,
            },
        )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def connect(
    session: aiohttp.ClientSession,
    fake: FakeDiscord,
    query: str = "?v=10&encoding=json&compress=zlib-stream",
) -> RawGateway:
    ws = await session.ws_connect(fake.gateway_url + query)
    return RawGateway(ws, compressed="compress=" in query)


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


async def test_member_chunk_needs_the_members_intent(
    fake_discord: FakeDiscord, session: aiohttp.ClientSession
):
    gw = await connect(session, fake_discord)
    await gw.receive()
    await gw.identify(fake_discord.world.token, GUILDS | GUILD_MEMBERS)
    await gw.receive(), await gw.receive()
    await gw.send(
        8, {"guild_id": str(fake_discord.world.guild.id), "query": "", "limit": 0, "nonce": "n1"}
    )
    chunk = await gw.receive()
    assert chunk["t"] == "GUILD_MEMBERS_CHUNK" and chunk["d"]["nonce"] == "n1"
    assert len(chunk["d"]["members"]) == len(fake_discord.world.guild.members)


async def test_payload_compression_only_without_transport_compression(
    fake_discord: FakeDiscord, session: aiohttp.ClientSession
):
    gw = await connect(session, fake_discord, "?v=10&encoding=json")
    assert (await gw.receive())["op"] == 10  # HELLO comes before IDENTIFY: plain text
    await gw.identify(fake_discord.world.token, GUILDS, compress=True)
    ready = await gw.receive()
    assert ready["t"] == "READY" and gw.raw_frames  # a whole zlib stream per message


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
