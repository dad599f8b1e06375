"""The environment of a bot process (tests/harness/run_bot.py) pointed at a fake Discord.

Nothing of the outer environment's Discord, Segmind or simulator settings leaks in; the
database is ``bot.db`` in the test's folder; ``settings`` add or override the rest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def fake_discord_env(folder: Path, fake: Any) -> dict[str, str]:
    """What every bot process pointed at the fake Discord needs, whatever else it inherits."""
    return {
        "PYTHONPATH": str(ROOT),
        "FAKE_DISCORD_API": fake.api_base,
        "FAKE_DISCORD_GATEWAY": fake.gateway_url,
        "DISCORD_TOKEN": fake.world.token,
        "DATABASE_URL": f"sqlite:///{folder / 'bot.db'}",
    }


def bot_env(tmp_path: Path, fake: Any, **settings: str) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SEGMIND_", "SIMULAT"))
    }
    return {**clean, **fake_discord_env(tmp_path, fake), **settings}
