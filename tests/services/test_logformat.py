"""LOG_FORMAT=json: one object per line, carrying the ids of the job or interaction it is about."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from services import logcontext, logsafety
from services.logformat import JsonFormatter
from services.models import Job, JobState, VideoRequest

TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OTA6" + "x" * 60


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """A handler set up as configure_logging(level, "json") sets it up, with the redactor."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(logcontext.LogContextFilter())
    handler.addFilter(logsafety.RedactSecrets(["the-segmind-key-0123"]))
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield stream
    logger.removeHandler(handler)
    logger.propagate = True


def parsed(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def job(**changes: object) -> Job:
    fields: dict[str, object] = dict(
        id=17,
        guild_id=1001,
        channel_id=2002,
        user_id=3003,
        request=VideoRequest.create("a fox", seed=1),
        state=JobState.QUEUED,
        created_at=0.0,
    )
    fields.update(changes)
    return Job(**fields)  # type: ignore[arg-type]


def test_a_line_is_one_json_object_with_time_level_logger_and_message(lines):
    logging.getLogger("test.json").warning("disk %s is %d%% full", "/data", 93)
    [line] = parsed(lines)
    assert line["level"] == "WARNING"
    assert line["logger"] == "test.json"
    assert line["message"] == "disk /data is 93% full"
    assert str(line["time"]).endswith("+00:00") and "T" in str(line["time"])
    assert not set(line) & set(logcontext.FIELDS)  # no context: no ids invented


async def test_a_jobs_task_logs_its_ids_and_the_request_id_learned_midway(lines):
    log = logging.getLogger("test.json")

    async def run() -> None:
        log.info("submitting")
        logcontext.bind(request_id="req-abc")
        log.info("submitted")

    await asyncio.create_task(run(), context=logcontext.job_context(job()))
    log.info("outside any job")
    first, second, outside = parsed(lines)
    ids = {"job_id": 17, "guild_id": 1001, "channel_id": 2002, "user_id": 3003}
    assert {k: first[k] for k in ids} == ids and "request_id" not in first
    assert second["request_id"] == "req-abc" and second["job_id"] == 17
    assert not set(outside) & set(logcontext.FIELDS)


async def test_two_jobs_at_once_never_mix_their_ids(lines):
    log = logging.getLogger("test.json")
    both_started = asyncio.Barrier(2)

    async def run(request_id: str) -> None:
        await both_started.wait()
        logcontext.bind(request_id=request_id)
        await asyncio.sleep(0)
        log.info("polled")

    await asyncio.gather(
        asyncio.create_task(run("req-1"), context=logcontext.job_context(job(id=1))),
        asyncio.create_task(run("req-2"), context=logcontext.job_context(job(id=2))),
    )
    seen = {(line["job_id"], line["request_id"]) for line in parsed(lines)}
    assert seen == {(1, "req-1"), (2, "req-2")}


def test_ids_passed_with_extra_win_over_the_context(lines):
    logcontext.enter(guild_id=5, user_id=6)
    try:
        logging.getLogger("test.json").info("for another job", extra={"job_id": 99, "user_id": 7})
    finally:
        logcontext.enter()
    [line] = parsed(lines)
    assert (line["job_id"], line["guild_id"], line["user_id"]) == (99, 5, 7)


def test_only_id_fields_may_be_bound():
    with pytest.raises(ValueError, match="prompt"):
        logcontext.bind(prompt="a secret plan")


def test_a_traceback_is_in_the_line_and_its_secrets_are_blanked(lines):
    try:
        raise RuntimeError(f"POST /interactions/123/{TOKEN}/callback with the-segmind-key-0123")
    except RuntimeError:
        logging.getLogger("test.json").exception("callback failed")
    [line] = parsed(lines)
    text = json.dumps(line)
    assert "Traceback" in str(line["exception"]) and "RuntimeError" in str(line["exception"])
    assert TOKEN not in text and "the-segmind-key-0123" not in text
    assert logsafety.REDACTED in str(line["exception"])


def test_an_odd_argument_or_newline_keeps_the_line_one_json_object(lines):
    logging.getLogger("test.json").info("got %s\nthen %r", object(), b"\x00\xff")
    assert len(lines.getvalue().splitlines()) == 1
    [line] = parsed(lines)
    assert str(line["message"]).startswith("got <object object")
