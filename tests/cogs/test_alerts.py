"""Where moderators are told: never a public channel when the owner can be told privately."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import discord

from cogs.alerts import notify_moderators


class Inbox:
    """A channel or the owner's DMs: records what it was sent, or refuses."""

    def __init__(self, *, refuses: bool = False) -> None:
        self.refuses = refuses
        self.sent: list[str] = []
        self.id = 1

    def permissions_for(self, _: Any) -> discord.Permissions:
        return discord.Permissions(send_messages=True)

    async def send(self, text: str, **_: Any) -> None:
        if self.refuses:
            raise discord.HTTPException(SimpleNamespace(status=403, reason="Forbidden"), "closed")
        self.sent.append(text)


def bot_without_alert_channel() -> Any:
    async def alert_channel_id(_: int) -> None:
        return None

    return SimpleNamespace(
        services=SimpleNamespace(limits=SimpleNamespace(alert_channel_id=alert_channel_id))
    )


def guild(system: Inbox, owner: Inbox) -> Any:
    return SimpleNamespace(
        id=5, name="Server", get_channel=lambda _: None, system_channel=system, me=object(),
        owner=owner, owner_id=42,
    )  # fmt: skip


async def notify(guild: Any, text: str) -> bool:
    bot = bot_without_alert_channel()
    return await notify_moderators(bot.services.limits, bot, guild, text)


async def test_without_an_alert_channel_the_owner_hears_it_not_the_public_system_channel():
    system, owner = Inbox(), Inbox()
    assert await notify(guild(system, owner), "cap")
    assert system.sent == [] and "cap" in owner.sent[0]


async def test_the_system_channel_is_the_last_resort_when_the_owner_takes_no_dms():
    system, owner = Inbox(), Inbox(refuses=True)
    assert await notify(guild(system, owner), "cap")
    assert system.sent == ["cap"]
