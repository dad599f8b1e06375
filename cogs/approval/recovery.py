"""Approval at start-up: what a stopped process left half done.

An approved request whose job was never linked (the process stopped between the approval
and the link), and a pending request whose moderators' card was never posted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from services.approval_models import HeldRequest

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

RESTART_WHY = (
    "A moderator approved this request, but the bot restarted before it could start it. "
    "Nothing was spent. Please ask again."
)


async def recover_stranded(bot: VideoBot) -> None:
    """Approved requests a stopped process left without their job: at start, before the
    runner, and from every approval sweep (``Approvals.recover`` leaves the newest to a
    later one: another process may be admitting them).

    The database work happens now (a found job gets the member's message, so the runner
    resumes it there); telling the member and editing the card go to the background, so a
    slow Discord does not hold up the start.
    """
    for held, job in await bot.services.approvals.recover():
        if job is None:
            bot.background.spawn(_tell_ended(bot, held))
        else:
            bot.background.spawn(bot.approvals.edit_alert(held))


async def _tell_ended(bot: VideoBot, held: HeldRequest) -> None:
    await bot.approvals.tell_member(held, "Approved, but it could not be started", RESTART_WHY)
    await bot.approvals.edit_alert(held)


async def post_missing_cards(bot: VideoBot, held_before: float) -> None:
    """After READY: cards for requests held before this start that were never posted (the
    process stopped before it asked the moderators).

    Only those held before this start, so a request being held right now (its card is on
    its way) is never posted twice.
    """
    await bot.wait_until_ready()
    try:
        for held in await bot.services.approvals.uncarded(held_before):
            guild = bot.get_guild(held.guild_id)
            if guild is None:
                continue  # not served now; it expires in its time, and the member is told
            log.info("approval=%s moderators' card posted after a restart", held.id)
            await bot.approvals.ask_moderators(guild, held)
    except Exception:
        log.exception("missing approval cards could not be posted")
