"""Pointing the real discord.py at the fake through the two seams it exposes, and back.

discord.py 2.7.1 has no option for its endpoints, but reads two class attributes:
- `discord.http.Route.BASE`: every REST URL (bot routes and interaction webhooks alike) is
  `Route.BASE + path`; `discord.http._set_api_version` itself assigns it.
- `discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`: where a plain `Client`/`Bot` opens its
  first websocket. `Client.connect` does NOT call GET /gateway/bot (only AutoShardedClient does);
  after READY it uses `resume_gateway_url`, and an INVALID_SESSION sends it back to
  DEFAULT_GATEWAY. discord.py appends `?v=10&encoding=json&compress=zlib-stream` with yarl, so a
  `ws://` URL works as well as `wss://`.
Nothing else is patched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

if TYPE_CHECKING:
    import discord

    from .fake import FakeDiscord


@contextlib.contextmanager
def point_discord_py_at(fake: FakeDiscord) -> Iterator[None]:
    """Within the block, discord.py's REST base and default gateway are the fake's."""
    if not fake.base_url:
        raise RuntimeError("start the fake first: await fake.start()")
    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    Route.BASE = fake.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


@contextlib.asynccontextmanager
async def running_client(
    client: discord.Client, fake: FakeDiscord, *, timeout: float = 5.0
) -> AsyncIterator[discord.Client]:
    """Log `client` in against the fake, connect, wait for on_ready; close cleanly on exit.

    Connects with `reconnect=False` so a gateway refusal fails the test instead of looping: it
    surfaces as `discord.ConnectionClosed` with Discord's close code (4014 for a privileged
    intent the application lacks, 4004 for a bad token). Build the client with a small
    `guild_ready_timeout` (e.g. 0.05): discord.py waits that long after the last GUILD_CREATE
    before on_ready.
    """
    await client.login(fake.world.token)
    connection = asyncio.create_task(client.connect(reconnect=False))
    ready = asyncio.create_task(client.wait_until_ready())
    try:
        done, _ = await asyncio.wait(
            {connection, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if connection in done:
            connection.result()  # re-raise why the gateway connection ended
            raise RuntimeError("the client disconnected before becoming ready")
        if ready not in done:
            raise TimeoutError(f"client not ready within {timeout}s\n{fake.describe()}")
        yield client
    finally:
        ready.cancel()
        await client.close()
        ended = (await asyncio.gather(connection, return_exceptions=True))[0]
    if isinstance(ended, Exception):
        raise ended  # the gateway connection failed while the test ran
