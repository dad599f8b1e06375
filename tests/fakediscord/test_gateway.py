"""The gateway protocol byte for byte, with a raw websocket client instead of discord.py."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest

from tests.fakediscord import FakeDiscord, FakeWorld, gateway, running_client

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


def two_shard_world() -> FakeWorld:
    """The default world plus one guild on each of two shards, each with #general."""
    world = FakeWorld.default()
    for shard in (0, 1):
        world.add_guild(f"Shard {shard} Guild", shard=(shard, 2)).add_text_channel("general")
    return world


async def identify_shard(
    session: aiohttp.ClientSession, fake: FakeDiscord, shard: Any
) -> tuple[RawGateway, dict[str, Any], list[int]]:
    """Connect and identify as `shard`; the READY payload and the guild ids created."""
    gw = await connect(session, fake)
    await gw.receive()
    await gw.send(
        2,
        {
            "token": fake.world.token,
            "intents": GUILDS,
            "properties": {"os": "linux", "browser": "raw", "device": "raw"},
            "shard": shard,
        },
    )
    ready = (await gw.receive())["d"]
    created = [int((await gw.receive())["d"]["id"]) for _ in ready["guilds"]]
    return gw, ready, created


def on_shard(world: FakeWorld, shard: int, count: int) -> list[int]:
    return [g.id for g in world.guilds if (g.id >> 22) % count == shard]


async def test_each_shard_gets_only_its_guilds(session: aiohttp.ClientSession):
    world = two_shard_world()
    fake = FakeDiscord(world)
    await fake.start()
    try:
        _, ready0, created0 = await identify_shard(session, fake, [0, 2])
        _, ready1, created1 = await identify_shard(session, fake, [1, 2])
    finally:
        await fake.stop()
    assert ready0["shard"] == [0, 2] and ready1["shard"] == [1, 2]
    assert [int(g["id"]) for g in ready0["guilds"]] == created0 == on_shard(world, 0, 2)
    assert [int(g["id"]) for g in ready1["guilds"]] == created1 == on_shard(world, 1, 2)
    assert created0 and created1 and not set(created0) & set(created1)


async def test_guild_events_reach_only_their_shard_and_guildless_ones_only_shard_zero(
    session: aiohttp.ClientSession,
):
    world = two_shard_world()
    fake = FakeDiscord(world)
    await fake.start()
    try:
        shard0, _, _ = await identify_shard(session, fake, [0, 2])
        shard1, _, _ = await identify_shard(session, fake, [1, 2])
        guild1 = world.guilds[-1]  # "Shard 1 Guild"
        await fake.dispatch_event("CHANNEL_UPDATE", {"id": "5", "guild_id": str(guild1.id)})
        await fake.dispatch_event("GUILD_DELETE", {"id": str(guild1.id)})
        await fake.dispatch_event("CHANNEL_PINS_UPDATE", {"channel_id": "7"})  # a DM's event
        to_shard1 = [(await shard1.receive())["t"] for _ in range(2)]
        to_shard0 = await shard0.receive()
        with pytest.raises(TimeoutError):
            await shard0.ws.receive(timeout=0.2)
        with pytest.raises(TimeoutError):
            await shard1.ws.receive(timeout=0.2)
    finally:
        await fake.stop()
    assert to_shard1 == ["CHANNEL_UPDATE", "GUILD_DELETE"]
    assert to_shard0["t"] == "CHANNEL_PINS_UPDATE"


async def test_an_interaction_reaches_the_connection_of_its_guilds_shard(
    session: aiohttp.ClientSession,
):
    world = two_shard_world()
    fake = FakeDiscord(world)
    await fake.start()
    try:
        shard0, _, _ = await identify_shard(session, fake, [0, 2])
        shard1, _, _ = await identify_shard(session, fake, [1, 2])
        answer = await session.put(
            f"{fake.api_base}/applications/{world.application_id}/commands",
            json=[{"name": "ping", "description": "Ping", "type": 1}],
            headers={"Authorization": f"Bot {world.token}"},
        )
        assert answer.status == 200
        guild1 = world.guilds[-1]  # "Shard 1 Guild"
        carol = guild1.add_member("carol")
        record = await fake.dispatch_slash_command(
            "ping", {}, user=carol, channel=guild1.channels[0]
        )
        event = await shard1.receive()
        with pytest.raises(TimeoutError):
            await shard0.ws.receive(timeout=0.2)
    finally:
        await fake.stop()
    assert event["t"] == "INTERACTION_CREATE" and event["d"]["id"] == str(record.id)


@pytest.mark.parametrize("shard", [[2, 2], [-1, 2], [0, 0], [0], "0,1", [0, True]])
async def test_a_bad_shard_is_closed_with_4010(
    fake_discord: FakeDiscord, session: aiohttp.ClientSession, shard: Any
):
    gw = await connect(session, fake_discord)
    await gw.receive()
    await gw.send(2, {"token": fake_discord.world.token, "intents": GUILDS, "shard": shard})
    with pytest.raises(ConnectionError):
        await gw.receive()
    assert gw.ws.close_code == 4010


async def test_too_few_shards_for_the_guilds_is_closed_with_4011(
    fake_discord: FakeDiscord, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(gateway, "MAX_GUILDS_PER_SHARD", 1)
    fake_discord.world.add_guild("Second")
    gw = await connect(session, fake_discord)
    await gw.receive()
    await gw.send(2, {"token": fake_discord.world.token, "intents": GUILDS, "shard": [0, 1]})
    with pytest.raises(ConnectionError):
        await gw.receive()
    assert gw.ws.close_code == 4011


async def test_gateway_bot_gives_the_url_shards_and_session_start_limit(
    fake_discord: FakeDiscord, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(gateway, "RECOMMENDED_GUILDS_PER_SHARD", 1)
    fake_discord.world.add_guild("Second")
    gw = await connect(session, fake_discord)
    await gw.receive()
    await gw.identify(fake_discord.world.token, GUILDS)
    await gw.receive()
    answer = await session.get(
        f"{fake_discord.api_base}/gateway/bot",
        headers={"Authorization": f"Bot {fake_discord.world.token}"},
    )
    assert answer.status == 200
    assert await answer.json() == {
        "url": fake_discord.gateway_url,
        "shards": 2,
        "session_start_limit": {
            "total": 1000,
            "remaining": 999,
            "reset_after": 86_400_000,
            "max_concurrency": 1,
        },
    }


async def test_discord_py_auto_sharding_connects_every_recommended_shard(
    fake_discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
):
    # Without shard_count, AutoShardedClient asks GET /gateway/bot and connects from its URL.
    monkeypatch.setattr(gateway, "RECOMMENDED_GUILDS_PER_SHARD", 1)
    fake_discord.world.add_guild("Second", shard=(1, 2))
    fake_discord.world.guilds[0:1] = []
    fake_discord.world.add_guild("First", shard=(0, 2))
    client = discord.AutoShardedClient(intents=discord.Intents.none(), guild_ready_timeout=0.05)
    # Discord allows one IDENTIFY per 5 s per bucket; the fake does not enforce it.
    monkeypatch.setattr(client, "before_identify_hook", _no_wait)
    async with running_client(client, fake_discord):
        assert client.shard_count == 2
        assert sorted(g.shard_id for g in client.guilds) == [0, 1]
    assert [p["shard"] for p in fake_discord.gateway.identify_payloads] == [[0, 2], [1, 2]]
    assert fake_discord.calls_to("GET /gateway/bot")


async def _no_wait(shard_id: int | None, *, initial: bool = False) -> None:
    return None
