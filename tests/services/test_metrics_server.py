"""The metrics server answers loopback names only: a local browser page cannot read it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from services.gates import AccountGates
from services.metrics import Metrics
from services.metrics_server import HealthCheck, MetricsServer
from services.storage import Storage
from tests.fakeclock import FakeClock


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[MetricsServer]:
    storage = await Storage.open(tmp_path / "bot.db")
    metrics = Metrics()
    metrics.watch(storage, AccountGates.create(FakeClock(), 600))
    started = MetricsServer(metrics, HealthCheck(storage, lambda: True), port=0)
    await started.start()
    yield started
    await started.stop()
    await storage.close()


async def fetch(server: MetricsServer, path: str, host: str | None) -> tuple[int, str]:
    headers = {"Host": host} if host is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}{path}", headers=headers) as resp,
    ):
        return resp.status, await resp.text()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example"])
@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
async def test_a_request_naming_another_host_is_refused(
    server: MetricsServer, host: str, path: str
):
    status, text = await fetch(server, path, host.format(port=server.port))
    assert status == 421
    assert "videobot_" not in text and text.strip() != "ok"


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "127.0.0.1"])
async def test_loopback_names_are_served(server: MetricsServer, host: str):
    status, text = await fetch(server, "/metrics", host.format(port=server.port))
    assert status == 200 and "videobot_segmind_submits_total" in text
