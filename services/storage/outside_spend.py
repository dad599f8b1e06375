"""Clips paid for outside Discord (`bot.py generate`), kept in the bot's own jobs table.

The CLI makes its clip on a scratch database. What it spends is one row here, in the
table the operator's daily ceiling sums (``JobStore.counted_since``), so the bot and the
CLI together stay under MAX_DAILY_SPEND_USD. The row belongs to server, channel and
member 0, which Discord never uses, so no server's usage lists or limits see it.

It is never in a state a restarted bot resumes (queued, submitting, ...): the bot would
submit, and bill, the clip a second time. It is held as UNKNOWN, which counts and is
terminal, from the moment it is admitted until the CLI knows what Segmind did.
"""

from __future__ import annotations

from services.models import Job, JobState, VideoRequest
from services.storage.database import Transaction
from services.storage.jobs import JobStore, NewJob

OUTSIDE_DISCORD = 0  # the server, channel and member id of a CLI clip; no Discord id is 0
HELD_NOTE = "made by `bot.py generate`; counted until its outcome is known"


async def hold_outside_clip(
    jobs: JobStore, request: VideoRequest, *, cost_usd: float, now: float, tx: Transaction
) -> int:
    """Count a CLI clip from now on, in the caller's transaction; returns the row's id.

    In the transaction that checked the ceiling, so a bot admitting at the same moment
    sees this clip or is seen by it (the database's write lock spans both processes).
    """
    job = await jobs.insert(
        NewJob(
            guild_id=OUTSIDE_DISCORD,
            channel_id=OUTSIDE_DISCORD,
            user_id=OUTSIDE_DISCORD,
            request=request,
            created_at=now,
            cost_usd=cost_usd,
        ),
        tx=tx,
    )
    # Inserted as QUEUED; made UNKNOWN before the commit, so no bot ever sees it queued.
    await tx.execute(
        "UPDATE jobs SET state = ?, error = ? WHERE id = ?",
        (JobState.UNKNOWN.value, HELD_NOTE, job.id),
    )
    return job.id


async def record_outside_outcome(jobs: JobStore, job_id: int, ran: Job, *, now: float) -> None:
    """Keep the held row counted if Segmind may have billed ``ran``; release it if not.

    ``ran`` is the job as the CLI's scratch database ended it.
    """
    if ran.request_id is not None:
        # Accepted, so billed: counted by its request id whatever happened next. A state
        # the runner would resume is never copied (it cannot be one after the run anyway).
        await jobs.update(
            job_id,
            now=now,
            state=ran.state if ran.state.is_terminal else JobState.UNKNOWN,
            request_id=ran.request_id,
            submitted_at=ran.submitted_at,
            finished_at=ran.finished_at or now,
            error=ran.error,
        )
    elif not ran.counts_toward_limit:
        # Refused at submit, or never sent: Segmind billed nothing, so neither does the day.
        await jobs.update(
            job_id,
            now=now,
            state=JobState.FAILED,
            finished_at=now,
            error=ran.error or "not sent to Segmind",
        )
    # Otherwise the submit's answer was lost: it stays UNKNOWN, counted, as the bot's would.
