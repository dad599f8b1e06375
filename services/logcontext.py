"""Who a log line is about: the job, server, channel, member and Segmind request, where known.

A job's task and an interaction's handler each run in their own asyncio context, so the ids
are set once where the work starts (``context_for`` when a job's task is created, ``enter``
when an interaction arrives) and every line logged inside, by any module, carries them.
``LogContextFilter`` copies them onto the record for the JSON format (services/logformat.py).
Only ids live here: never a token, a key or a prompt.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.models import Job

# The fields a line may carry, in the order the JSON format writes them.
FIELDS = ("job_id", "guild_id", "channel_id", "user_id", "request_id")

Fields = dict[str, int | str]

# One dict per job task or interaction, created fresh there (never shared between two):
# ``bind`` adds to it in place, so an id learned mid-job (Segmind's request id) is seen by
# the rest of that job's lines.
_current: contextvars.ContextVar[Fields | None] = contextvars.ContextVar(
    "videobot_log_context", default=None
)


def _known(fields: Mapping[str, int | str | None]) -> Fields:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"not a log context field: {sorted(unknown)}")
    return {name: value for name, value in fields.items() if value is not None}


def enter(**fields: int | str | None) -> None:
    """Start this task's context afresh with ``fields`` (an interaction's handler does)."""
    _current.set(_known(fields))


def bind(**fields: int | str | None) -> None:
    """Add ids learned along the way to this task's context (and the lines logged after)."""
    current = _current.get()
    if current is None:
        _current.set(_known(fields))
    else:
        current.update(_known(fields))


def context_for(**fields: int | str | None) -> contextvars.Context:
    """A context for a new task (``asyncio.create_task(..., context=...)``) with ``fields``."""
    context = contextvars.copy_context()
    context.run(enter, **fields)
    return context


def current() -> Fields:
    return dict(_current.get() or {})


class LogContextFilter(logging.Filter):
    """Puts the current ids on each record, unless the call passed its own (``extra=``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_current.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def job_context(job: Job) -> contextvars.Context:
    """The context a job's task runs in: every line it logs names the job and its people."""
    return context_for(
        job_id=job.id,
        guild_id=job.guild_id,
        channel_id=job.channel_id,
        user_id=job.user_id,
        request_id=job.request_id,
    )
