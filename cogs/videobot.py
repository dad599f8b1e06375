"""The Discord client: built with its services passed in, so bot.py, the CLI and tests share it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import yarl
from discord.ext import commands

from cogs.alerts import ModeratorAlerts
from cogs.approval.flow import ApprovalFlow
from cogs.startup import quiet_voice_warnings, start_line
from cogs.sync import sync_commands
from cogs.tree import VideoBotTree
from cogs.video.custom_ids import SECRET_KEY, CustomIds, new_secret
from cogs.video.presenter import JobPresenter
from cogs.video.recovery import end_jobs_of_unserved_servers, recover_unacknowledged
from cogs.video.starter import JobStarter
from services.app import Services
from services.background import BackgroundTasks
from services.metrics import Metrics
from services.metrics_server import HealthCheck, MetricsServer
from services.settings import Settings

log = logging.getLogger(__name__)

# Loaded in this order in setup_hook; one feature per package.
EXTENSIONS = ("cogs.video", "cogs.limits", "cogs.queue", "cogs.approval")


@dataclass(frozen=True)
class Timings:
    """How the bot paces itself toward Discord; tests shorten these, production keeps defaults."""

    progress_edit_interval: float = 5.0  # never more than one progress edit per this long
    # "Fetching the video" shows only once a download has run this long: most take a moment,
    # and the clip replacing it at once would make it a flash, and an edit for nothing.
    fetch_hold: float = 3.0
    admission_budget: float = 2.0  # past this, acknowledge first (Discord allows 3 s)
    approval_sweep_interval: float = 30.0  # how often requests waiting for approval expire


async def leave_unless_allowed(settings: Settings, guild: discord.Guild) -> bool:
    """Leave ``guild`` when ALLOWED_GUILDS is set and does not list it; True when it left.

    Anyone with Manage Server can add the bot anywhere; the operator's list keeps it (and
    the bill) to the servers they chose.
    """
    if settings.allows_guild(guild.id):
        return False
    log.warning("guild=%s is not on ALLOWED_GUILDS: leaving it", guild.id)
    try:
        await guild.leave()
    except (discord.HTTPException, OSError) as error:
        # Its interactions are refused meanwhile; the next start tries again.
        log.error("guild=%s could not be left: %s", guild.id, error)
        return False
    return True


def warn_no_allowed_guild_here(settings: Settings, servers: int) -> None:
    """Why ALLOWED_GUILDS leaves nothing in this process: a typo, or a list of other shards'."""
    plan, allowed = settings.shards, settings.allowed_guilds or frozenset()
    if plan is not None and not any(plan.owns(guild_id) for guild_id in allowed):
        # This process sees only its shards' servers, and the listed ones are all on other
        # processes' shards: it cannot tell them from a typo, so it leaves nothing itself
        # (their commands are still refused here).
        log.info(
            "ALLOWED_GUILDS lists no server on %s: this process leaves none of the "
            "servers it sees (%d); their commands are refused",
            plan.describe(),
            servers,
        )
        return
    where = "the bot is in" if plan is None else f"on {plan.describe()}"
    log.error(
        "ALLOWED_GUILDS names none of the %d servers %s: leaving none; "
        "check that it lists server ids",
        servers,
        where,
    )


def discord_error_trace(metrics: Metrics) -> aiohttp.TraceConfig:
    """Counts every Discord answer >= 400 (429s apart too) and requests that got none.

    Expected answers included: discord.py's own 429 waits, 404s the bot handles. discord.py
    sends every REST call, webhooks included, through the session this traces; only the
    status is kept, never the URL (it holds ids and interaction tokens).
    """

    async def answered(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        metrics.discord_answered(params.response.status)

    async def unanswered(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        if isinstance(params.exception, asyncio.CancelledError):
            return  # our own stop, not Discord's trouble
        timed_out = isinstance(params.exception, TimeoutError)
        metrics.error("discord", "timeout" if timed_out else "connection")

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(answered)
    trace.on_request_exception.append(unanswered)
    return trace


def intents() -> discord.Intents:
    # Slash commands carry the member and their roles, so no privileged intent is needed.
    chosen = discord.Intents.none()
    chosen.guilds = True
    return chosen


class VideoBot(commands.Bot):
    """The bot, with its services and the parts its features share as typed attributes.

    ``starter`` admits and acknowledges requests (from `/video` and Re-roll), ``presenter``
    is the job runner's listener, ``alerts`` tells moderators; buttons and commands reach
    them here, never through ``get_cog`` by name.
    """

    def __init__(
        self,
        services: Services,
        *,
        force_sync: bool = False,
        sync: bool = True,
        guild_ready_timeout: float = 2.0,
        timings: Timings | None = None,
    ) -> None:
        quiet_voice_warnings()  # before discord.py's constructor, which would warn
        super().__init__(
            **self._shard_options(services.settings),
            guild_ready_timeout=guild_ready_timeout,
            command_prefix=commands.when_mentioned,
            intents=intents(),
            help_command=None,
            tree_cls=VideoBotTree,
            # Nothing a member typed may ping anyone; the requester is allowed explicitly.
            allowed_mentions=discord.AllowedMentions.none(),
            http_trace=discord_error_trace(services.metrics),
        )
        self.services = services
        self.timings = timings or Timings()
        # Work nobody awaits (alerts, cosmetic edits, notices): held until done, failures logged.
        self.background = BackgroundTasks()
        self.alerts = ModeratorAlerts(self)
        self.presenter = JobPresenter(self)
        self.starter = JobStarter(self)
        self.approvals = ApprovalFlow(self)  # requests held for a moderator's answer
        self.custom_ids: CustomIds  # set in setup_hook: the secret lives in the database
        self._force_sync = force_sync
        self._sync = sync
        self._left: set[int] = set()
        self._warned_no_match = False  # servers left for not being on ALLOWED_GUILDS
        self._announced = False  # the start-up line, once: READY comes again after a reconnect
        # Told by discord.py's events, for /healthz: up at READY or RESUMED, down at a drop.
        self.gateway_connected = False
        self.metrics_server: MetricsServer | None = None  # with METRICS_PORT, from setup_hook

    def _shard_options(self, settings: Settings) -> dict[str, Any]:
        """Without SHARD_COUNT, discord.py's own choice: one connection, every server."""
        return {}

    async def setup_hook(self) -> None:
        # First, so a supervisor sees "not connected" (503) rather than nothing while it starts.
        await self._serve_metrics()
        # Before any view is built: every job button is signed with this database's secret.
        secret = await self.services.storage.meta.setdefault(SECRET_KEY, new_secret())
        self.custom_ids = CustomIds(secret)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self._sync:
            await sync_commands(self, force=self._force_sync)
        # Before the runner, which would otherwise end them as never acknowledged.
        await end_jobs_of_unserved_servers(self)
        await recover_unacknowledged(self)
        resumed = await self.services.runner.start()
        if resumed:
            log.info("resumed %d unfinished jobs", len(resumed))

    async def on_ready(self) -> None:
        self.gateway_connected = True
        if not self._announced:
            self._announced = True
            log.info(start_line(self, self.services.settings, self.services.segmind.display_url))
            # Needs the servers' channels, so after READY; in the background, like any post.
            self.background.spawn(self.presenter.gallery.catch_up())
        # Servers the bot was in before ALLOWED_GUILDS was set (or changed) are left at start.
        for guild in list(self.guilds):
            await self._leave_unless_allowed(guild)

    async def _serve_metrics(self) -> None:
        port = self.services.settings.metrics_port
        if port is None:
            return
        health = HealthCheck(self.services.storage, self.is_gateway_connected)
        # A port in use raises SettingsError: bot.py prints it as one start-up problem.
        server = MetricsServer(self.services.metrics, health, port=port)
        await server.start()
        self.metrics_server = server

    def is_gateway_connected(self) -> bool:
        return self.gateway_connected and not self.is_closed()

    async def on_connect(self) -> None:
        self.gateway_connected = True

    async def on_resumed(self) -> None:
        self.gateway_connected = True

    async def on_disconnect(self) -> None:
        if self.gateway_connected and not self.is_closed():
            log.info("Discord gateway disconnected; discord.py reconnects by itself")
        self.gateway_connected = False

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self._leave_unless_allowed(guild)

    async def on_guild_available(self, guild: discord.Guild) -> None:
        await self._leave_unless_allowed(guild)

    async def _leave_unless_allowed(self, guild: discord.Guild) -> None:
        settings = self.services.settings
        if not any(settings.allows_guild(known.id) for known in self.guilds):
            # A list naming none of the bot's servers is a typo (a channel id, say), not a
            # wish to leave them all: each would have to invite the bot again.
            if not self._warned_no_match:
                self._warned_no_match = True
                warn_no_allowed_guild_here(settings, len(self.guilds))
            return
        # Start-up announces a server both as available and as ready: leave it once.
        if guild.id not in self._left and await leave_unless_allowed(settings, guild):
            self._left.add(guild.id)

    async def close(self) -> None:
        # Jobs stay stored and resume at the next start; stop them before the session closes.
        await self.services.runner.shutdown()
        await super().close()
        if self.metrics_server is not None:
            await self.metrics_server.stop()


class ShardedVideoBot(VideoBot, commands.AutoShardedBot):
    """The bot running only SHARD_IDS of SHARD_COUNT shards: one process's share of the servers.

    Only with a shard plan: AutoShardedBot routes events through its own shard queue and, with
    no count, asks GET /gateway/bot first, so the single-process bot keeps discord.py's plain
    Bot, as every whole-bot test was written against.
    """

    async def launch_shard(
        self, gateway: yarl.URL, shard_id: int, *, initial: bool = False
    ) -> None:
        # discord.py retries a shard forever, every 5 s, even once the bot is closed: a stop
        # (SIGTERM) while this process's shards are still connecting would never end.
        if self.is_closed():
            return
        await super().launch_shard(gateway, shard_id, initial=initial)

    def _shard_options(self, settings: Settings) -> dict[str, Any]:
        plan = settings.shards
        if plan is None:
            raise ValueError("ShardedVideoBot needs SHARD_COUNT (settings.shards)")
        return {"shard_count": plan.count, "shard_ids": list(plan.ids)}


def create_bot(services: Services, **options: Any) -> VideoBot:
    """The one factory: bot.py uses it, and so do the whole-bot tests (``VideoBot`` options).

    With SHARD_COUNT (and SHARD_IDS) the bot connects exactly those shards of that count.
    """
    if services.settings.shards is not None:
        return ShardedVideoBot(services, **options)
    return VideoBot(services, **options)
