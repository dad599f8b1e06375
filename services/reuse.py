"""Not paying twice for the same clip: a seeded request already delivered on the server.

CogVideoX makes the same clip from the same request and seed, so asking again for exactly
a delivered request would only bill the server owner for a copy. This is not admission's
duplicate window (one member's double click, seconds apart): any member's delivered clip
counts, however old, as long as the asker may see it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.clips import ClipFiles
from services.models import Job, VideoRequest
from services.storage.jobs import JobStore


@dataclass(frozen=True, slots=True)
class EarlierClip:
    """A delivered clip of the very request, and how the asker can get to it.

    Exactly one of ``message_id`` (a post in ``job.channel_id`` everyone there sees) and
    ``clip_path`` (the asker's own private clip, to show them again) is set.
    """

    job: Job
    message_id: int | None = None
    clip_path: Path | None = None


def anew_fingerprint(job_id: int) -> str:
    """Clicks of one "Make it anew" are the same request: a double click makes one clip."""
    return f"anew:{job_id}"


async def find_earlier_clip(
    jobs: JobStore,
    clips: ClipFiles,
    *,
    guild_id: int,
    user_id: int,
    request: VideoRequest,
    may_offer: Callable[[Job], bool],
) -> EarlierClip | None:
    """The newest delivered clip of ``request`` on the server that ``user_id`` may see.

    A private clip is offered only to its requester, unless it was shared (then its shared
    post is). A private clip's own message is ephemeral or a DM, which no link opens, so the
    requester gets the stored file again; once that file is swept, it is not offered. A post
    deleted with its Delete button is not offered. ``may_offer`` is the caller's say on
    what storage cannot know: whether the asker may view the job's channel, for one.
    """
    for job in await jobs.delivered_with_request(guild_id, request, viewer_id=user_id):
        if not may_offer(job):
            continue
        if not job.private:
            if job.result_deleted_at is None:
                return EarlierClip(job, message_id=job.result_message_id)
            continue
        if job.shared_message_id is not None and job.shared_deleted_at is None:
            return EarlierClip(job, message_id=job.shared_message_id)
        if job.user_id == user_id and clips.exists(job) and job.clip_path:
            return EarlierClip(job, clip_path=Path(job.clip_path))
    return None
