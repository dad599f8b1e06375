"""Shared fixtures: every test runs offline, against loopback servers only."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The fake Discord's fixtures (fake_world, fake_discord), for every test package.
pytest_plugins = ["tests.fakediscord.fixtures"]


# --- Segmind: a simulator on loopback and a client pointed at it ------------------------
#
# ``simulator`` and ``segmind_client`` cover most needs: a simulated Segmind with short
# timings (queue 0.05 s, processing 0.1 s, real clock) that requires ``segmind_api_key``,
# and a client for it with tiny retry delays. For anything else use the factories:
#
#     sim = await simulator_factory(clock=fake_clock, queue_seconds=60, processing_seconds=240)
#     client = segmind_client_factory(sim.base_url, clock=fake_clock, poll_interval=2.0)
#
# Sharing one ``FakeClock`` between both makes a four-minute job finish instantly and
# deterministically: the client's sleeps advance the simulator's clock.

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from services.clock import Clock
from services.segmind import RetryPolicy, SegmindClient
from services.simulator import SegmindSimulator, SimulatorConfig
from tests.fakeclock import FakeClock

# A made-up key, distinctive so tests can search logs and errors for it.
TEST_SEGMIND_API_KEY = "sg-test-key-7f3a9c41e2b8d605"

# Retries in milliseconds, so retry paths run fast even on the real clock.
FAST_RETRY_POLICY = RetryPolicy(base_delay=0.01, max_delay=0.05, request_timeout=2.0)

SimulatorFactory = Callable[..., Awaitable[SegmindSimulator]]
SegmindClientFactory = Callable[..., SegmindClient]


@pytest.fixture
def segmind_api_key() -> str:
    """The key the default simulator requires and the default client sends."""
    return TEST_SEGMIND_API_KEY


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only when something sleeps on it (sleeps are recorded)."""
    return FakeClock()


@pytest.fixture
async def simulator_factory(segmind_api_key: str) -> AsyncIterator[SimulatorFactory]:
    """Start simulators: ``await simulator_factory(clock=..., port=..., **SimulatorConfig fields)``.

    Defaults: queue 0.05 s, processing 0.1 s, the test key required, real clock, a free
    loopback port. Every simulator started here is stopped after the test.
    """
    started: list[SegmindSimulator] = []

    async def make(*, clock: Clock | None = None, port: int = 0, **config: Any) -> SegmindSimulator:
        settings: dict[str, Any] = {
            "queue_seconds": 0.05,
            "processing_seconds": 0.1,
            "api_key": segmind_api_key,
        }
        settings.update(config)
        simulator = SegmindSimulator(SimulatorConfig(**settings), clock=clock)
        started.append(simulator)
        await simulator.start("127.0.0.1", port)
        return simulator

    yield make
    for simulator in reversed(started):
        await simulator.stop()


@pytest.fixture
async def simulator(simulator_factory: SimulatorFactory) -> SegmindSimulator:
    """A running simulator with short timings that requires ``segmind_api_key``."""
    return await simulator_factory()


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp session for the test, closed after it (like the bot's shared session)."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def segmind_client_factory(
    http_session: aiohttp.ClientSession, segmind_api_key: str
) -> SegmindClientFactory:
    """Build clients: ``segmind_client_factory(base_url, **SegmindClient keyword overrides)``.

    Defaults: the test key, ``FAST_RETRY_POLICY``, polls every 0.01 s growing to 0.05 s,
    a seeded RNG (reproducible jitter) and the real clock.
    """

    def make(base_url: str, **overrides: Any) -> SegmindClient:
        options: dict[str, Any] = {
            "api_key": segmind_api_key,
            "policy": FAST_RETRY_POLICY,
            "poll_interval": 0.01,
            "max_poll_interval": 0.05,
            "rng": random.Random(1234),
        }
        options.update(overrides)
        return SegmindClient(http_session, base_url=base_url, **options)

    return make


@pytest.fixture
def segmind_client(
    segmind_client_factory: SegmindClientFactory, simulator: SegmindSimulator
) -> SegmindClient:
    """A client for ``simulator`` with the test key and tiny retry delays."""
    return segmind_client_factory(simulator.base_url)


# --- Storage: the same tests on SQLite and on a real PostgreSQL server --------------------
#
# ``database_location`` is a new, migrated database to hand to ``Storage.open``: a SQLite
# file for the [sqlite] run of a test, a database on the test run's own PostgreSQL server
# for its [postgresql] run. ``database_locations`` makes more than one.

from pathlib import Path as _Path

from tests.postgres_server import REQUIRED as _POSTGRES_REQUIRED
from tests.postgres_server import PostgresServer, bin_dir

DatabaseLocation = _Path | str
DatabaseLocations = Callable[[], Awaitable[DatabaseLocation]]


@pytest.fixture(scope="session")
def postgres_server() -> Any:
    """A PostgreSQL server on loopback for the whole run (skipped where none is installed)."""
    found = bin_dir()
    if found is None:
        message = "PostgreSQL (initdb, pg_ctl) is not installed: .ci/run installs it"
        if _POSTGRES_REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(found)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> str:
    """Which database engine this run of the test uses."""
    return str(request.param)


@pytest.fixture
async def database_locations(
    engine: str, request: pytest.FixtureRequest, tmp_path: _Path
) -> AsyncIterator[DatabaseLocations]:
    """Make new databases of this run's engine: ``await database_locations()``."""
    made: list[str] = []
    server: PostgresServer | None = None
    if engine == "postgresql":
        server = request.getfixturevalue("postgres_server")
    count = 0

    async def make() -> DatabaseLocation:
        nonlocal count
        count += 1
        if server is None:
            return tmp_path / f"bot{count}.db"
        url = await server.new_database()
        made.append(url)
        return url

    yield make
    for url in made:
        assert server is not None
        await server.drop_database(url)


@pytest.fixture
async def database_location(database_locations: DatabaseLocations) -> DatabaseLocation:
    """A new, migrated database of this run's engine, for ``Storage.open``."""
    return await database_locations()
