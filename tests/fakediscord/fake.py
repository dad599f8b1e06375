"""`FakeDiscord`: the one object a test drives — start it, point discord.py at it, act, assert.

It owns the loopback server (REST + gateway), the state, the clock, the call log and the faults,
and offers the verbs a scenario test needs: dispatch a slash command or a click, wait for what
the bot does, read what a channel shows, inject failures, move time forward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from .clock import FakeDiscordClock, SnowflakeFactory
from .dispatch import ChannelLike, InteractionFactory, UserLike, user_id_of
from .faults import Fault, FaultInjector, compile_route_pattern
from .gateway import Gateway
from .ratelimits import ChannelRateLimits
from .records import (
    AcknowledgementMissed,
    ChangeNotifier,
    FakeTimeout,
    InteractionRecord,
    RecordedCall,
    StoredMessage,
)
from .server import API_PREFIX, RestServer
from .store import Store
from .world import FakeWorld

T = TypeVar("T")
DEFAULT_TIMEOUT = 5.0


class FakeDiscord:
    """A Discord API + gateway on 127.0.0.1 for whole-bot tests with the real discord.py."""

    def __init__(self, world: FakeWorld | None = None) -> None:
        self.world = world or FakeWorld.default()
        self.clock = FakeDiscordClock()
        self.faults = FaultInjector()
        self._notifier = ChangeNotifier()
        self.store = Store(self.world, self.clock, SnowflakeFactory(self.clock), self._notifier)
        self.gateway = Gateway(self.store, self._notifier)
        self.rate_limits = ChannelRateLimits(self.clock)
        self._server = RestServer(
            self.store, self.faults, self.gateway.handle, rate_limits=self.rate_limits
        )
        self._server.on_guild_left = self._guild_left
        self._server.gateway_bot_info = self.gateway.bot_info
        self._interactions = InteractionFactory(self.store)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # Lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on a random loopback port."""
        self._runner = web.AppRunner(
            self._server.build_app(), shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        self.store.base_url = self.base_url
        self.gateway.url = f"ws://{host}:{port}/gateway"

    async def stop(self) -> None:
        """Close gateway connections and the server."""
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_base(self) -> str:
        """What `discord.http.Route.BASE` must be: `http://127.0.0.1:PORT/api/v10`."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """`ws://127.0.0.1:PORT/gateway`, discord.py's DEFAULT_GATEWAY and READY's resume URL."""
        return self.gateway.url

    @property
    def internal_errors(self) -> list[BaseException]:
        """Crashes inside the fake (answered as 500); a healthy test run has none."""
        return self._server.internal_errors

    # Time ----------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Jump forward, e.g. 3.1 s (miss the ack window) or 15 * 60 (expire tokens)."""
        self.clock.advance(seconds)
        self._notifier.notify()

    # Waiting -------------------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], T], timeout: float = DEFAULT_TIMEOUT) -> T:
        """Wait until `predicate()` is truthy (re-checked on every change); return its value."""
        return await self._notifier.wait_until(predicate, timeout, self.describe)

    async def wait_for_call(self, route: str, *, timeout: float = DEFAULT_TIMEOUT) -> RecordedCall:
        """The first call matching a route pattern like "POST /channels/*/messages"."""
        return await self.wait_until(lambda: next(iter(self.calls_to(route)), None), timeout)

    async def wait_for_ack(
        self, interaction: InteractionRecord, timeout: float | None = None
    ) -> InteractionRecord:
        """Wait for the initial response; raise AcknowledgementMissed past the 3 s window."""
        remaining = interaction.ack_deadline - self.clock.monotonic()
        limit = max(0.0, remaining) + 0.05 if timeout is None else timeout
        with contextlib.suppress(FakeTimeout):
            await self.wait_until(
                lambda: interaction.acknowledged or interaction.late_callbacks > 0, limit
            )
        if not interaction.acknowledged:
            raise AcknowledgementMissed(
                f"interaction {interaction.id} was not acknowledged within 3 s "
                "(the member sees 'The application did not respond')"
            )
        return interaction

    async def wait_for_message(
        self,
        channel: ChannelLike,
        predicate: Callable[[StoredMessage], bool] = lambda m: True,
        *,
        viewer: UserLike | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> StoredMessage:
        """The first message the viewer (None: everyone) sees in the channel matching predicate."""

        def found() -> StoredMessage | None:
            return next(
                (m for m in self.channel_messages(channel, viewer=viewer) if predicate(m)), None
            )

        return await self.wait_until(found, timeout)

    # Dispatching ---------------------------------------------------------------------------

    async def dispatch_slash_command(
        self,
        command: str,
        options: dict[str, Any] | None = None,
        *,
        user: UserLike,
        channel: ChannelLike | None = None,
        attachment_size_limit: int | None = None,
        bypass_permissions: bool = False,
    ) -> InteractionRecord:
        """Send INTERACTION_CREATE for `/command` ("video", "videolimit set") as `user` would.

        `channel` defaults to the first channel of the first guild.
        `attachment_size_limit` models the invoker's upload limit (Nitro raises it).
        `bypass_permissions` models a server that shows the command to everyone.
        """
        target = channel if channel is not None else self.world.guild.channels[0]
        record = self._interactions.slash(
            command,
            options,
            user=user,
            channel=target,
            attachment_size_limit=attachment_size_limit,
            bypass_permissions=bypass_permissions,
        )
        await self._send_interaction(record)
        return record

    async def dispatch_component(
        self, message: StoredMessage | int, custom_id: str, *, user: UserLike
    ) -> InteractionRecord:
        """Send INTERACTION_CREATE (type 3) for a click on a button of a message."""
        stored = message if isinstance(message, StoredMessage) else self.message(message)
        record = self._interactions.component(stored, custom_id, user=user)
        await self._send_interaction(record)
        return record

    async def dispatch_modal_submit(
        self, opener: InteractionRecord, values: dict[str, str]
    ) -> InteractionRecord:
        """Submit the modal the bot answered `opener` with (type 5): text inputs by custom_id."""
        record = self._interactions.modal_submit(opener, values)
        await self._send_interaction(record)
        return record

    async def dispatch_event(self, event: str, data: dict[str, Any]) -> None:
        """Send any gateway event as it is (e.g. CHANNEL_UPDATE after changing the world)."""
        self._require_connection()
        await self.gateway.dispatch(event, data)

    async def _send_interaction(self, record: InteractionRecord) -> None:
        self._require_connection()
        # The record's clock starts when Discord sends the event, as on the real service.
        record.created_at = self.clock.monotonic()
        await self.gateway.dispatch("INTERACTION_CREATE", record.payload)
        self._notifier.notify()

    async def _guild_left(self, guild_id: int) -> None:
        """The bot left a server: Discord tells its gateway so (GUILD_DELETE, not unavailable)."""
        await self.gateway.dispatch("GUILD_DELETE", {"id": str(guild_id)})

    def _require_connection(self) -> None:
        if not self.gateway.identified_connections():
            raise RuntimeError("no bot is connected to the fake gateway yet (run it first)")

    # Reading state -------------------------------------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        """Every REST call so far, in order."""
        return self.store.calls

    def calls_to(self, route: str) -> list[RecordedCall]:
        """Calls matching a pattern such as "PATCH /webhooks/*/*/messages/@original"."""
        method, regex = compile_route_pattern(route)
        return [
            c
            for c in self.store.calls
            if (method is None or c.method == method) and regex.match(c.path)
        ]

    def message(self, message_id: int) -> StoredMessage:
        """A message by id (deleted ones too; check `.deleted`)."""
        message = self.store.message(message_id)
        if message is None:
            raise LookupError(f"no message {message_id}")
        return message

    def channel_messages(
        self, channel: ChannelLike, *, viewer: UserLike | None = None
    ) -> list[StoredMessage]:
        """What `viewer` sees in the channel, oldest first (None: what every member sees)."""
        channel_id = channel if isinstance(channel, int) else channel.id
        viewer_id = None if viewer is None else user_id_of(viewer)
        return [m for m in self.store.channel_history(channel_id) if m.visible_for(viewer_id)]

    def all_channel_messages(self, channel: ChannelLike) -> list[StoredMessage]:
        """Every live message in the channel, ephemeral ones included (see `visible_to`)."""
        channel_id = channel if isinstance(channel, int) else channel.id
        return [m for m in self.store.channel_history(channel_id) if not m.deleted]

    def dm_messages(self, user: UserLike) -> list[StoredMessage]:
        """Messages the bot sent this user in DMs."""
        channel_id = self.store.dm_channels.get(user_id_of(user))
        return [] if channel_id is None else self.channel_messages(channel_id)

    def pinged(self) -> dict[int, frozenset[int]]:
        """Message id -> users notified when it appeared, for every message that pinged anyone."""
        return {m.id: m.pinged_user_ids for m in self.store.messages.values() if m.pinged_user_ids}

    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """Registered application commands of a scope (None: global)."""
        return self.store.commands(guild_id)

    def unanswered_interactions(self) -> list[InteractionRecord]:
        """Interactions the member saw fail with "The application did not respond"."""
        now = self.clock.monotonic()
        return [i for i in self.store.interactions.values() if i.missed_acknowledgement(now)]

    # Faults --------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        """Arm a fault (see `Fault.rate_limited`, `Fault.expired_token`, ...)."""
        return self.faults.add(fault)

    def enforce_rate_limits(self, limit: int = 5, per: float = 5.0) -> None:
        """Answer 429 past `limit` message creates (or edits) per `per` s in one channel."""
        self.rate_limits.enable(limit, per)

    # Diagnostics ---------------------------------------------------------------------------

    def describe(self, last: int = 15) -> str:
        """The latest calls and gateway events, for timeout messages."""
        lines = ["recent REST calls:"]
        lines += [
            f"  {c}" + (f" code={c.error_code}" if c.error_code else "")
            for c in self.store.calls[-last:]
        ] or ["  (none)"]
        events = self.gateway.dispatched[-last:]
        lines.append(f"recent gateway dispatches: {events or '(none)'}")
        return "\n".join(lines)
