"""Run the real bot.py in its own process, pointed at a fake Discord on loopback.

    FAKE_DISCORD_API=http://127.0.0.1:PORT/api/v10 \\
    FAKE_DISCORD_GATEWAY=ws://127.0.0.1:PORT/gateway \\
        python -m tests.harness.run_bot [bot.py arguments]

It sets discord.py's two seams (REST base and default gateway, as tests/fakediscord does
in-process) and then calls bot.main() unchanged, so signals, settings, logging and
shutdown are exactly the production ones.
"""

from __future__ import annotations

import os
import sys

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

Route.BASE = os.environ["FAKE_DISCORD_API"]
DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["FAKE_DISCORD_GATEWAY"])

import bot

sys.exit(bot.main(sys.argv[1:]))
