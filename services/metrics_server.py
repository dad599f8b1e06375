"""``/metrics`` and ``/healthz`` on 127.0.0.1:METRICS_PORT, for Prometheus and a supervisor.

``/healthz`` answers 200 ``ok`` when the gateway is connected and the database answers, else
503 with a one-line reason. Whether the gateway is connected is the bot's to say (services
know nothing of Discord): it passes a callable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST

from services.metrics import Metrics
from services.settings import SettingsError
from services.storage import Storage
from services.storage.job_totals import answers

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # never on a public interface: the numbers describe the operator's bill
DATABASE_TIMEOUT = 2.0  # a health check that hangs is no answer


class HealthCheck:
    """Whether the bot can serve members now; ``problem`` says why not, in one line."""

    def __init__(
        self,
        storage: Storage,
        gateway_connected: Callable[[], bool],
        *,
        database_timeout: float = DATABASE_TIMEOUT,
    ) -> None:
        self._storage = storage
        self._gateway_connected = gateway_connected
        self._database_timeout = database_timeout

    async def problem(self) -> str | None:
        if not self._gateway_connected():
            return "Discord gateway not connected"
        try:
            await asyncio.wait_for(answers(self._storage.db), self._database_timeout)
        except TimeoutError:
            return f"database did not answer within {self._database_timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - any failure is the answer: unhealthy
            return f"database failed: {type(exc).__name__}"
        return None


class MetricsServer:
    """A small aiohttp app; ``start`` binds it, ``stop`` closes it (both safe to repeat)."""

    def __init__(self, metrics: Metrics, health: HealthCheck, *, port: int) -> None:
        self._metrics = metrics
        self._health = health
        self._wanted_port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port once started (port 0 picks a free one)

    async def start(self) -> None:
        """Bind 127.0.0.1:port; a port in use is a SettingsError naming METRICS_PORT."""
        if self._runner is not None:
            return
        app = web.Application(middlewares=[_loopback_host_only])
        app.router.add_get("/metrics", self._serve_metrics)
        app.router.add_get("/healthz", self._serve_health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, self._wanted_port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            reason = error.strerror or str(error)
            raise SettingsError(
                [
                    f"METRICS_PORT={self._wanted_port}: cannot listen on {HOST}:"
                    f"{self._wanted_port} ({reason}); choose a free port or unset METRICS_PORT."
                ]
            ) from None
        self._runner = runner
        self.port = _bound_port(runner, self._wanted_port)
        log.info("metrics at http://%s:%s/metrics, health at /healthz", HOST, self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        try:
            await self._metrics.refresh()
        except Exception:  # a scrape must still show the counters when the database fails
            log.warning("metrics: the database totals could not be read", exc_info=True)
        # CONTENT_TYPE_LATEST carries its charset, which aiohttp wants in its own argument.
        response = web.Response(body=self._metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _serve_health(self, request: web.Request) -> web.Response:
        problem = await self._health.problem()
        if problem is None:
            return web.Response(text="ok\n")
        return web.Response(status=503, text=problem + "\n")


# Listening on 127.0.0.1 keeps other machines out, but a web page in a local browser can
# still reach it through DNS rebinding (evil.example resolving to 127.0.0.1): its requests
# name their own host, so only loopback names are answered.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})


@web.middleware
async def _loopback_host_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    host = (request.host or "").rsplit(":", 1)[0].lower()
    if request.headers.get("Host") is not None and host not in LOOPBACK_HOSTS:
        return web.Response(status=421, text="only 127.0.0.1 and localhost are served\n")
    return await handler(request)


def _bound_port(runner: web.AppRunner, wanted: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return wanted
