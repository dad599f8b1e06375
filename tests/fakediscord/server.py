"""The REST half of the fake: an aiohttp app on loopback serving Discord's /api/v10 routes.

Only the routes the bot (through discord.py 2.7.1) calls are served. A call to any other route
is answered 404/405 as Discord's router would, and also recorded in `internal_errors`, which
fails the test: the fake cannot say what Discord would have done there.

A middleware does what Discord's edge does for every request: decode the body (JSON, or
multipart with `payload_json` and `files[n]`), record the call, serve injected faults, check the
bot token, enforce the per-channel message buckets when a test turns them on (ratelimits.py),
attach rate-limit headers (and `Via`, without which discord.py treats a 429 as a
Cloudflare ban), and turn `DiscordError` into Discord's JSON error body.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web

from . import errors, payloads
from .errors import DiscordError
from .faults import FaultInjector
from .interactions import InteractionRoutes
from .messages import MessageBody, validate
from .permissions import Perm, channel_permissions, has
from .ratelimits import ChannelRateLimits
from .records import RecordedCall, StoredMessage, UploadedFile
from .responses import BODY_KEY, json_response
from .schema import validate_commands
from .store import Destination, Store

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
MAX_REQUEST_BYTES = 512 * 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Routes authorised by the token in the path rather than the bot token.
_TOKEN_ROUTES = ("/webhooks/", "/interactions/")


class RestServer:
    """Builds the aiohttp application; handlers read and change the shared `Store`."""

    def __init__(
        self,
        store: Store,
        faults: FaultInjector,
        gateway_handler: Handler,
        rate_limits: ChannelRateLimits | None = None,
    ) -> None:
        self.store = store
        self.faults = faults
        self.rate_limits = rate_limits or ChannelRateLimits(store.clock)
        self.gateway_handler = gateway_handler
        self.interaction_routes = InteractionRoutes(store)
        self.internal_errors: list[BaseException] = []
        # Set by FakeDiscord: tells the gateway when the bot leaves a server.
        self.on_guild_left: Callable[[int], Awaitable[None]] | None = None
        # Set by FakeDiscord: GET /gateway/bot's answer, which the gateway knows.
        self.gateway_bot_info: Callable[[], dict[str, Any]] | None = None
        self._call_numbers = itertools.count(1)

    def build_app(self) -> web.Application:
        """The application with every route and the Discord-edge middleware."""
        app = web.Application(middlewares=[self._edge], client_max_size=MAX_REQUEST_BYTES)
        app.router.add_get("/gateway", self.gateway_handler)
        for method, path, handler in self._api_routes():
            app.router.add_route(method, API_PREFIX + path, handler)
        return app

    def _api_routes(self) -> list[tuple[str, str, Handler]]:
        ir = self.interaction_routes
        return [
            ("GET", "/gateway/bot", self._gateway_bot),
            ("GET", "/users/@me", self._get_me),
            ("POST", "/users/@me/channels", self._open_dm),
            ("GET", "/users/{user_id}", self._get_user),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/applications/{application_id}/commands", self._get_commands),
            ("PUT", "/applications/{application_id}/commands", self._put_commands),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._get_commands,
            ),
            (
                "PUT",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self._put_commands,
            ),
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback", ir.callback),
            ("POST", "/webhooks/{application_id}/{webhook_token}", ir.execute),
            (
                "GET",
                "/webhooks/{application_id}/{webhook_token}/messages/{message_id}",
                ir.get_message,
            ),
            (
                "PATCH",
                "/webhooks/{application_id}/{webhook_token}/messages/{message_id}",
                ir.edit_message,
            ),
            (
                "DELETE",
                "/webhooks/{application_id}/{webhook_token}/messages/{message_id}",
                ir.delete_message,
            ),
            ("GET", "/channels/{channel_id}/messages", self._channel_history),
            ("DELETE", "/users/@me/guilds/{guild_id}", self._leave_guild),
            ("POST", "/channels/{channel_id}/messages", self._create_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message),
        ]

    # The edge ------------------------------------------------------------------------------

    @web.middleware
    async def _edge(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        call, body_error = await self._begin_call(request)
        try:
            response = await self._serve(request, handler, call, body_error)
        except DiscordError as exc:
            response = _error_response(exc)
        except (web.HTTPMethodNotAllowed, web.HTTPNotFound) as exc:
            self.internal_errors.append(
                LookupError(f"{request.method} {call.path} is not modelled by the fake")
            )
            response = _error_response(
                errors.method_not_allowed() if exc.status == 405 else errors.not_found_route()
            )
        except Exception as exc:  # a bug in the fake must fail the test, not look like Discord
            log.exception("fake Discord crashed on %s %s", request.method, request.path)
            self.internal_errors.append(exc)
            response = _error_response(DiscordError(500, 0, f"fake crashed: {exc!r}"))
        self._finish_call(call, response)
        return response

    async def _serve(
        self,
        request: web.Request,
        handler: Handler,
        call: RecordedCall,
        body_error: DiscordError | None,
    ) -> web.StreamResponse:
        fault = self.faults.take(request.method, call.path)
        if fault is not None and not fault.after_apply:
            raise fault.error
        if not call.path.startswith(_TOKEN_ROUTES):
            self._check_bot_token(request)
        if body_error is not None:
            raise body_error
        bucket = self.rate_limits.take(
            request.method, call.route, request.match_info.get("channel_id")
        )
        response = await handler(request)
        if fault is not None:  # done, but the answer is lost on the way back
            raise fault.error
        if bucket is not None:
            response.headers.update(bucket)
        return response

    def _check_bot_token(self, request: web.Request) -> None:
        if request.headers.get(hdrs.AUTHORIZATION) != f"Bot {self.store.world.token}":
            raise errors.unauthorized()

    async def _begin_call(self, request: web.Request) -> tuple[RecordedCall, DiscordError | None]:
        """Decode the body once, keep it on the request, and open the call record."""
        body_error = None
        try:
            body = await _read_body(request)
        except DiscordError as exc:
            body, body_error = MessageBody(payload={}, files=[]), exc
        request[BODY_KEY] = body
        path = request.path[len(API_PREFIX) :]
        resource = request.match_info.route.resource
        route = resource.canonical[len(API_PREFIX) :] if resource is not None else path
        call = RecordedCall(
            seq=next(self._call_numbers),
            method=request.method,
            path=path,
            route=route,
            json=body.payload if request.body_exists else None,
            files=list(body.files),
            at=self.store.clock.monotonic(),
        )
        return call, body_error

    def _finish_call(self, call: RecordedCall, response: web.StreamResponse) -> None:
        call.status = response.status
        if (
            isinstance(response, web.Response)
            and response.body is not None
            and response.content_type == "application/json"
        ):
            call.response = json.loads(response.body)  # type: ignore[arg-type]
        _add_edge_headers(response, call)
        self.store.calls.append(call)
        self.store.notifier.notify()

    # Users and application -----------------------------------------------------------------

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        """What AutoShardedBot asks when no shard count is given (and for session limits)."""
        if self.gateway_bot_info is None:
            raise RuntimeError("the gateway is not attached to the REST server")
        return json_response(self.gateway_bot_info())

    async def _get_me(self, request: web.Request) -> web.Response:
        data = payloads.user(self.store.world.bot)
        data.update({"verified": True, "mfa_enabled": False, "locale": "en-US", "email": None})
        return json_response(data)

    async def _get_user(self, request: web.Request) -> web.Response:
        user = self.store.world.find_user(_int(request, "user_id"))
        if user is None:
            raise errors.unknown_user()
        return json_response(payloads.user(user))

    async def _get_member(self, request: web.Request) -> web.Response:
        """A member as Discord answers it (no members intent needed), roles as they are now."""
        guild = self.store.world.find_guild(_int(request, "guild_id"))
        if guild is None:
            raise errors.unknown_guild()
        member = guild.member(_int(request, "user_id"))
        if member is None:
            raise errors.unknown_member()
        return json_response(payloads.member(member))

    async def _get_application(self, request: web.Request) -> web.Response:
        return json_response(payloads.application(self.store.world))

    # Application commands ------------------------------------------------------------------

    def _command_scope(self, request: web.Request) -> int | None:
        if request.match_info["application_id"] != str(self.store.world.application_id):
            raise errors.unknown_application()
        if "guild_id" not in request.match_info:
            return None
        guild_id = _int(request, "guild_id")
        if self.store.world.find_guild(guild_id) is None:
            # The bot (with applications.commands) is not in that guild.
            raise errors.missing_access()
        return guild_id

    async def _get_commands(self, request: web.Request) -> web.Response:
        # `python bot.py doctor` compares what Discord holds with the bot's own commands.
        return json_response(self.store.commands(self._command_scope(request)))

    async def _put_commands(self, request: web.Request) -> web.Response:
        scope = self._command_scope(request)
        bodies = request[BODY_KEY].payload
        problems = validate_commands(bodies)
        if problems:
            raise errors.invalid_form_body(problems)
        return json_response(self.store.overwrite_commands(scope, bodies))

    # Channels and messages -----------------------------------------------------------------

    def _destination(self, request: web.Request, *, need: int = 0) -> Destination:
        """The channel, checked as Discord checks the bot: 10003, 50001, 50013."""
        dest = self.store.destination(_int(request, "channel_id"))
        if dest is None:
            raise errors.unknown_channel()
        if dest.guild is not None and dest.channel is not None:
            perms = channel_permissions(dest.guild, dest.channel, self.store.world.bot.id)
            if not has(perms, Perm.VIEW_CHANNEL):
                raise errors.missing_access()
            if need and not has(perms, need):
                raise errors.missing_permissions()
        return dest

    def _embeds_as_allowed(self, dest: Destination, body: MessageBody) -> MessageBody:
        """Without Embed Links in a server channel, Discord drops a bot message's embeds."""
        if dest.guild is None or dest.channel is None or "embeds" not in body.payload:
            return body
        perms = channel_permissions(dest.guild, dest.channel, self.store.world.bot.id)
        if has(perms, Perm.EMBED_LINKS):
            return body
        return MessageBody(payload={**body.payload, "embeds": []}, files=body.files)

    async def _create_message(self, request: web.Request) -> web.Response:
        body: MessageBody = request[BODY_KEY]
        need = Perm.SEND_MESSAGES | (Perm.ATTACH_FILES if body.files else 0)
        if body.payload.get("message_reference"):
            need |= Perm.READ_MESSAGE_HISTORY
        found = self.store.destination(_int(request, "channel_id"))
        if found is not None and found.channel is not None and found.channel.is_thread:
            # In a thread Discord asks for Send Messages in Threads instead.
            need = (need & ~Perm.SEND_MESSAGES) | Perm.SEND_MESSAGES_IN_THREADS
        dest = self._destination(request, need=need)
        if dest.dm_recipient is not None and not self._can_dm(dest.dm_recipient.id):
            raise errors.cannot_dm_user()
        validate(body, upload_limit=self.store.world.upload_limit_for(dest.guild), creating=True)
        self._check_reference(dest, body.payload)
        body = self._embeds_as_allowed(dest, body)
        if not (body.payload.get("content") or body.payload.get("embeds") or body.files) and not (
            body.payload.get("components")
        ):
            raise errors.empty_message()
        repeated = self.store.message_with_nonce(dest.channel_id, body.payload)
        if repeated is not None:
            # enforce_nonce: the same nonce within minutes returns the first message, unsent.
            return json_response(self.store.message_payload(repeated))
        message = await self.store.create_message(dest, self.store.world.bot.id, body)
        return json_response(self.store.message_payload(message))

    async def _leave_guild(self, request: web.Request) -> web.Response:
        """The bot leaves a server: it is no longer in the world's guilds; 204 as Discord."""
        guild = self.store.world.find_guild(_int(request, "guild_id"))
        if guild is None:
            raise errors.unknown_guild()
        self.store.world.guilds.remove(guild)
        if self.on_guild_left is not None:
            await self.on_guild_left(guild.id)
        return web.Response(status=204)

    async def _channel_history(self, request: web.Request) -> web.Response:
        """GET messages, newest first, as Discord pages them (limit 1-100, before/after).

        Without Read Message History Discord answers 200 with no messages, not an error.
        Ephemeral and deleted messages are never in a channel's history.
        """
        dest = self._destination(request)
        query = request.rel_url.query
        try:
            limit = int(query.get("limit", "50"))
            before = int(query["before"]) if "before" in query else None
            after = int(query["after"]) if "after" in query else None
        except ValueError:
            raise errors.form_error(("limit",), "NUMBER_TYPE_COERCE", "not a number") from None
        if not 1 <= limit <= 100:
            raise errors.form_error(
                ("limit",), "NUMBER_TYPE_MAX", "int value should be between 1 and 100"
            )
        if dest.guild is not None and dest.channel is not None:
            perms = channel_permissions(dest.guild, dest.channel, self.store.world.bot.id)
            if not has(perms, Perm.READ_MESSAGE_HISTORY):
                return json_response([])
        shown = [
            m
            for m in self.store.channel_history(dest.channel_id)
            if not m.ephemeral
            and not m.deleted
            and (before is None or m.id < before)
            and (after is None or m.id > after)
        ]
        # Discord returns the newest page, newest first; after= pages from the oldest side.
        page = shown[:limit] if after is not None else shown[-limit:]
        return json_response([self.store.message_payload(m) for m in reversed(page)])

    def _can_dm(self, user_id: int) -> bool:
        user = self.store.world.find_user(user_id)
        shares_guild = any(g.member(user_id) for g in self.store.world.guilds)
        return user is not None and user.accepts_dms and shares_guild

    def _check_reference(self, dest: Destination, payload: dict[str, Any]) -> None:
        reference = payload.get("message_reference")
        if not reference or reference.get("fail_if_not_exists") is False:
            return
        target = self.store.message(int(reference.get("message_id") or 0))
        if target is None or target.deleted or target.channel_id != dest.channel_id:
            raise errors.form_error(
                ("message_reference",), "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
            )

    def _channel_message(self, request: web.Request, dest: Destination) -> StoredMessage:
        """A message reachable through the channel routes (never an ephemeral one)."""
        message = self.store.message(_int(request, "message_id"))
        if (
            message is None
            or message.deleted
            or message.ephemeral
            or message.channel_id != dest.channel_id
        ):
            raise errors.unknown_message()
        return message

    async def _edit_message(self, request: web.Request) -> web.Response:
        dest = self._destination(request)
        message = self._channel_message(request, dest)
        if message.author_id != self.store.world.bot.id:
            raise errors.cannot_edit_others_message()
        body: MessageBody = request[BODY_KEY]
        validate(body, upload_limit=self.store.world.upload_limit_for(dest.guild), creating=False)
        await self.store.edit_message(message, self._embeds_as_allowed(dest, body))
        return json_response(self.store.message_payload(message))

    async def _delete_message(self, request: web.Request) -> web.Response:
        dest = self._destination(request)
        message = self._channel_message(request, dest)
        if (
            message.author_id != self.store.world.bot.id
            and dest.guild is not None
            and dest.channel is not None
            and not has(
                channel_permissions(dest.guild, dest.channel, self.store.world.bot.id),
                Perm.MANAGE_MESSAGES,
            )
        ):
            raise errors.missing_permissions()
        await self.store.delete_message(message)
        return web.Response(status=204)

    async def _open_dm(self, request: web.Request) -> web.Response:
        recipient_id = int(request[BODY_KEY].payload.get("recipient_id") or 0)
        user = self.store.world.find_user(recipient_id)
        if user is None:
            raise errors.form_error(
                ("recipient_id",), "NUMBER_TYPE_COERCE", f'Value "{recipient_id}" is not snowflake.'
            )
        channel_id = self.store.open_dm(recipient_id)
        return json_response(
            payloads.dm_channel(channel_id, user, self.store.last_message_id(channel_id))
        )


def _int(request: web.Request, key: str) -> int:
    """A snowflake path parameter; anything else is a 404 like Discord's router gives."""
    value = request.match_info[key]
    if not value.isdigit():
        raise errors.not_found_route()
    return int(value)


async def _read_body(request: web.Request) -> MessageBody:
    """JSON body, or multipart with `payload_json` and file parts kept byte for byte."""
    if request.content_type.startswith("multipart/"):
        return await _read_multipart(request)
    raw = await request.read()
    if not raw:
        return MessageBody(payload={}, files=[])
    try:
        payload = json.loads(raw)
    except ValueError:
        raise DiscordError(400, 50109, "The request body contains invalid JSON.") from None
    return MessageBody(payload=payload, files=[])


async def _read_multipart(request: web.Request) -> MessageBody:
    reader = await request.multipart()
    payload: Any = {}
    files: list[UploadedFile] = []
    while True:
        part = await reader.next()
        if part is None:
            break
        if part.name == "payload_json":
            payload = json.loads(await part.text())  # type: ignore[union-attr]
            continue
        data = await part.read(decode=False)  # type: ignore[union-attr]
        files.append(
            UploadedFile(
                field=part.name or "",
                filename=getattr(part, "filename", None) or "",
                content_type=part.headers.get(hdrs.CONTENT_TYPE, ""),
                data=bytes(data),
            )
        )
    return MessageBody(payload=payload, files=files)


def _error_response(exc: DiscordError) -> web.Response:
    return json_response(exc.body(), status=exc.status, headers=exc.headers)


def _add_edge_headers(response: web.StreamResponse, call: RecordedCall) -> None:
    """Rate-limit headers on every answer (a roomy bucket unless a 429 set its own) and Via."""
    response.headers.setdefault("Via", "1.1 google")
    bucket = hashlib.md5(f"{call.method} {call.route}".encode()).hexdigest()
    response.headers.setdefault("X-RateLimit-Bucket", bucket)
    response.headers.setdefault("X-RateLimit-Limit", "5")
    response.headers.setdefault("X-RateLimit-Remaining", "4")
    response.headers.setdefault("X-RateLimit-Reset-After", "1.000")
    response.headers.setdefault("X-RateLimit-Reset", f"{time.time() + 1:.3f}")
