"""What the job runner tells the outside world, and the endings of a job that are its own.

The listener is the Discord presenter (cogs/video/presenter.py) or the CLI. It hears the
runner through ``JobReporter``, so a listener that fails never stops a job.
"""

from __future__ import annotations

import logging
from typing import Protocol

from services.errors import BotError
from services.models import Job, Progress

# The runner's log, whichever of its modules writes: its lines keep one name.
log = logging.getLogger("services.jobs")


class JobCancelled(BotError):
    user_message = "This video was cancelled."

    @classmethod
    def said_to(cls, requester_id: int, cancelled_by: int | None) -> JobCancelled:
        """The ending as its requester reads it: a moderator's cancel is not theirs to count.

        Who cancelled is not named here (the text is stored and may be shown literally after
        a restart); the failure message names them from ``Job.cancelled_by``. Nor is whether
        it counts: the failure message's Cost field says that, and saying it twice reads as
        the same sentence repeated.
        """
        if cancelled_by is None or cancelled_by == requester_id:
            return cls()
        return cls(
            "A moderator cancelled this video.",
            detail=f"cancelled by moderator user={cancelled_by}",
        )


class DeliveryFailed(BotError):
    user_message = "The video was made but could not be posted here."


class ClipLost(DeliveryFailed):
    """The downloaded clip's file vanished before it was posted: nothing is left to deliver."""

    user_message = (
        "The video was made, but its file was lost before it could be posted here. "
        "Please try again."
    )


class DownloadFailed(BotError):
    user_message = "The video was made, but the bot could not fetch it from Segmind."


class JobListener(Protocol):
    """What the runner tells the outside world (cogs/video/presenter.py, or the CLI)."""

    async def on_progress(self, job: Job, progress: Progress) -> None:
        """Something visible changed: queue position, Segmind state, elapsed time."""

    async def on_clip_ready(self, job: Job) -> int | None:
        """The clip is at ``job.clip_path``: deliver it; return the posted message id.

        Raise to have the runner retry later, for as long as the clip is on disk; the job
        stays stored (DOWNLOADED) until delivered. Raise ``ClipUndeliverable`` only when no
        route can ever reach the member: that ends the job.
        """

    async def on_failed(self, job: Job, error: BotError) -> None:
        """The job ended without a clip; ``error.user_message`` says why, for the member.

        Raise to be asked again later (Discord is not answering): the member is owed this
        message (``services.failure_notices``). Return once it is shown, or when no route
        can ever show it.
        """

    async def on_operator_alert(self, job: Job, error: BotError) -> None:
        """Something the moderators must hear about (bad key, no credits)."""


class JobReporter:
    """Passes the runner's news to its listener, if any; a listener's error is only logged.

    A clip's post (``on_clip_ready``) and a failure's message (``on_failed``) are not news:
    their errors decide whether to try again, so ``services.clip_delivery`` and
    ``services.failure_notices`` call ``listener`` themselves.
    """

    def __init__(self, listener: JobListener | None = None) -> None:
        self.listener = listener

    async def progress(self, job: Job, progress: Progress) -> None:
        if self.listener is None:
            return
        try:
            await self.listener.on_progress(job, progress)
        except Exception:
            log.warning("job=%s progress update failed", job.id, exc_info=True)

    async def alert(self, job: Job, error: BotError) -> None:
        log.error("job=%s needs the operator: %s", job.id, error.detail)
        if self.listener is not None:
            try:
                await self.listener.on_operator_alert(job, error)
            except Exception:
                log.exception("job=%s could not alert moderators", job.id)
