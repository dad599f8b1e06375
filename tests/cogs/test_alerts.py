"""Where moderators are told: never a public channel when the owner can be told privately."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import discord

from cogs.alerts import ModeratorAlerts, notify_moderators
from cogs.video.presenter import JobPresenter
from cogs.videobot import Timings
from services.background import BackgroundTasks
from services.errors import SegmindAuthError, SegmindInsufficientCredits
from services.models import Job, JobState, VideoRequest
from tests.fakeclock import FakeClock


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


class SlowInbox(Inbox):
    """A channel whose send takes a moment, as a real one does."""

    async def send(self, text: str, **kwargs: Any) -> None:
        await asyncio.sleep(0.01)
        await super().send(text, **kwargs)


def bot_with_alerts(system: Inbox, clock: FakeClock) -> Any:
    async def alert_channel_id(_: int) -> None:
        return None

    refuses_dms = Inbox(refuses=True)
    server = SimpleNamespace(
        id=5, name="Server", get_channel=lambda _: None, system_channel=system, me=object(),
        owner=refuses_dms, owner_id=42,
    )  # fmt: skip
    bot = SimpleNamespace(
        background=BackgroundTasks(),
        get_guild=lambda guild_id: server if guild_id == 5 else None,
        timings=Timings(),
        services=SimpleNamespace(
            clock=clock,
            limits=SimpleNamespace(alert_channel_id=alert_channel_id),
            settings=SimpleNamespace(credits_recheck_seconds=600),
        ),
    )
    bot.alerts = ModeratorAlerts(bot)
    return bot


async def test_a_rejected_key_is_told_before_the_runner_moves_on():
    # The member's failure says the moderators were told, and a shutdown may close the
    # HTTP session right after: the alert must be sent by the time the listener returns.
    system = SlowInbox()
    bot = bot_with_alerts(system, FakeClock())
    job = Job(1, 5, 6, 7, VideoRequest.create("a fox", seed=1), JobState.FAILED, 0.0)
    await JobPresenter(bot).on_operator_alert(job, SegmindAuthError(status=401))
    assert len(system.sent) == 1 and "SEGMIND_API_KEY" in system.sent[0]


async def test_account_alerts_are_sent_once_an_hour_per_server_and_kind():
    system, clock = Inbox(), FakeClock()
    alerts = bot_with_alerts(system, clock).alerts
    for _ in range(3):
        await alerts.account_problem(5, SegmindAuthError(status=401))
    await alerts.account_problem(5, SegmindInsufficientCredits())
    assert len(system.sent) == 2 and "out of credits" in system.sent[1]
    clock.advance(3601)
    await alerts.account_problem(5, SegmindAuthError(status=401))
    assert len(system.sent) == 3
