"""The job runner's listener in Discord: shows progress, posts the clip, reports a failure.

The runner says what happened (``services.job_listener.JobListener``); this turns it into the
job's messages, through the throttle (calm progress edits) and the messenger (whatever
route to the member still works). Once progress has moved to channel messages, the edits of
all jobs in a channel share its budget (``services.channel_budget``) fairly: the message
shown longest ago goes next, and the clip or a failure goes ahead of them all.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from cogs import words
from cogs.gallery.publisher import GalleryPublisher
from cogs.video import render
from cogs.video.buttons import KEEP_BUTTONS, progress_view, result_view
from cogs.video.messenger import Clip, JobMessenger, ResultMessage
from services.channel_budget import CHANNEL_WINDOW, CHANNEL_WRITES, ChannelBudget
from services.errors import BotError, GenerationFailed, SegmindBadRequest
from services.failure_notices import StoredFailure
from services.models import GalleryMode, Job, Progress, ProgressPhase
from services.runner_config import SEGMIND_RETENTION_SECONDS
from services.throttle import EditThrottle

if TYPE_CHECKING:
    from cogs.videobot import VideoBot

log = logging.getLogger(__name__)

PRODUCTION_EDIT_INTERVAL = 5.0  # Timings' default: Discord's own window is as long


class OutlookLatch:
    """Once a job's progress said "almost done" or "taking longer", it never names a time again.

    The forecast's conditional mean can jump out again when a job outlives the early mode
    of a two-mode history; a member told "almost done" would then see a finish time minutes
    away. Past "almost done" the job stays there until it is late, and late it stays. For
    the same reason the bar never moves back: it shows the furthest it has been.
    """

    def __init__(self) -> None:
        self._late: dict[int, bool] = {}  # job id -> late (else "almost done") once said
        self._furthest: dict[int, float] = {}  # job id -> the fullest bar shown

    def steady(self, progress: Progress) -> Progress:
        """``progress`` as it may be shown, given what this job's progress said before."""
        furthest = max(progress.fraction, self._furthest.get(progress.job_id, 0.0))
        self._furthest[progress.job_id] = furthest
        return self._said(replace(progress, fraction=furthest))

    def _said(self, progress: Progress) -> Progress:
        if progress.expected <= 0 or progress.elapsed <= 0:
            return progress  # no end is shown before Segmind has started it
        said = render.outlook(progress)
        was_late = self._late.get(progress.job_id)
        if was_late or said == render.LATE:
            self._late[progress.job_id] = True
            return progress if said == render.LATE else replace(progress, late=True)
        if was_late is None and said is None:
            return progress
        self._late[progress.job_id] = False
        # Under half a minute left in 4 cases of 5 is what "almost done" stands for.
        return progress if said == render.ALMOST_DONE else replace(progress, likely_left=0.0)

    def forget(self, job_id: int) -> None:
        self._late.pop(job_id, None)
        self._furthest.pop(job_id, None)


class JobPresenter:
    """Implements ``JobListener`` for the Discord bot."""

    def __init__(self, bot: VideoBot) -> None:
        self._bot = bot
        self._services = bot.services
        self.messenger = JobMessenger(bot)
        self._throttle = EditThrottle(bot.timings.progress_edit_interval)
        # Discord's window scales with the bot's pacing: production keeps both at 5 s; tests
        # that shorten the edit interval (to see edits at once) shorten the window with it.
        pace = bot.timings.progress_edit_interval / PRODUCTION_EDIT_INTERVAL
        self.pace_channels(ChannelBudget(CHANNEL_WRITES, max(CHANNEL_WINDOW * pace, 0.001)))
        self._fetch_hold = bot.timings.fetch_hold
        self._allowance: dict[int, str] = {}  # "$0.36 · 2 of 3 clips left today", per job
        self._outlooks = OutlookLatch()
        # Jobs whose progress message carries its Cancel button: edits leave it as it is.
        self._buttons_shown: set[int] = set()
        self._background = bot.background
        self.gallery = GalleryPublisher(bot)

    # --- what the starter tells it --------------------------------------------------------

    def remember_allowance(self, job_id: int, text: str) -> None:
        self._allowance[job_id] = text

    def forget_job(self, job_id: int) -> None:
        """What was kept to show the job's progress: it is over, or never began."""
        self._allowance.pop(job_id, None)
        self._outlooks.forget(job_id)
        self._buttons_shown.discard(job_id)

    def allowance_of(self, job: Job) -> str | None:
        """What admission said; after a restart only the stored price is known."""
        known = self._allowance.get(job.id)
        if known is None and job.cost_usd > 0:
            return words.format_usd(job.cost_usd)
        return known

    def pace_channels(self, budget: ChannelBudget) -> None:
        """Share channel writes through ``budget`` (tests and benches shrink Discord's window)."""
        self.messenger.budget = budget
        self._throttle.budget = budget

    def note_shown(self, job_id: int, progress: Progress) -> None:
        """The first progress message, with its buttons, was posted outside the throttle: edits
        keep their distance, and leave the buttons as they are."""
        self._throttle.note_sent(job_id, render.progress_key(progress))
        self._buttons_shown.add(job_id)

    # --- JobListener --------------------------------------------------------------------

    async def on_progress(self, job: Job, progress: Progress) -> None:
        allowance = self.allowance_of(job)
        progress = self._outlooks.steady(progress)

        async def send() -> None:
            current = await self._current(job)
            if current.state.is_terminal:
                return
            shown = job.id in self._buttons_shown
            await self.messenger.edit_progress(
                current,
                embed=render.progress_embed(current, progress, allowance),
                # Built and sent again only when the message may lack them: most edits of
                # most jobs, each paying for a view, signed custom ids and their bytes.
                view=KEEP_BUTTONS if shown else progress_view(current, self._bot.custom_ids),
                turn_taken=True,
            )
            if current.message_id is not None:  # else nothing was edited: no buttons shown
                self._buttons_shown.add(job.id)

        self._throttle.update(
            job.id,
            render.progress_key(progress),
            send,
            lane=lambda: self.messenger.progress_lane(job),
            hold=self._fetch_hold if progress.phase is ProgressPhase.DOWNLOADING else 0.0,
        )

    async def on_clip_ready(self, job: Job) -> int | None:
        # Downloaded: a held "Fetching the video" must not show up while the clip is posted.
        self._throttle.withdraw(job.id)
        current = await self._current(job)
        allowance = self.allowance_of(current)
        assert current.clip_path is not None
        # Segmind's link lives one hour; past that (a late restart) it is no fallback at all.
        age = self._services.clock.time() - (current.submitted_at or 0)
        link = current.video_url if age < SEGMIND_RETENTION_SECONDS else None
        # Private clips reach the gallery only once shared, through the shared post.
        gallery = None if current.private else await self.gallery.gallery_of(current.guild_id)
        if gallery is not None:
            self.gallery.keep_clip(current)  # the runner removes a delivered public clip
        result = ResultMessage(
            clip=Clip(Path(current.clip_path), link),
            content=render.result_content(current),
            link_content=render.result_content(current, link=current.video_url),
            embed=render.result_embed(current, allowance),
            view=result_view(
                current,
                self._bot.custom_ids,
                publish=gallery is not None and gallery.mode is GalleryMode.MANUAL,
            ),
        )
        if current.private:
            # The private progress message becomes the clip: no progress edit may follow.
            posted: list[int | None] = []

            async def replace_progress() -> None:
                posted.append(await self.messenger.send_result(current, result))

            await self._throttle.final(job.id, replace_progress)
            self.forget_job(job.id)
            self.messenger.forget(job.id)
            return posted[0]
        message_id = await self.messenger.send_result(current, result)
        self.forget_job(job.id)
        # Return at once so the runner records the delivery; the cosmetic "finished" edit
        # must not stand between a posted clip and its record (or a restart posts it twice).
        self._background.spawn(self._finish_progress(current, message_id))
        if gallery is not None and gallery.mode is GalleryMode.AUTO:
            back = None
            if message_id is not None and not self.messenger.sent_by_dm(job.id):
                back = words.message_url(current.guild_id, current.channel_id, message_id)
            # After the runner records the delivery; a gallery failure never fails the job.
            self._background.spawn(self.gallery.publish_when_delivered(current, back))
        return message_id

    async def on_failed(self, job: Job, error: BotError) -> None:
        current = await self._current(job)
        reason = error.user_message
        if isinstance(error, (GenerationFailed, SegmindBadRequest, StoredFailure)):
            # These carry (or may carry) Segmind's own text, which may echo the prompt: show
            # it literally.
            reason = render.shown_text(reason, render.FIELD_VALUE_MAX)
        embed = render.failure_embed(current, reason)
        try:
            # Raises while Discord is down: the runner asks again (services.failure_notices).
            await self._throttle.final(
                job.id, lambda: self.messenger.send_failure(current, embed=embed)
            )
        finally:
            # After the edit under way (``final`` waits for it), which would note it again.
            self.forget_job(job.id)
            self.messenger.forget(job.id)

    async def on_operator_alert(self, job: Job, error: BotError) -> None:
        await self._bot.alerts.account_problem(job.guild_id, error)

    # --- helpers ------------------------------------------------------------------------

    async def _current(self, job: Job) -> Job:
        """The stored job: message ids and tokens change underneath the runner's copy."""
        return await self._services.runner.stored(job.id) or job

    async def _finish_progress(self, job: Job, result_message_id: int | None) -> None:
        where = render.where_posted(job, result_message_id, by_dm=self.messenger.sent_by_dm(job.id))
        try:
            await self._throttle.final(job.id, lambda: self._mark_progress_finished(job, where))
        except Exception:
            log.info("job=%s progress message could not be finished", job.id, exc_info=True)
        finally:
            self.forget_job(job.id)  # again: an edit under way at the delivery noted it anew
            self.messenger.forget(job.id)

    async def _mark_progress_finished(self, job: Job, where: str) -> None:
        current = await self._current(job)
        try:
            await self.messenger.edit_progress(
                current, embed=render.finished_embed(current, where), view=None
            )
        except discord.HTTPException:
            log.info("job=%s progress message could not be marked finished", job.id)
