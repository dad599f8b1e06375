"""`/videoqueue` says where a job stands in the same words as the job's progress message."""

from __future__ import annotations

import dataclasses

import pytest

from cogs.queue.wording import Scope, where_it_stands
from cogs.video import render
from services.job_queue import QueueEntry
from services.jobs import BEHIND_OWN_JOB
from services.models import Job, JobState, Progress, ProgressPhase, SegmindState, VideoRequest

JOB = Job(7, 2, 3, 4, VideoRequest.create("a fox", seed=1), JobState.QUEUED, 0.0)


def entry(
    state: JobState,
    *,
    place: int | None = None,
    started: bool = False,
    segmind_state: str | None = None,
) -> QueueEntry:
    job = dataclasses.replace(JOB, state=state, segmind_state=segmind_state)
    return QueueEntry(job, place, started, None)


@pytest.mark.parametrize(
    ("queued", "progress"),
    [
        (entry(JobState.QUEUED, place=1), Progress(7, ProgressPhase.QUEUED, position=1)),
        (entry(JobState.QUEUED, place=3), Progress(7, ProgressPhase.QUEUED, position=3)),
        (
            entry(JobState.QUEUED, place=BEHIND_OWN_JOB),
            Progress(7, ProgressPhase.QUEUED, behind_own_job=True),
        ),
        (entry(JobState.QUEUED), Progress(7, ProgressPhase.QUEUED)),
        (entry(JobState.QUEUED, started=True), Progress(7, ProgressPhase.SUBMITTING)),
        (entry(JobState.SUBMITTING, started=True), Progress(7, ProgressPhase.SUBMITTING)),
        (entry(JobState.SUBMITTED, started=True), Progress(7, ProgressPhase.SEGMIND_QUEUED)),
        (entry(JobState.PROCESSING, started=True), Progress(7, ProgressPhase.PROCESSING)),
        (
            entry(JobState.PROCESSING, started=True, segmind_state=SegmindState.COMPLETED.value),
            Progress(7, ProgressPhase.DOWNLOADING),
        ),
    ],
)
def test_a_member_reads_the_progress_messages_words(queued: QueueEntry, progress: Progress) -> None:
    assert where_it_stands(queued, Scope.MINE) == render.status_line(progress)


def test_the_queue_and_the_progress_message_agree_on_the_common_states() -> None:
    assert where_it_stands(entry(JobState.QUEUED, place=1), Scope.MINE) == (
        "Waiting in line: you are next"
    )
    assert where_it_stands(entry(JobState.PROCESSING, started=True), Scope.MINE) == "Generating"
    assert where_it_stands(entry(JobState.SUBMITTING, started=True), Scope.MINE) == (
        "Sending to Segmind…"
    )


def test_a_moderator_reads_someone_elses_wait_in_the_third_person() -> None:
    assert where_it_stands(entry(JobState.QUEUED, place=1), Scope.SERVER) == (
        "Waiting in line: next"
    )
    assert where_it_stands(entry(JobState.QUEUED, place=3), Scope.SERVER) == (
        "Waiting in line: 2 ahead"
    )
    assert where_it_stands(entry(JobState.QUEUED, place=BEHIND_OWN_JOB), Scope.SERVER) == (
        "Waiting for the member's other video to finish"
    )
    assert where_it_stands(entry(JobState.PROCESSING, started=True), Scope.SERVER) == ("Generating")
    assert where_it_stands(entry(JobState.DOWNLOADED, started=True), Scope.SERVER) == (
        "Made; being posted"
    )
