"""After a crash: requests whose acknowledgement Discord stored, but the bot did not record.

The bot answers `/video` with its progress message, then stores that message's id. A
process killed in between leaves a job admitted and counted, with no message id, while
the member looks at "Waiting for a free slot". The interaction's token can still read
its original response for 15 minutes: then the job resumes on that message. Past that,
or if Discord has no such response, nothing was sent to Segmind: the job ends at no
cost and the member is told.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord.webhook.async_ import async_context

from services.models import Job, JobState

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

NOT_STARTED = "Your video could not be started after the bot restarted; nothing was spent."


def unacknowledged(jobs: list[Job]) -> list[Job]:
    """Jobs admitted through an interaction whose answer was never recorded."""
    return [
        job
        for job in jobs
        if job.state is JobState.QUEUED and job.interaction_token and job.message_id is None
    ]


async def recover_unacknowledged(bot: VideoBot) -> None:
    """Resume each such job on its original response, or end it at no cost (before the runner)."""
    storage, clock = bot.services.storage, bot.services.clock
    shared = bot.services.settings.database_url is not None
    for job in unacknowledged(await storage.jobs.unfinished()):
        if shared and job.lease_until is not None and job.lease_until > clock.time():
            continue  # another live process is answering it right now

        message_id = await _original_response_id(bot, job)
        if message_id is not None:
            await storage.jobs.update(job.id, now=clock.time(), message_id=message_id)
            log.info("job=%s resumed on its acknowledged message=%s", job.id, message_id)
            continue
        await storage.jobs.update(
            job.id,
            now=clock.time(),
            state=JobState.CANCELLED,
            error="not acknowledged",
            finished_at=clock.time(),
        )
        log.warning("job=%s was never acknowledged; ended at no cost", job.id)
        # In the background: a Discord outage at start must not hold the gateway back while
        # discord.py retries each message, and new requests wait unanswered.
        bot.background.spawn(_tell_not_started(bot, job))


async def _original_response_id(bot: VideoBot, job: Job) -> int | None:
    if not bot.presenter.messenger.token_usable(job):
        return None
    assert job.application_id is not None and job.interaction_token is not None
    # As discord.py's Interaction.original_response asks: its route keeps "@original" as is.
    session: Any = getattr(bot.http, "_HTTPClient__session", None)
    if session is None:
        return None
    try:
        data = await async_context.get().get_original_interaction_response(
            job.application_id, job.interaction_token, session=session
        )
    except discord.HTTPException as error:
        log.info("job=%s has no original response (code=%s)", job.id, error.code)
        return None
    except (aiohttp.ClientError, OSError) as error:
        # Discord out of reach at start must not stop the bot: the job ends unsent.
        log.warning("job=%s original response could not be read: %s", job.id, error)
        return None
    return int(data["id"])


async def _tell_not_started(bot: VideoBot, job: Job) -> None:
    """Best effort: privately for a private request, else a line pinging only the requester."""
    mention = discord.AllowedMentions(users=[discord.Object(job.user_id)])
    try:
        if job.private:
            user = bot.get_user(job.user_id) or await bot.fetch_user(job.user_id)
            await user.send(NOT_STARTED)
        else:
            channel = bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
            await channel.send(f"<@{job.user_id}> {NOT_STARTED}", allowed_mentions=mention)
    except discord.HTTPException as error:
        log.info("job=%s requester could not be told (code=%s)", job.id, error.code)


async def end_jobs_of_unserved_servers(bot: VideoBot) -> None:
    """Queued jobs from a server no longer on ALLOWED_GUILDS: ended unsent, at no cost.

    Otherwise the restart would submit (and bill) them before the bot leaves the server.
    """
    storage, clock, settings = bot.services.storage, bot.services.clock, bot.services.settings
    for job in await storage.jobs.unfinished():
        if job.state is JobState.QUEUED and not settings.allows_guild(job.guild_id):
            await storage.jobs.update(
                job.id,
                now=clock.time(),
                state=JobState.CANCELLED,
                error="server not on ALLOWED_GUILDS",
                finished_at=clock.time(),
            )
            log.warning("job=%s guild=%s is not on ALLOWED_GUILDS: not sent", job.id, job.guild_id)
