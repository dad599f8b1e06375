"""The gateway half of the fake: Discord's websocket protocol on the same loopback server.

What it speaks (Discord's Gateway docs, checked against discord.py 2.7.1's gateway.py):
- HELLO (op 10) first; HEARTBEAT (op 1) is answered with HEARTBEAT_ACK (op 11).
- IDENTIFY (op 2) is checked (token 4004, intents 4013, privileged intents the application
  lacks 4014, twice 4005) and answered with READY (guilds unavailable) then one GUILD_CREATE per
  guild. Without GUILD_PRESENCES, GUILD_CREATE carries only the bot's own member, as on Discord;
  the rest come from REQUEST_GUILD_MEMBERS (op 8) -> GUILD_MEMBERS_CHUNK.
- RESUME (op 6) replays what the session missed and sends RESUMED; an unknown session gets
  INVALID_SESSION (op 9, d=false).
- Transport compression as asked on the URL: `compress=zlib-stream` (one zlib stream per
  connection, every message ending in the Z_SYNC_FLUSH suffix 00 00 ff ff) or `zstd-stream`
  (when a zstd module is importable). discord.py 2.7.1 asks for zstd-stream only when
  `zstandard` or `compression.zstd` (Python 3.14) is importable, else zlib-stream. IDENTIFY's
  `compress: true` (payload compression) applies only when no transport compression was asked,
  which discord.py never does.
- Dispatches respect intents (GUILD_MESSAGES, DIRECT_MESSAGES, ...) and MESSAGE_CONTENT.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import zlib
from dataclasses import dataclass, field
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
    FakeWorld,
)

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE_UPDATE, VOICE_STATE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_GUILD_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

INTENT_GUILDS = 1 << 0
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_TYPING = 1 << 11
INTENT_DIRECT_MESSAGES = 1 << 12
_ALL_INTENTS = (1 << 26) - 1
# A privileged intent is allowed by its application flag or the "_LIMITED" one (bots < 100 guilds).
_INTENT_FLAGS = {
    INTENT_GUILD_MEMBERS: APP_FLAG_GATEWAY_GUILD_MEMBERS | APP_FLAG_GATEWAY_GUILD_MEMBERS_LIMITED,
    INTENT_GUILD_PRESENCES: APP_FLAG_GATEWAY_PRESENCE | APP_FLAG_GATEWAY_PRESENCE_LIMITED,
    INTENT_MESSAGE_CONTENT: APP_FLAG_GATEWAY_MESSAGE_CONTENT
    | APP_FLAG_GATEWAY_MESSAGE_CONTENT_LIMITED,
}
_GUILD_EVENTS = {
    "GUILD_CREATE",
    "GUILD_UPDATE",
    "GUILD_DELETE",
    "CHANNEL_CREATE",
    "CHANNEL_UPDATE",
    "CHANNEL_DELETE",
    "GUILD_ROLE_CREATE",
    "GUILD_ROLE_UPDATE",
    "GUILD_ROLE_DELETE",
}
_MEMBER_EVENTS = {"GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE"}
_MESSAGE_EVENTS = {"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"}


class _ZlibStream:
    """zlib-stream: one compressor per connection, flushed with Z_SYNC_FLUSH per message."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj()

    def encode(self, text: str) -> bytes:
        return self._compressor.compress(text.encode()) + self._compressor.flush(zlib.Z_SYNC_FLUSH)


class _ZstdStream:
    """zstd-stream: one zstd frame per connection, a flushed block per message."""

    def __init__(self) -> None:
        try:
            from compression import zstd  # type: ignore[import-not-found]

            compressor = zstd.ZstdCompressor()
            self._encode = lambda data: compressor.compress(
                data, mode=zstd.ZstdCompressor.FLUSH_BLOCK
            )
        except ImportError:
            import zstandard  # type: ignore[import-not-found]

            stream = zstandard.ZstdCompressor().compressobj()
            self._encode = lambda data: (
                stream.compress(data) + stream.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            )

    def encode(self, text: str) -> bytes:
        return self._encode(text.encode())


def zstd_available() -> bool:
    """Whether this interpreter can do zstd-stream (and so discord.py will ask for it)."""
    try:
        _ZstdStream()
    except ImportError:
        return False
    return True


@dataclass
class GatewayFrame:
    """One gateway payload, in either direction, for tests that check the protocol."""

    direction: str
    op: int
    t: str | None
    s: int | None
    d: Any


@dataclass
class GatewaySession:
    """An identified session; it outlives its connection so it can be resumed."""

    session_id: str
    intents: int
    large_threshold: int
    seq: int = 0
    buffer: list[tuple[int, str, Any]] = field(default_factory=list)
    connection: _Connection | None = None


class _Connection:
    """One websocket: its compression and the lock that keeps frames in order."""

    def __init__(self, ws: web.WebSocketResponse, compression: str | None) -> None:
        self.ws = ws
        self.compression = compression
        self.payload_compression = False
        self._stream: _ZlibStream | _ZstdStream | None = None
        if compression == "zlib-stream":
            self._stream = _ZlibStream()
        elif compression == "zstd-stream":
            self._stream = _ZstdStream()
        self._lock = asyncio.Lock()
        self.session: GatewaySession | None = None

    async def send(self, payload: dict[str, Any]) -> None:
        text = json.dumps(payload, separators=(",", ":"))
        async with self._lock:
            if self.ws.closed:
                return
            if self._stream is not None:
                await self.ws.send_bytes(self._stream.encode(text))
            elif self.payload_compression:
                await self.ws.send_bytes(zlib.compress(text.encode()))
            else:
                await self.ws.send_str(text)


class Gateway:
    """Serves `/gateway`; `dispatch` pushes events to the connected, identified bot."""

    def __init__(self, store: Store, notifier: ChangeNotifier) -> None:
        self.store = store
        self.notifier = notifier
        self.url = ""
        self.sessions: dict[str, GatewaySession] = {}
        self.frames: list[GatewayFrame] = []
        self.connections: list[_Connection] = []
        self.identify_payloads: list[dict[str, Any]] = []
        self.compressions: list[str | None] = []

    @property
    def world(self) -> FakeWorld:
        return self.store.world

    # Connection lifecycle ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One websocket connection, from HELLO to close."""
        compression = request.query.get("compress")
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True, heartbeat=None)
        await ws.prepare(request)
        conn = _Connection(
            ws, compression if compression in ("zlib-stream", "zstd-stream") else None
        )
        self.compressions.append(conn.compression)
        self.connections.append(conn)
        try:
            if request.query.get("v", "10") not in ("9", "10"):
                await ws.close(code=4012, message=b"Invalid API version")
                return ws
            if request.query.get("encoding", "json") != "json":
                await ws.close(code=4002, message=b"Decode error")
                return ws
            await self._send(
                conn,
                HELLO,
                {
                    "heartbeat_interval": self.world.heartbeat_interval_ms,
                    "_trace": ["fake-discord-gateway"],
                },
            )
            await self._receive_loop(conn)
        finally:
            self.connections.remove(conn)
            if conn.session is not None and conn.session.connection is conn:
                conn.session.connection = None
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
            self._log("recv", frame.get("op", -1), None, None, frame.get("d"))
            await self._handle_op(conn, frame.get("op"), frame.get("d"))

    async def _handle_op(self, conn: _Connection, op: Any, data: Any) -> None:
        if op == HEARTBEAT:
            await self._send(conn, HEARTBEAT_ACK, None)
        elif op == IDENTIFY:
            await self._identify(conn, data or {})
        elif op == RESUME:
            await self._resume(conn, data or {})
        elif conn.session is None:
            await conn.ws.close(code=4003, message=b"Not authenticated")
        elif op == REQUEST_GUILD_MEMBERS:
            await self._member_chunk(conn, data or {})
        elif op in (PRESENCE_UPDATE, VOICE_STATE):
            return
        else:
            await conn.ws.close(code=4001, message=b"Unknown opcode")

    # IDENTIFY / RESUME ---------------------------------------------------------------------

    async def _identify(self, conn: _Connection, data: dict[str, Any]) -> None:
        self.identify_payloads.append({k: v for k, v in data.items() if k != "token"})
        close = self._identify_problem(conn, data)
        if close is not None:
            await conn.ws.close(code=close[0], message=close[1].encode())
            return
        conn.payload_compression = bool(data.get("compress")) and conn.compression is None
        session = GatewaySession(
            session_id=secrets.token_hex(16),
            intents=int(data["intents"]),
            large_threshold=int(data.get("large_threshold", 50)),
        )
        self.sessions[session.session_id] = session
        conn.session = session
        session.connection = conn
        await self._dispatch_to(session, "READY", self._ready_payload(session, data))
        for guild in self.world.guilds:
            await self._dispatch_to(session, "GUILD_CREATE", self._guild_create(session, guild))
        self.notifier.notify()

    def _identify_problem(self, conn: _Connection, data: dict[str, Any]) -> tuple[int, str] | None:
        """Discord's close code and reason for a bad IDENTIFY, or None if it is fine."""
        if conn.session is not None:
            return 4005, "Already authenticated"
        if data.get("token") != self.world.token:
            return 4004, "Authentication failed"
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents & ~_ALL_INTENTS:
            return 4013, "Invalid intent(s)"
        for intent, flags in _INTENT_FLAGS.items():
            if intents & intent and not self.world.application_flags & flags:
                return 4014, "Disallowed intent(s)"
        return None

    async def _resume(self, conn: _Connection, data: dict[str, Any]) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or data.get("token") != self.world.token:
            await self._send(conn, INVALID_SESSION, False)
            return
        conn.session = session
        session.connection = conn
        missed = [item for item in session.buffer if item[0] > int(data.get("seq") or 0)]
        for seq, event, payload in missed:
            await self._send(conn, DISPATCH, payload, t=event, s=seq)
        await self._dispatch_to(session, "RESUMED", {"_trace": ["fake-discord-gateway"]})
        self.notifier.notify()

    def _ready_payload(self, session: GatewaySession, data: dict[str, Any]) -> dict[str, Any]:
        me = payloads.user(self.world.bot)
        me.update({"verified": True, "mfa_enabled": False, "email": None, "flags": 0})
        ready: dict[str, Any] = {
            "v": 10,
            "user": me,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in self.world.guilds],
            "session_id": session.session_id,
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
            "_trace": ["fake-discord-gateway"],
        }
        if "shard" in data:
            ready["shard"] = data["shard"]
        return ready

    def _guild_create(self, session: GatewaySession, guild: Any) -> dict[str, Any]:
        large = len(guild.members) > session.large_threshold
        if session.intents & INTENT_GUILD_PRESENCES and not large:
            members = list(guild.members)
        else:
            members = [m for m in guild.members if m.user.id == self.world.bot.id]
        bot_member = guild.member(self.world.bot.id)
        joined = bot_member.joined_at if bot_member else iso_timestamp(0)
        return payloads.guild_create(guild, members, large=large, joined_at=joined)

    async def _member_chunk(self, conn: _Connection, data: dict[str, Any]) -> None:
        assert conn.session is not None
        guild = self.world.find_guild(int(data.get("guild_id") or 0))
        if guild is None:
            return
        members = self._requested_members(conn.session, guild, data)
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [payloads.member(m) for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        await self._dispatch_to(conn.session, "GUILD_MEMBERS_CHUNK", chunk)

    @staticmethod
    def _requested_members(session: GatewaySession, guild: Any, data: dict[str, Any]) -> list[Any]:
        """Members for op 8: by id, or by name prefix (all of them needs GUILD_MEMBERS)."""
        if data.get("user_ids"):
            wanted = {int(u) for u in data["user_ids"]}
            return [m for m in guild.members if m.user.id in wanted]
        if not session.intents & INTENT_GUILD_MEMBERS:
            return []
        query = str(data.get("query") or "").lower()
        limit = int(data.get("limit") or 0)
        found = [m for m in guild.members if m.user.username.lower().startswith(query)]
        return found[:limit] if limit else found

    # Sending -------------------------------------------------------------------------------

    def connected_sessions(self) -> list[GatewaySession]:
        """Sessions that have an open, identified connection right now."""
        return [
            s
            for s in self.sessions.values()
            if s.connection is not None and not s.connection.ws.closed
        ]

    async def dispatch(self, event: str, data: dict[str, Any]) -> int:
        """Send an event to every connected session whose intents allow it; returns how many."""
        sent = 0
        for session in self.connected_sessions():
            filtered = self._filter_for(session, event, data)
            if filtered is not None:
                await self._dispatch_to(session, event, filtered)
                sent += 1
        return sent

    def _filter_for(
        self, session: GatewaySession, event: str, data: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Apply intents: drop the event, or blank message content without MESSAGE_CONTENT."""
        intents = session.intents
        if event in _GUILD_EVENTS and not intents & INTENT_GUILDS:
            return None
        if event in _MEMBER_EVENTS and not intents & INTENT_GUILD_MEMBERS:
            return None
        if event in _MESSAGE_EVENTS:
            needed = INTENT_GUILD_MESSAGES if "guild_id" in data else INTENT_DIRECT_MESSAGES
            if not intents & needed:
                return None
            return self._scrub_content(session, data)
        return data

    def _scrub_content(self, session: GatewaySession, data: dict[str, Any]) -> dict[str, Any]:
        """Without MESSAGE_CONTENT, others' guild messages arrive without content (Discord rule)."""
        if session.intents & INTENT_MESSAGE_CONTENT or "guild_id" not in data:
            return data
        bot_id = str(self.world.bot.id)
        author = (data.get("author") or {}).get("id")
        mentioned = any(u.get("id") == bot_id for u in data.get("mentions") or [])
        if author == bot_id or mentioned or "content" not in data:
            return data
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

    async def _dispatch_to(self, session: GatewaySession, event: str, data: Any) -> None:
        session.seq += 1
        session.buffer.append((session.seq, event, data))
        if session.connection is not None:
            await self._send(session.connection, DISPATCH, data, t=event, s=session.seq)

    async def _send(
        self, conn: _Connection, op: int, data: Any, *, t: str | None = None, s: int | None = None
    ) -> None:
        self._log("send", op, t, s, data)
        await conn.send({"op": op, "d": data, "s": s, "t": t})

    def _log(self, direction: str, op: int, t: str | None, s: int | None, data: Any) -> None:
        if direction == "recv" and op == IDENTIFY and isinstance(data, dict):
            data = {**data, "token": "<redacted>"}
        self.frames.append(GatewayFrame(direction=direction, op=op, t=t, s=s, d=data))
        self.notifier.notify()

    # Control from tests --------------------------------------------------------------------

    async def request_reconnect(self) -> None:
        """Send RECONNECT (op 7): discord.py closes and RESUMEs on resume_gateway_url."""
        for session in self.connected_sessions():
            assert session.connection is not None
            await self._send(session.connection, RECONNECT, None)

    async def close_all(self, code: int = 1001) -> None:
        """Close every connection (used at shutdown)."""
        for conn in list(self.connections):
            if not conn.ws.closed:
                await conn.ws.close(code=code, message=b"fake Discord stopping")
