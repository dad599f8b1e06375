"""Job buttons as discord.py builds them from a clicked custom id."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import discord

from cogs.video.buttons import JobButton


class Response:
    def __init__(self) -> None:
        self.sent: list[tuple[str | None, dict[str, Any]]] = []

    def is_done(self) -> bool:
        return bool(self.sent)

    async def send_message(self, content: str | None = None, **kwargs: Any) -> None:
        self.sent.append((content, kwargs))


async def test_a_button_from_another_version_is_answered_privately() -> None:
    match = JobButton.__discord_ui_compiled_template__.fullmatch("vjob:zap:12")
    assert match is not None
    base = discord.ui.Button(custom_id="vjob:zap:12")
    interaction: Any = SimpleNamespace(
        response=Response(),
        channel=None,
        id=1,
        guild_id=5,
        channel_id=6,
        user=SimpleNamespace(id=7),
    )

    # discord.py drops the click unanswered if building the item raises, so it must not.
    item = await JobButton.from_custom_id(interaction, base, match)
    await item.callback(interaction)

    [(content, kwargs)] = interaction.response.sent
    assert content is not None and "older version" in content
    assert kwargs["ephemeral"] is True
