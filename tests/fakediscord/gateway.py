"""The gateway half of the fake: Discord's websocket protocol on the same loopback server.

What it speaks (Discord's Gateway docs, checked against discord.py 2.7.1's gateway.py):
- HELLO (op 10) first; HEARTBEAT (op 1) is answered with HEARTBEAT_ACK (op 11).
- IDENTIFY (op 2) is checked (token 4004, intents 4013, privileged intents the application
  lacks 4014, twice 4005) and answered with READY (guilds unavailable) then one GUILD_CREATE per
  guild carrying only the bot's own member, as Discord sends it without GUILD_PRESENCES.
- RESUME (op 6) is answered with INVALID_SESSION (op 9, d=false), which Discord may always do:
  discord.py then identifies afresh. The fake never drops a connection, so discord.py only
  resumes if a test makes it.
- Transport compression `compress=zlib-stream` (one zlib stream per connection, every message
  ending in the Z_SYNC_FLUSH suffix 00 00 ff ff), which discord.py 2.7.1 asks for unless
  `zstandard` or Python 3.14's `compression.zstd` is importable (neither is here). Any other
  value gets plain text frames, which discord.py reads as well.
- Sharding: IDENTIFY's `shard` [id, count] is honoured. READY lists, and GUILD_CREATE is sent
  for, only the guilds on that shard (`(guild_id >> 22) % count`, Discord's rule); a bad shard
  (not 0 <= id < count) is closed with 4010, and a count leaving more than 2,500 guilds on one
  shard (Discord's ceiling) with 4011. A connection without `shard` is shard 0 of 1.
- Dispatches go to every identified connection whose shard has the event's guild (`guild_id`,
  or `id` for GUILD_* events); events with no guild (DMs) go to shard 0 only. The bot asks only
  for GUILDS, so Discord sends it no message events, and neither does the fake.
- `bot_info()` is GET /gateway/bot: the URL, the recommended shard count (one per 1,000 guilds)
  and the session start limit, which each accepted IDENTIFY spends.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import zlib
from typing import Any

from aiohttp import WSMsgType, web

from . import payloads
from .clock import iso_timestamp
from .records import ChangeNotifier
from .store import Store
from .world import (
    APP_FLAG_GATEWAY_GUILD_MEMBERS,
    APP_FLAG_GATEWAY_GUILD_MEMBERS_LIMITED,
    APP_FLAG_GATEWAY_MESSAGE_CONTENT,
    APP_FLAG_GATEWAY_MESSAGE_CONTENT_LIMITED,
    APP_FLAG_GATEWAY_PRESENCE,
    APP_FLAG_GATEWAY_PRESENCE_LIMITED,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_PRESENCES,
    INTENT_MESSAGE_CONTENT,
    FakeGuild,
    FakeWorld,
)

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE_UPDATE = 0, 1, 2, 3
RESUME, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 9, 10, 11
HEARTBEAT_INTERVAL_MS = 41_250
MAX_GUILDS_PER_SHARD = 2_500  # past this Discord closes with 4011 "Sharding required"
RECOMMENDED_GUILDS_PER_SHARD = 1_000  # what GET /gateway/bot's `shards` is based on
SESSION_START_TOTAL = 1_000  # identifies a day, as Discord grants a bot under 100,000 guilds
DAY_MS = 86_400_000
# Events whose guild is `id`, not `guild_id`.
_GUILD_EVENTS = frozenset({"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"})

_ALL_INTENTS = (1 << 26) - 1
# A privileged intent is allowed by its application flag or the "_LIMITED" one (bots < 100 guilds).
_INTENT_FLAGS = {
    INTENT_GUILD_MEMBERS: APP_FLAG_GATEWAY_GUILD_MEMBERS | APP_FLAG_GATEWAY_GUILD_MEMBERS_LIMITED,
    INTENT_GUILD_PRESENCES: APP_FLAG_GATEWAY_PRESENCE | APP_FLAG_GATEWAY_PRESENCE_LIMITED,
    INTENT_MESSAGE_CONTENT: APP_FLAG_GATEWAY_MESSAGE_CONTENT
    | APP_FLAG_GATEWAY_MESSAGE_CONTENT_LIMITED,
}


class _Connection:
    """One websocket: its compression, its session once identified, and the send lock."""

    def __init__(self, ws: web.WebSocketResponse, zlib_stream: bool) -> None:
        self.ws = ws
        self._compressor = zlib.compressobj() if zlib_stream else None
        self._lock = asyncio.Lock()
        self.session_id: str | None = None
        self.large_threshold = 50
        self.seq = 0
        self.shard = (0, 1)  # [id, count] from IDENTIFY; unsharded, it sees every guild

    def sees(self, guild_id: int | None) -> bool:
        """Whether Discord sends this guild's events here; events with no guild go to shard 0."""
        shard_id, count = self.shard
        if guild_id is None:
            return shard_id == 0
        return (guild_id >> 22) % count == shard_id

    @property
    def identified(self) -> bool:
        return self.session_id is not None and not self.ws.closed

    async def send(self, payload: dict[str, Any]) -> None:
        text = json.dumps(payload, separators=(",", ":"))
        async with self._lock:
            if self.ws.closed:
                return
            if self._compressor is None:
                await self.ws.send_str(text)
            else:
                data = self._compressor.compress(text.encode())
                await self.ws.send_bytes(data + self._compressor.flush(zlib.Z_SYNC_FLUSH))


class Gateway:
    """Serves `/gateway`; `dispatch` pushes events to the connected, identified bot."""

    def __init__(self, store: Store, notifier: ChangeNotifier) -> None:
        self.store = store
        self.notifier = notifier
        self.url = ""
        self.connections: list[_Connection] = []
        self.identify_payloads: list[dict[str, Any]] = []
        self.dispatched: list[str] = []  # event names, for timeout messages
        self.sessions_started = 0  # accepted IDENTIFYs, spent from the session start limit

    @property
    def world(self) -> FakeWorld:
        return self.store.world

    # Connection lifecycle ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One websocket connection, from HELLO to close."""
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True, heartbeat=None)
        await ws.prepare(request)
        conn = _Connection(ws, request.query.get("compress") == "zlib-stream")
        self.connections.append(conn)
        try:
            if request.query.get("v", "10") not in ("9", "10"):
                await ws.close(code=4012, message=b"Invalid API version")
                return ws
            if request.query.get("encoding", "json") != "json":
                await ws.close(code=4002, message=b"Decode error")
                return ws
            await self._send(conn, HELLO, {"heartbeat_interval": HEARTBEAT_INTERVAL_MS})
            await self._receive_loop(conn)
        finally:
            self.connections.remove(conn)
            self.notifier.notify()
        return ws

    async def _receive_loop(self, conn: _Connection) -> None:
        async for msg in conn.ws:
            if msg.type != WSMsgType.TEXT:
                if msg.type == WSMsgType.BINARY:
                    await conn.ws.close(code=4002, message=b"Decode error")
                break
            try:
                frame = json.loads(msg.data)
            except ValueError:
                await conn.ws.close(code=4002, message=b"Decode error")
                break
            await self._handle_op(conn, frame.get("op"), frame.get("d"))

    async def _handle_op(self, conn: _Connection, op: Any, data: Any) -> None:
        if op == HEARTBEAT:
            await self._send(conn, HEARTBEAT_ACK, None)
        elif op == IDENTIFY:
            await self._identify(conn, data or {})
        elif op == RESUME:
            await self._send(conn, INVALID_SESSION, False)
        elif conn.session_id is None:
            await conn.ws.close(code=4003, message=b"Not authenticated")
        elif op == PRESENCE_UPDATE:
            return
        else:
            # REQUEST_GUILD_MEMBERS among others: the bot has no members intent, so never sends it.
            await conn.ws.close(code=4001, message=b"Unknown opcode (not modelled by the fake)")

    # IDENTIFY ------------------------------------------------------------------------------

    async def _identify(self, conn: _Connection, data: dict[str, Any]) -> None:
        self.identify_payloads.append({k: v for k, v in data.items() if k != "token"})
        close = self._identify_problem(conn, data)
        if close is not None:
            await conn.ws.close(code=close[0], message=close[1].encode())
            return
        conn.session_id = secrets.token_hex(16)
        conn.large_threshold = int(data.get("large_threshold", 50))
        if data.get("shard") is not None:
            conn.shard = (data["shard"][0], data["shard"][1])
        self.sessions_started += 1
        await self._dispatch_to(conn, "READY", self._ready_payload(conn, data.get("shard")))
        for guild in self._guilds_of(conn):
            await self._dispatch_to(conn, "GUILD_CREATE", self._guild_create(conn, guild))
        self.notifier.notify()

    def _identify_problem(self, conn: _Connection, data: dict[str, Any]) -> tuple[int, str] | None:
        """Discord's close code and reason for a bad IDENTIFY, or None if it is fine."""
        if conn.session_id is not None:
            return 4005, "Already authenticated"
        if data.get("token") != self.world.token:
            return 4004, "Authentication failed"
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents & ~_ALL_INTENTS:
            return 4013, "Invalid intent(s)"
        for intent, flags in _INTENT_FLAGS.items():
            if intents & intent and not self.world.application_flags & flags:
                return 4014, "Disallowed intent(s)"
        shard = data.get("shard", [0, 1])
        if not (
            isinstance(shard, list)
            and len(shard) == 2
            and all(type(part) is int for part in shard)
            and 0 <= shard[0] < shard[1]
        ):
            return 4010, "Invalid shard"
        if len(self.world.guilds) > shard[1] * MAX_GUILDS_PER_SHARD:
            return 4011, "Sharding required"
        return None

    def _guilds_of(self, conn: _Connection) -> list[FakeGuild]:
        return [guild for guild in self.world.guilds if conn.sees(guild.id)]

    def bot_info(self) -> dict[str, Any]:
        """GET /gateway/bot: where to connect, how many shards, how many identifies are left."""
        recommended = -(-len(self.world.guilds) // RECOMMENDED_GUILDS_PER_SHARD)
        return {
            "url": self.url,
            "shards": max(1, recommended),
            "session_start_limit": {
                "total": SESSION_START_TOTAL,
                "remaining": max(0, SESSION_START_TOTAL - self.sessions_started),
                "reset_after": DAY_MS,
                "max_concurrency": 1,
            },
        }

    def _ready_payload(self, conn: _Connection, shard: Any) -> dict[str, Any]:
        me = payloads.user(self.world.bot)
        me.update({"verified": True, "mfa_enabled": False, "email": None, "flags": 0})
        ready = {
            "v": 10,
            "user": me,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in self._guilds_of(conn)],
            "session_id": conn.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "application": {
                "id": str(self.world.application_id),
                "flags": self.world.application_flags,
            },
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["rotterdam"],
            "user_settings": {},
        }
        if shard is not None:
            ready["shard"] = shard  # Discord echoes it only to a sharded connection
        return ready

    def _guild_create(self, conn: _Connection, guild: FakeGuild) -> dict[str, Any]:
        bot_member = guild.member(self.world.bot.id)
        members = [bot_member] if bot_member else []
        joined = bot_member.joined_at if bot_member else iso_timestamp(0)
        large = len(guild.members) > conn.large_threshold
        return payloads.guild_create(guild, members, large=large, joined_at=joined)

    # Sending -------------------------------------------------------------------------------

    def identified_connections(self) -> list[_Connection]:
        """Connections open and identified right now."""
        return [c for c in self.connections if c.identified]

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an event to every identified connection whose shard has its guild."""
        guild = data.get("id") if event in _GUILD_EVENTS else data.get("guild_id")
        guild_id = int(guild) if guild is not None else None
        for conn in self.identified_connections():
            if conn.sees(guild_id):
                await self._dispatch_to(conn, event, data)

    async def _dispatch_to(self, conn: _Connection, event: str, data: Any) -> None:
        conn.seq += 1
        self.dispatched.append(event)
        await self._send(conn, DISPATCH, data, t=event, s=conn.seq)

    async def _send(
        self, conn: _Connection, op: int, data: Any, *, t: str | None = None, s: int | None = None
    ) -> None:
        await conn.send({"op": op, "d": data, "s": s, "t": t})
        self.notifier.notify()

    async def close_all(self, code: int = 1001) -> None:
        """Close every connection (used at shutdown)."""
        for conn in list(self.connections):
            if not conn.ws.closed:
                await conn.ws.close(code=code, message=b"fake Discord stopping")
