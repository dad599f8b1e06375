"""The Segmind client against the simulator, over real HTTP on loopback."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web

from services.errors import (
    DeadlineExceeded,
    GenerationFailed,
    SegmindAuthError,
    SegmindBadRequest,
    SegmindError,
    SegmindInsufficientCredits,
    SegmindMalformedResponse,
    SegmindNotFound,
    SegmindRateLimited,
    SegmindRequestExpired,
    SegmindResultNotReady,
    SegmindServerError,
    SegmindUnavailable,
    SubmitOutcomeUnknown,
)
from services.models import SegmindState, Submission, VideoRequest
from services.segmind import RetryPolicy, SegmindClient
from services.segmind_polling import _MALFORMED_RETRIES, _NOT_FOUND_RETRIES
from services.simulator import FAIL_MARKER_ERROR, SegmindSimulator
from tests.conftest import TEST_SEGMIND_API_KEY, SegmindClientFactory, SimulatorFactory
from tests.fakeclock import FakeClock

PROXY_HTML = (
    "<html><head><title>502 Bad Gateway</title><style>body { color: red }</style></head>"
    "<body><center><h1>502 Bad Gateway</h1></center>" + "<hr>nginx " * 400 + "</body></html>"
)
# JSON nested past the interpreter's recursion limit: json.loads raises RecursionError.
NESTED_TOO_DEEP = "[" * 100_000
# The production policy's shape with the production delays, for FakeClock tests.
REAL_POLICY = RetryPolicy(base_delay=1.0, max_delay=30.0, request_timeout=2.0)
SHORT_TIMEOUT = RetryPolicy(base_delay=0.01, max_delay=0.05, request_timeout=0.2)


def video_request(prompt: str = "A red fox running through fresh snow") -> VideoRequest:
    return VideoRequest.create(prompt, seed=806286757407563)


def far_deadline() -> float:
    """A real-clock deadline no passing test gets near."""
    return time.monotonic() + 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StateRecorder:
    """An ``on_state`` callback that remembers what it was told."""

    def __init__(self) -> None:
        self.states: list[SegmindState] = []

    async def __call__(self, state: SegmindState) -> None:
        self.states.append(state)


@pytest.fixture
async def timed(
    simulator_factory: SimulatorFactory,
    segmind_client_factory: SegmindClientFactory,
    fake_clock: FakeClock,
) -> tuple[SegmindSimulator, SegmindClient]:
    """A simulator and client sharing a FakeClock, with Segmind-like pacing (1 s + 5 s)."""
    sim = await simulator_factory(clock=fake_clock, queue_seconds=1.0, processing_seconds=5.0)
    client = segmind_client_factory(
        sim.base_url, clock=fake_clock, poll_interval=2.0, max_poll_interval=15.0
    )
    return sim, client


class ForeignServer:
    """Another origin that records every request it gets and tempts with a finished job."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers)))
        return web.json_response({"status": "COMPLETED", "output": "http://evil.test/x.mp4"})


@pytest.fixture
async def foreign() -> AsyncIterator[ForeignServer]:
    server = ForeignServer()
    await server.start()
    yield server
    await server.stop()


# --- the happy path -------------------------------------------------------------------


async def test_submit_poll_and_result_find_the_finished_clip(
    simulator: SegmindSimulator, segmind_client: SegmindClient
) -> None:
    request = video_request()
    submission = await segmind_client.submit(request)
    result = await segmind_client.poll_until_done(submission, deadline=far_deadline())

    assert simulator.submits == [request.to_payload()]
    assert simulator.submit_attempts == 1
    assert result.video_url.endswith(f"/files/{submission.request_id}.mp4")
    assert result.metrics["cost"] == 0.36


async def test_every_api_call_carries_the_key(
    simulator: SegmindSimulator, segmind_client: SegmindClient
) -> None:
    submission = await segmind_client.submit(video_request())
    await segmind_client.poll_until_done(submission, deadline=far_deadline())

    api_calls = [c for c in simulator.calls if c.route in ("submit", "status", "result")]
    assert {c.route for c in api_calls} == {"submit", "status", "result"}
    assert all(c.headers.get("x-api-key") == TEST_SEGMIND_API_KEY for c in api_calls)


async def test_state_changes_are_reported_once_each_while_polls_slow_down_gently(
    simulator_factory: SimulatorFactory,
    segmind_client_factory: SegmindClientFactory,
    fake_clock: FakeClock,
) -> None:
    sim = await simulator_factory(clock=fake_clock, queue_seconds=10.0, processing_seconds=120.0)
    client = segmind_client_factory(
        sim.base_url, clock=fake_clock, poll_interval=2.0, max_poll_interval=15.0
    )
    recorder = StateRecorder()
    submission = await client.submit(video_request())

    await client.poll_until_done(
        submission, deadline=fake_clock.monotonic() + 900, on_state=recorder
    )

    assert recorder.states == [SegmindState.QUEUED, SegmindState.PROCESSING, SegmindState.COMPLETED]
    assert len(sim.calls_to("status")) > 10
    sleeps = fake_clock.sleeps
    assert sleeps[0] == 2.0
    assert sleeps[1] < 2 * sleeps[0]  # gently: no doubling
    assert sleeps == sorted(sleeps)
    assert max(sleeps) == 15.0


async def test_a_failing_state_callback_does_not_abandon_the_job(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock
) -> None:
    _, client = timed
    seen: list[SegmindState] = []

    async def flaky(state: SegmindState) -> None:
        seen.append(state)
        raise RuntimeError("discord edit failed")

    submission = await client.submit(video_request())
    result = await client.poll_until_done(
        submission, deadline=fake_clock.monotonic() + 900, on_state=flaky
    )

    assert result.video_url.endswith(".mp4")
    assert seen[-1] is SegmindState.COMPLETED


@pytest.mark.parametrize("shape", ["string", "list", "object"])
async def test_result_finds_the_video_url_in_every_output_shape(
    simulator_factory: SimulatorFactory, segmind_client_factory: SegmindClientFactory, shape: str
) -> None:
    sim = await simulator_factory(output_shape=shape, queue_seconds=0, processing_seconds=0)
    client = segmind_client_factory(sim.base_url)
    submission = await client.submit(video_request())

    result = await client.result(submission)

    assert result.video_url == f"{sim.base_url}/files/{submission.request_id}.mp4"


# --- submit: errors, and exactly how many submits reach Segmind --------------------------


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        (401, {"error": "Unauthorized"}, SegmindAuthError),
        (403, {"error": "Forbidden"}, SegmindAuthError),
        (404, {"error": "Model not found"}, SegmindNotFound),
        (406, {"error": "Insufficient credits"}, SegmindInsufficientCredits),
        (500, {"error": "Internal server error"}, SegmindServerError),
        (500, "<html><body>Internal Server Error</body></html>", SubmitOutcomeUnknown),
        (502, PROXY_HTML, SubmitOutcomeUnknown),
        (503, {"error": "Service unavailable"}, SubmitOutcomeUnknown),
        (504, None, SubmitOutcomeUnknown),
        (408, "<html><body>Request Timeout</body></html>", SubmitOutcomeUnknown),
        (408, {"error": "Request timeout"}, SubmitOutcomeUnknown),
    ],
)
async def test_submit_errors_are_typed_and_never_resent(
    simulator: SegmindSimulator,
    segmind_client_factory: SegmindClientFactory,
    fake_clock: FakeClock,
    status: int,
    body: str | dict[str, str] | None,
    error_type: type[SegmindError],
) -> None:
    client = segmind_client_factory(simulator.base_url, clock=fake_clock)
    simulator.inject("submit", status=status, body=body)

    with pytest.raises(error_type) as info:
        await client.submit(video_request())

    assert type(info.value) is error_type
    assert info.value.status == status
    assert simulator.submit_attempts == 1
    assert simulator.submits == []
    assert fake_clock.sleeps == []


async def test_a_400_shows_segminds_own_words(
    simulator: SegmindSimulator, segmind_client: SegmindClient
) -> None:
    simulator.inject("submit", status=400, body={"error": "Prompt violates the usage policy"})

    with pytest.raises(SegmindBadRequest) as info:
        await segmind_client.submit(video_request())

    assert (
        info.value.user_message == "Segmind refused this request: Prompt violates the usage policy"
    )
    assert simulator.submits == []


async def test_a_real_401_from_a_wrong_key_is_an_auth_error(
    simulator: SegmindSimulator, segmind_client_factory: SegmindClientFactory
) -> None:
    client = segmind_client_factory(simulator.base_url, api_key="sg-wrong-key")

    with pytest.raises(SegmindAuthError) as info:
        await client.submit(video_request())

    assert info.value.status == 401
    assert info.value.user_message == "The bot is misconfigured; the moderators have been told."
    assert simulator.submits == []


async def test_an_empty_key_sends_no_key_header(
    simulator: SegmindSimulator, segmind_client_factory: SegmindClientFactory
) -> None:
    client = segmind_client_factory(simulator.base_url, api_key="")

    with pytest.raises(SegmindAuthError):
        await client.submit(video_request())

    assert "x-api-key" not in simulator.calls_to("submit")[0].headers


async def test_an_unknown_model_is_not_found(
    simulator: SegmindSimulator, segmind_client_factory: SegmindClientFactory
) -> None:
    client = segmind_client_factory(simulator.base_url, model="cog-video-99b")

    with pytest.raises(SegmindNotFound) as info:
        await client.submit(video_request())

    assert "cog-video-99b" in info.value.detail
    assert simulator.submits == []


@pytest.mark.parametrize("status", [502, 504])
async def test_a_proxy_error_after_the_job_started_is_unknown_and_not_resent(
    simulator: SegmindSimulator, segmind_client: SegmindClient, status: int
) -> None:
    simulator.inject("submit", status=status, body=PROXY_HTML, accept=True)

    with pytest.raises(SubmitOutcomeUnknown):
        await segmind_client.submit(video_request())

    assert len(simulator.submits) == 1  # Segmind has the job ...
    assert simulator.submit_attempts == 1  # ... and it was sent exactly once


async def test_a_proxy_html_page_is_cut_to_a_clean_excerpt(
    simulator: SegmindSimulator, segmind_client: SegmindClient
) -> None:
    simulator.inject("submit", status=502, body=PROXY_HTML)

    with pytest.raises(SubmitOutcomeUnknown) as info:
        await segmind_client.submit(video_request())

    detail = info.value.detail
    assert "502 Bad Gateway" in detail
    assert "<" not in detail and "color: red" not in detail
    assert len(detail) < 400


@pytest.mark.parametrize("accept", [True, False])
async def test_a_timeout_after_sending_the_submit_is_unknown_and_not_resent(
    simulator: SegmindSimulator,
    segmind_client_factory: SegmindClientFactory,
    fake_clock: FakeClock,
    accept: bool,
) -> None:
    client = segmind_client_factory(simulator.base_url, policy=SHORT_TIMEOUT, clock=fake_clock)
    simulator.hang("submit", accept=accept)

    with pytest.raises(SubmitOutcomeUnknown):
        await client.submit(video_request())

    assert simulator.submit_attempts == 1
    assert len(simulator.submits) == (1 if accept else 0)
    assert fake_clock.sleeps == []


@pytest.mark.parametrize("accept", [True, False])
async def test_a_connection_reset_after_sending_the_submit_is_unknown_and_not_resent(
    simulator: SegmindSimulator,
    segmind_client_factory: SegmindClientFactory,
    fake_clock: FakeClock,
    accept: bool,
) -> None:
    client = segmind_client_factory(simulator.base_url, clock=fake_clock)
    simulator.reset_connection("submit", accept=accept)

    with pytest.raises(SubmitOutcomeUnknown):
        await client.submit(video_request())

    assert simulator.submit_attempts == 1
    assert len(simulator.submits) == (1 if accept else 0)
    assert fake_clock.sleeps == []


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({"Retry-After": "3"}, 3.0), ({"Retry-After": "120"}, 120.0), ({}, None)],
    ids=["short", "long", "none"],
)
async def test_a_429_is_raised_at_once_with_segminds_retry_after(
    simulator: SegmindSimulator,
    segmind_client_factory: SegmindClientFactory,
    fake_clock: FakeClock,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    """The runner waits, outside its shield, where a cancel can stop the wait."""
    client = segmind_client_factory(simulator.base_url, clock=fake_clock, policy=REAL_POLICY)
    simulator.inject("submit", status=429, body={"error": "slow"}, headers=headers)

    with pytest.raises(SegmindRateLimited) as info:
        await client.submit(video_request())

    assert info.value.retry_after == retry_after
    assert fake_clock.sleeps == []
    assert simulator.submit_attempts == 1
    assert simulator.submits == []


@pytest.mark.parametrize("header", ["Retry-After", "x-rate-limit-reset-at-utc"])
async def test_a_429_reset_time_as_a_date_is_read_as_seconds_to_wait(
    simulator: SegmindSimulator,
    segmind_client_factory: SegmindClientFactory,
    fake_clock: FakeClock,
    header: str,
) -> None:
    client = segmind_client_factory(simulator.base_url, clock=fake_clock, policy=REAL_POLICY)
    moment = datetime.fromtimestamp(fake_clock.time() + 5, UTC)
    value = format_datetime(moment, usegmt=True) if header == "Retry-After" else moment.isoformat()
    simulator.inject("submit", status=429, body={"error": "slow down"}, headers={header: value})

    with pytest.raises(SegmindRateLimited) as info:
        await client.submit(video_request())

    assert info.value.retry_after == pytest.approx(5.0)
    assert fake_clock.sleeps == []


async def test_a_refused_connection_is_raised_at_once_as_not_sent(
    segmind_client_factory: SegmindClientFactory, fake_clock: FakeClock
) -> None:
    client = segmind_client_factory(
        f"http://127.0.0.1:{free_port()}", clock=fake_clock, policy=REAL_POLICY
    )

    with pytest.raises(SegmindUnavailable) as info:
        await client.submit(video_request())

    assert "could not connect" in info.value.detail
    assert fake_clock.sleeps == []


async def test_a_numeric_request_id_is_taken_as_text(
    simulator: SegmindSimulator, segmind_client: SegmindClient
) -> None:
    base = simulator.base_url
    simulator.inject(
        "submit",
        status=200,
        body={
            "request_id": 12345,
            "status_url": f"{base}/v2/requests/12345/status",
            "response_url": f"{base}/v2/requests/12345",
        },
    )

    submission = await segmind_client.submit(video_request())

    assert submission.request_id == "12345"


async def test_an_unreadable_submit_answer_names_its_request_id_for_the_operator(
    simulator: SegmindSimulator, segmind_client: SegmindClient
) -> None:
    simulator.inject("submit", status=200, body={"request_id": "req-77", "status": "QUEUED"})

    with pytest.raises(SegmindMalformedResponse) as info:
        await segmind_client.submit(video_request())

    assert "request_id=req-77" in info.value.detail
    assert "status_url" in info.value.detail


@pytest.mark.parametrize(
    "body",
    [
        "not json at all",
        '["a", "list"]',
        {"request_id": "abc", "status_url": "http://x/s"},
        {"request_id": True, "status_url": "http://x/s", "response_url": "http://x/r"},
        {"request_id": 4.2, "status_url": "http://x/s", "response_url": "http://x/r"},
        {"request_id": "", "status_url": "http://x/s", "response_url": "http://x/r"},
        NESTED_TOO_DEEP,
    ],
)
async def test_a_2xx_submit_without_the_three_fields_is_malformed(
    simulator: SegmindSimulator, segmind_client: SegmindClient, body: str | dict[str, object]
) -> None:
    simulator.inject("submit", status=200, body=body)

    with pytest.raises(SegmindMalformedResponse):
        await segmind_client.submit(video_request())

    assert simulator.submit_attempts == 1


# --- status: one call -----------------------------------------------------------------


async def test_status_reads_queued_then_processing(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock
) -> None:
    _, client = timed
    submission = await client.submit(video_request())

    first = await client.status(submission)
    fake_clock.advance(2)
    second = await client.status(submission)

    assert first.state is SegmindState.QUEUED
    assert second.state is SegmindState.PROCESSING


async def test_status_returns_failed_with_segminds_error_from_a_422(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock
) -> None:
    sim, client = timed
    submission = await client.submit(video_request("a cat [fail]"))
    fake_clock.advance(2)

    status = await client.status(submission)

    assert status.state is SegmindState.FAILED
    assert status.error == FAIL_MARKER_ERROR
    assert sim.calls_to("status")  # it did ask


async def test_status_of_a_forgotten_job_is_expired(
    simulator: SegmindSimulator, segmind_client: SegmindClient
) -> None:
    submission = await segmind_client.submit(video_request())
    simulator.expire(submission.request_id)

    with pytest.raises(SegmindRequestExpired) as info:
        await segmind_client.status(submission)

    assert submission.request_id in info.value.detail


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        (200, {"status": "DREAMING"}, SegmindMalformedResponse),
        (200, {"state": "QUEUED"}, SegmindMalformedResponse),
        (200, "<html>maintenance</html>", SegmindMalformedResponse),
        (200, None, SegmindMalformedResponse),
        (401, {"error": "Unauthorized"}, SegmindAuthError),
        (403, {"error": "Forbidden"}, SegmindAuthError),
        (429, {"error": "Too many requests"}, SegmindRateLimited),
        (500, {"error": "boom"}, SegmindServerError),
        (502, PROXY_HTML, SegmindServerError),
    ],
)
async def test_status_errors_are_typed(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    status: int,
    body: str | dict[str, str] | None,
    error_type: type[SegmindError],
) -> None:
    submission = await segmind_client.submit(video_request())
    simulator.inject("status", status=status, body=body)

    with pytest.raises(error_type):
        await segmind_client.status(submission)


async def test_status_timeout_is_unavailable(
    simulator: SegmindSimulator, segmind_client_factory: SegmindClientFactory
) -> None:
    client = segmind_client_factory(simulator.base_url, policy=SHORT_TIMEOUT)
    submission = await client.submit(video_request())
    simulator.hang("status")

    with pytest.raises(SegmindUnavailable):
        await client.status(submission)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"status": "FAILED", "error": {"message": "NSFW content detected"}},
            "NSFW content detected",
        ),
        ({"status": "FAILED", "error": {"detail": "Prompt blocked"}}, "Prompt blocked"),
        (
            {"status": "FAILED", "message": "Prompt blocked by safety filter"},
            "Prompt blocked by safety filter",
        ),
        ({"status": "FAILED", "error": None, "detail": "Out of memory"}, "Out of memory"),
        ({"status": "FAILED", "error": "  ", "message": "Timed out"}, "Timed out"),
    ],
    ids=["error-object-message", "error-object-detail", "message", "detail", "blank-error"],
)
async def test_a_failure_keeps_segminds_text_wherever_it_is(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    body: dict[str, object],
    expected: str,
) -> None:
    submission = await segmind_client.submit(video_request())
    simulator.inject("status", status=422, body=body)  # type: ignore[arg-type]

    status = await segmind_client.status(submission)

    assert status.state is SegmindState.FAILED
    assert status.error == expected


# --- result: one call -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("https://cdn.test/a.mp4", "https://cdn.test/a.mp4"),
        (["", "not a url", 3, "https://cdn.test/b.mp4"], "https://cdn.test/b.mp4"),
        ({"video_url": "https://cdn.test/c.mp4"}, "https://cdn.test/c.mp4"),
        ({"url": "https://cdn.test/d.mp4"}, "https://cdn.test/d.mp4"),
        ({"thumbnail": "x", "file": "https://cdn.test/e.mp4"}, "https://cdn.test/e.mp4"),
        ([{"video": "https://cdn.test/f.mp4"}], "https://cdn.test/f.mp4"),
        # Several URLs: the video, not a thumbnail listed before it.
        (["https://cdn.test/thumb.jpg", "https://cdn.test/clip.mp4"], "https://cdn.test/clip.mp4"),
        (
            {"thumbnail": "https://cdn.test/t.jpg", "mp4": "https://cdn.test/clip.mp4?sig=1"},
            "https://cdn.test/clip.mp4?sig=1",
        ),
        (
            {"poster": "https://cdn.test/p.png", "video_file": "https://cdn.test/v/123"},
            "https://cdn.test/v/123",
        ),
        (
            [{"thumbnail_url": "https://cdn.test/t.jpg"}, {"webm": "https://cdn.test/c.WEBM"}],
            "https://cdn.test/c.WEBM",
        ),
        (["https://cdn.test/a", "https://cdn.test/b"], "https://cdn.test/a"),
    ],
)
async def test_result_accepts_the_shapes_segmind_may_use(
    simulator: SegmindSimulator, segmind_client: SegmindClient, output: object, expected: str
) -> None:
    submission = await segmind_client.submit(video_request())
    simulator.inject("result", status=200, body={"status": "COMPLETED", "output": output})

    result = await segmind_client.result(submission)

    assert result.video_url == expected
    assert result.metrics == {}


@pytest.mark.parametrize(
    "body",
    [
        {"status": "COMPLETED", "output": 42},
        {"status": "COMPLETED", "output": None},
        {"status": "COMPLETED", "output": True},
        {"status": "COMPLETED", "output": []},
        {"status": "COMPLETED", "output": "not a url"},
        {"status": "COMPLETED", "output": {"video": "ftp://cdn.test/a.mp4"}},
        {"status": "COMPLETED"},
        {"status": "DREAMING"},
        "<html>oops</html>",
    ],
)
async def test_result_without_a_usable_video_url_is_malformed(
    simulator: SegmindSimulator, segmind_client: SegmindClient, body: object
) -> None:
    submission = await segmind_client.submit(video_request())
    simulator.inject("result", status=200, body=body)  # type: ignore[arg-type]

    with pytest.raises(SegmindMalformedResponse):
        await segmind_client.result(submission)


async def test_result_of_a_failed_job_is_generation_failed(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock
) -> None:
    _, client = timed
    submission = await client.submit(video_request("[FAIL] a dragon"))
    fake_clock.advance(2)

    with pytest.raises(GenerationFailed) as info:
        await client.result(submission)

    assert FAIL_MARKER_ERROR in info.value.user_message


async def test_result_of_an_expired_job_is_expired(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock
) -> None:
    _, client = timed
    submission = await client.submit(video_request())
    fake_clock.advance(6 + 3600)

    with pytest.raises(SegmindRequestExpired):
        await client.result(submission)


@pytest.mark.parametrize("state", ["QUEUED", "PROCESSING", "processing"])
async def test_a_result_that_is_not_ready_yet_says_so_rather_than_malformed(
    simulator: SegmindSimulator, segmind_client: SegmindClient, state: str
) -> None:
    submission = await segmind_client.submit(video_request())
    simulator.inject("result", status=200, body={"status": state})

    with pytest.raises(SegmindResultNotReady):
        await segmind_client.result(submission)


# --- poll_until_done ------------------------------------------------------------------


async def test_poll_ends_with_generation_failed_and_segminds_text(
    simulator: SegmindSimulator, segmind_client: SegmindClient
) -> None:
    simulator.fail_prompts_containing["NSFW"] = "Prompt blocked by content policy"
    submission = await segmind_client.submit(video_request("something nsfw"))

    with pytest.raises(GenerationFailed) as info:
        await segmind_client.poll_until_done(submission, deadline=far_deadline())

    assert info.value.error_text == "Prompt blocked by content policy"
    assert info.value.user_message == (
        "Segmind could not make this video. It said: Prompt blocked by content policy"
    )
    assert simulator.calls_to("result") == []  # the status already said why


async def test_poll_of_an_expired_job_is_expired(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock
) -> None:
    sim, client = timed
    submission = await client.submit(video_request())
    sim.expire(submission.request_id)

    with pytest.raises(SegmindRequestExpired):
        await client.poll_until_done(submission, deadline=fake_clock.monotonic() + 900)

    assert len(sim.calls_to("status")) == _NOT_FOUND_RETRIES + 1  # asked again, not forever


@pytest.mark.parametrize("status", [401, 403])
async def test_poll_stops_at_once_on_an_auth_error(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock, status: int
) -> None:
    sim, client = timed
    submission = await client.submit(video_request())
    sim.inject("status", status=status, body={"error": "nope"}, times=5)

    with pytest.raises(SegmindAuthError):
        await client.poll_until_done(submission, deadline=fake_clock.monotonic() + 900)

    assert len(sim.calls_to("status")) == 1


Fault = Callable[[SegmindSimulator], None]
TRANSIENT_STATUS_FAULTS: dict[str, Fault] = {
    "503 html": lambda sim: sim.inject("status", status=503, body=PROXY_HTML, times=2),
    "500 json": lambda sim: sim.inject("status", status=500, body={"error": "boom"}, times=2),
    "504 empty": lambda sim: sim.inject("status", status=504, times=2),
    "429 plain": lambda sim: sim.inject("status", status=429, body={"error": "slow"}, times=2),
    "not json": lambda sim: sim.inject("status", status=200, body="<html>hi</html>", times=2),
    "unknown state": lambda sim: sim.inject("status", status=200, body={"status": "?"}, times=2),
    "timeout": lambda sim: sim.hang("status", times=2),
    "reset": lambda sim: sim.reset_connection("status", times=2),
    "result 502": lambda sim: sim.inject("result", status=502, body=PROXY_HTML, times=2),
    "result timeout": lambda sim: sim.hang("result", times=2),
    "408": lambda sim: sim.inject("status", status=408, body="<html>Timeout</html>", times=2),
    "result 408": lambda sim: sim.inject("result", status=408, times=2),
    "result lags the status": lambda sim: sim.inject(
        "result", status=200, body={"status": "PROCESSING"}, times=2
    ),
    "nested too deep": lambda sim: sim.inject("status", status=200, body=NESTED_TOO_DEEP, times=2),
    "503 nested too deep": lambda sim: sim.inject(
        "status", status=503, body=NESTED_TOO_DEEP, times=2
    ),
    "result nested too deep": lambda sim: sim.inject(
        "result", status=200, body=NESTED_TOO_DEEP, times=2
    ),
}


@pytest.mark.parametrize("fault", TRANSIENT_STATUS_FAULTS.values(), ids=TRANSIENT_STATUS_FAULTS)
async def test_poll_rides_out_transient_trouble(
    simulator_factory: SimulatorFactory,
    segmind_client_factory: SegmindClientFactory,
    fake_clock: FakeClock,
    fault: Fault,
) -> None:
    sim = await simulator_factory(clock=fake_clock, queue_seconds=1.0, processing_seconds=5.0)
    client = segmind_client_factory(
        sim.base_url, clock=fake_clock, policy=SHORT_TIMEOUT, poll_interval=2.0
    )
    submission = await client.submit(video_request())
    fault(sim)

    result = await client.poll_until_done(submission, deadline=fake_clock.monotonic() + 900)

    assert result.video_url.endswith(f"{submission.request_id}.mp4")
    assert len(sim.calls_to("status")) + len(sim.calls_to("result")) >= 4  # 2 faults + 2 answers
    assert len(sim.submits) == 1


@pytest.mark.parametrize("call", ["status", "result"])
async def test_an_unexpected_error_while_polling_is_retried_like_a_5xx(
    timed: tuple[SegmindSimulator, SegmindClient],
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    call: str,
) -> None:
    _, client = timed
    submission = await client.submit(video_request())
    real = getattr(client, call)
    broken = []

    async def a_bug_the_first_two_times(submission: Submission) -> object:
        if len(broken) < 2:
            broken.append(call)
            raise KeyError(f"a shape no parser foresaw {TEST_SEGMIND_API_KEY}")
        return await real(submission)

    setattr(client, call, a_bug_the_first_two_times)
    caplog.set_level(logging.INFO)

    result = await client.poll_until_done(submission, deadline=fake_clock.monotonic() + 900)

    assert result.video_url.endswith(f"{submission.request_id}.mp4")
    assert len(broken) == 2
    warnings = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert len(warnings) == 2 and all(r.levelno == logging.WARNING for r in warnings)
    assert "KeyError" in warnings[0].getMessage()
    assert TEST_SEGMIND_API_KEY not in caplog.text


async def test_an_unexpected_error_that_lasts_ends_the_poll_at_its_deadline(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock
) -> None:
    _, client = timed
    submission = await client.submit(video_request())

    async def always_broken(submission: Submission) -> object:
        raise KeyError("a bug")

    client.status = always_broken  # type: ignore[method-assign]

    with pytest.raises(DeadlineExceeded):
        await client.poll_until_done(submission, deadline=fake_clock.monotonic() + 60)

    assert sum(fake_clock.sleeps) == pytest.approx(60)


async def test_poll_gives_up_on_a_body_that_stays_malformed(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock
) -> None:
    sim, client = timed
    submission = await client.submit(video_request())
    sim.inject("status", status=200, body="garbage", times=100)

    with pytest.raises(SegmindMalformedResponse):
        await client.poll_until_done(submission, deadline=fake_clock.monotonic() + 900)

    assert len(sim.calls_to("status")) == _MALFORMED_RETRIES + 1


@pytest.mark.parametrize(("status", "wait"), [(429, 7.0), (503, 20.0)])
async def test_poll_honours_retry_after(
    timed: tuple[SegmindSimulator, SegmindClient],
    fake_clock: FakeClock,
    status: int,
    wait: float,
) -> None:
    sim, client = timed
    submission = await client.submit(video_request())
    sim.inject("status", status=status, body={"error": "busy"}, headers={"Retry-After": str(wait)})

    await client.poll_until_done(submission, deadline=fake_clock.monotonic() + 900)

    assert fake_clock.sleeps == [wait]  # by then the job (1 s + 5 s) is done


async def test_deadline_ends_a_job_that_never_completes_without_sleeping_past_it(
    simulator_factory: SimulatorFactory,
    segmind_client_factory: SegmindClientFactory,
    fake_clock: FakeClock,
) -> None:
    sim = await simulator_factory(clock=fake_clock, queue_seconds=1.0, processing_seconds=1e9)
    client = segmind_client_factory(
        sim.base_url, clock=fake_clock, poll_interval=2.0, max_poll_interval=15.0
    )
    submission = await client.submit(video_request())
    deadline = fake_clock.monotonic() + 300

    with pytest.raises(DeadlineExceeded) as info:
        await client.poll_until_done(submission, deadline=deadline)

    assert fake_clock.monotonic() == pytest.approx(deadline)
    assert fake_clock.monotonic() <= deadline + 1e-9
    assert sum(fake_clock.sleeps) <= 300 + 1e-9
    assert submission.request_id in info.value.detail
    assert sim.job_state(submission.request_id) == "PROCESSING"


async def test_a_long_retry_after_is_cut_at_the_deadline(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock
) -> None:
    sim, client = timed
    submission = await client.submit(video_request())
    sim.inject(
        "status", status=429, body={"error": "slow"}, headers={"Retry-After": "1000"}, times=9
    )

    with pytest.raises(DeadlineExceeded):
        await client.poll_until_done(submission, deadline=fake_clock.monotonic() + 60)

    assert fake_clock.sleeps == [pytest.approx(60.0)]
    assert len(sim.calls_to("status")) == 2  # one more look at the deadline itself


async def test_a_job_finishing_exactly_at_the_deadline_is_still_delivered(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock
) -> None:
    _, client = timed
    submission = await client.submit(video_request())

    result = await client.poll_until_done(submission, deadline=fake_clock.monotonic() + 6)

    assert result.video_url.endswith(".mp4")


@pytest.mark.parametrize("route", ["status", "result"])
async def test_a_404_right_after_submit_is_asked_again(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock, route: str
) -> None:
    """A status store lagging behind the submit must not throw a job away as expired."""
    sim, client = timed
    submission = await client.submit(video_request())
    sim.inject(route, status=404, body={"error": "Request not found"})

    result = await client.poll_until_done(submission, deadline=fake_clock.monotonic() + 900)

    assert result.video_url.endswith(f"{submission.request_id}.mp4")


async def test_a_404_at_the_deadline_is_expired_rather_than_too_slow(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock
) -> None:
    sim, client = timed
    submission = await client.submit(video_request())
    sim.expire(submission.request_id)

    with pytest.raises(SegmindRequestExpired):
        await client.poll_until_done(submission, deadline=fake_clock.monotonic())

    assert fake_clock.sleeps == []


async def test_a_zero_retry_after_on_a_503_still_backs_off(
    timed: tuple[SegmindSimulator, SegmindClient],
    segmind_client_factory: SegmindClientFactory,
    fake_clock: FakeClock,
) -> None:
    sim, _ = timed
    client = segmind_client_factory(sim.base_url, clock=fake_clock, policy=REAL_POLICY)
    submission = await client.submit(video_request())
    sim.inject("status", status=503, body={"error": "busy"}, headers={"Retry-After": "0"})

    await client.poll_until_done(submission, deadline=fake_clock.monotonic() + 900)

    assert fake_clock.sleeps[0] == REAL_POLICY.base_delay


async def test_a_finished_job_gets_a_grace_to_fetch_its_result_past_the_deadline(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock
) -> None:
    """The clip is paid for once Segmind says COMPLETED: one proxy hiccup must not lose it."""
    sim, client = timed
    submission = await client.submit(video_request())
    fake_clock.advance(6)  # done, and the deadline is now
    sim.inject("result", status=502, body=PROXY_HTML)

    result = await client.poll_until_done(submission, deadline=fake_clock.monotonic())

    assert result.video_url.endswith(f"{submission.request_id}.mp4")
    assert len(sim.calls_to("result")) == 2


async def test_the_result_grace_is_bounded(
    timed: tuple[SegmindSimulator, SegmindClient],
    segmind_client_factory: SegmindClientFactory,
    fake_clock: FakeClock,
) -> None:
    sim, _ = timed
    client = segmind_client_factory(sim.base_url, clock=fake_clock, policy=REAL_POLICY)
    submission = await client.submit(video_request())
    fake_clock.advance(6)
    start = fake_clock.monotonic()
    sim.inject("result", status=502, body=PROXY_HTML, times=10_000)

    with pytest.raises(SegmindServerError) as info:  # what went wrong, not "took too long"
        await client.poll_until_done(submission, deadline=start)

    assert info.value.status == 502
    assert fake_clock.monotonic() == pytest.approx(start + REAL_POLICY.result_grace)


# --- origins, redirects and the key --------------------------------------------------------


async def test_links_to_another_origin_are_not_followed(
    simulator_factory: SimulatorFactory,
    segmind_client_factory: SegmindClientFactory,
    foreign: ForeignServer,
) -> None:
    sim = await simulator_factory(advertised_base_url=foreign.url)
    client = segmind_client_factory(sim.base_url)

    submission = await client.submit(video_request())
    result = await client.poll_until_done(submission, deadline=far_deadline())

    assert submission.status_url.startswith(foreign.url)
    assert submission.response_url.startswith(foreign.url)
    assert foreign.requests == []
    assert sim.calls_to("status") and sim.calls_to("result")
    assert result.video_url.startswith(sim.base_url)


async def test_a_redirect_is_not_followed_with_the_key(
    simulator: SegmindSimulator, segmind_client: SegmindClient, foreign: ForeignServer
) -> None:
    submission = await segmind_client.submit(video_request())
    simulator.inject("status", status=307, headers={"Location": f"{foreign.url}/steal"})

    with pytest.raises(SegmindError) as info:
        await segmind_client.status(submission)

    assert info.value.status == 307
    assert foreign.requests == []


async def test_a_stored_submission_with_relative_links_still_works(
    simulator: SegmindSimulator, segmind_client: SegmindClient
) -> None:
    real = await segmind_client.submit(video_request())
    stored = Submission(real.request_id, "", f"/v2/requests/{real.request_id}")

    status = await segmind_client.status(stored)

    assert status.state in (SegmindState.QUEUED, SegmindState.PROCESSING, SegmindState.COMPLETED)


def test_repr_hides_the_key(segmind_client: SegmindClient) -> None:
    assert TEST_SEGMIND_API_KEY not in repr(segmind_client)
    assert TEST_SEGMIND_API_KEY not in str(segmind_client)
    assert "api_key=<hidden>" in repr(segmind_client)


async def test_the_key_never_reaches_logs_errors_or_reprs(
    simulator_factory: SimulatorFactory,
    segmind_client_factory: SegmindClientFactory,
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Walk every failure path while servers echo the key back; it must surface nowhere."""
    caplog.set_level(logging.DEBUG)
    key = TEST_SEGMIND_API_KEY
    echo = {"error": f"Invalid API key {key}"}
    sim = await simulator_factory(clock=fake_clock, queue_seconds=1.0, processing_seconds=5.0)
    client = segmind_client_factory(
        sim.base_url, clock=fake_clock, policy=SHORT_TIMEOUT, poll_interval=2.0
    )
    errors: list[BaseException] = []

    async def expect_error(make_call: Callable[[], Awaitable[object]]) -> None:
        with pytest.raises(SegmindError) as info:
            await make_call()
        errors.append(info.value)

    async def submit() -> object:
        return await client.submit(video_request())

    for status, body in [
        (400, echo),
        (401, echo),
        (403, echo),
        (404, echo),
        (406, echo),
        (500, echo),
        (502, f"<html>{key}</html>"),
        (200, echo),
        (200, f"not json {key}"),
    ]:
        sim.inject("submit", status=status, body=body)
        await expect_error(submit)
    sim.inject("submit", status=429, body=echo)
    await expect_error(submit)
    sim.hang("submit")
    await expect_error(submit)
    sim.reset_connection("submit")
    await expect_error(submit)

    submission = await client.submit(video_request())
    for status, body in [(401, echo), (500, echo), (200, f"garbage {key}"), (429, echo)]:
        sim.inject("status", status=status, body=body)
        await expect_error(lambda: client.status(submission))
    sim.inject("status", status=422, body={"status": "FAILED", "error": f"blocked {key}"})
    failed = await client.status(submission)
    assert failed.error is not None and key not in failed.error
    sim.inject("status", status=500, body=echo, times=2)
    sim.inject("result", status=422, body={"status": "FAILED", "error": f"blocked {key}"})
    await expect_error(
        lambda: client.poll_until_done(submission, deadline=fake_clock.monotonic() + 900)
    )
    sim.inject("result", status=200, body={"status": "COMPLETED", "output": key})
    await expect_error(lambda: client.result(submission))
    refused = segmind_client_factory(f"http://127.0.0.1:{free_port()}", clock=fake_clock)
    await expect_error(lambda: refused.submit(video_request()))

    assert len(errors) == 19
    for error in errors:
        assert isinstance(error, SegmindError)
        for text in (str(error), repr(error), error.detail, error.user_message, repr(error.args)):
            assert key not in text, f"{type(error).__name__} leaks the key"
        assert key not in str(error.__cause__)
    assert key not in repr(client) and key not in repr(refused)
    assert caplog.records, "the client logs its work"
    for record in caplog.records:
        assert key not in record.getMessage()
    assert key not in caplog.text


def key_across_the_cut(key: str) -> str:
    """An error page echoing the key so that it straddles the excerpt's 300-character cut."""
    echoed = f"x-api-key: {key}\nhost: api.segmind.com\naccept: */*"
    return "<html><body><pre>" + "." * 260 + f" {echoed}</pre></body></html>"


async def test_a_key_echoed_across_the_excerpt_cut_leaves_no_prefix_behind(
    simulator: SegmindSimulator,
    segmind_client: SegmindClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    prefix = TEST_SEGMIND_API_KEY[:8]  # any longer prefix of the key contains this one
    page = key_across_the_cut(TEST_SEGMIND_API_KEY)
    errors: list[SegmindError] = []
    simulator.inject("submit", status=502, body=page)
    with pytest.raises(SubmitOutcomeUnknown) as submit_error:
        await segmind_client.submit(video_request())
    errors.append(submit_error.value)
    submission = await segmind_client.submit(video_request())
    simulator.inject("status", status=500, body=page)
    with pytest.raises(SegmindServerError) as status_error:
        await segmind_client.status(submission)
    errors.append(status_error.value)

    for error in errors:
        assert "x-api-key:" in error.detail  # the excerpt does reach the cut
        assert prefix not in error.detail and prefix not in str(error)
    assert prefix not in caplog.text


async def test_a_key_cut_off_by_the_body_size_cap_is_scrubbed_too(
    simulator: SegmindSimulator, segmind_client: SegmindClient
) -> None:
    """An error body is read up to 64 KiB: one long tag, then the key across that cap."""
    key = TEST_SEGMIND_API_KEY
    kept = 14  # characters of the key inside the cap
    tag = "<" + "i" * (64 * 1024 - kept - 2) + ">"  # markup: cleaned away, so the key leads
    simulator.inject("submit", status=502, body=tag + key + "</b>")

    with pytest.raises(SubmitOutcomeUnknown) as info:
        await segmind_client.submit(video_request())

    assert key[:8] not in info.value.detail
    assert "[redacted]" in info.value.detail


# --- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://api.segmind.com", "https://api.segmind.com"),
        ("https://api.segmind.com/", "https://api.segmind.com"),
        ("https://api.segmind.com/v1", "https://api.segmind.com"),
        ("http://127.0.0.1:8080/proxy/", "http://127.0.0.1:8080/proxy"),
    ],
)
async def test_base_url_is_normalised(
    segmind_client_factory: SegmindClientFactory, given: str, expected: str
) -> None:
    assert segmind_client_factory(given).base_url == expected


@pytest.mark.parametrize(
    "given", ["api.segmind.com", "ftp://api.segmind.com", "https://x.test/?a=1"]
)
async def test_a_bad_base_url_is_refused_at_construction(
    segmind_client_factory: SegmindClientFactory, given: str
) -> None:
    with pytest.raises(ValueError, match="base_url must be an absolute http"):
        segmind_client_factory(given)


async def test_a_zero_retry_after_still_backs_off(
    timed: tuple[SegmindSimulator, SegmindClient], fake_clock: FakeClock
) -> None:
    """'Retry-After: 0' (or a reset time already past) must not make polling a tight loop."""
    sim, client = timed
    submission = await client.submit(video_request())
    sim.inject("status", status=429, body={"error": "slow"}, headers={"Retry-After": "0"}, times=5)

    await client.poll_until_done(submission, deadline=fake_clock.monotonic() + 900)

    assert len(fake_clock.sleeps) >= 5
    assert all(delay > 0 for delay in fake_clock.sleeps[:5])


async def test_a_connect_that_times_out_is_unavailable_as_not_sent(
    http_session: aiohttp.ClientSession, segmind_api_key: str
) -> None:
    """A listener that never accepts: the connect times out, so nothing was sent."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    filler = []
    for _ in range(4):  # fill the accept backlog; later connects then hang unanswered
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(server.getsockname())
        filler.append(sock)
    try:
        host, port = server.getsockname()
        client = SegmindClient(
            http_session,
            api_key=segmind_api_key,
            base_url=f"http://{host}:{port}",
            policy=RetryPolicy(
                base_delay=0.01, max_delay=0.01, request_timeout=5.0, connect_timeout=0.2
            ),
        )
        with pytest.raises(SegmindUnavailable) as info:  # not SubmitOutcomeUnknown
            await client.submit(video_request())
        assert "could not connect" in info.value.detail
    finally:
        for sock in filler:
            sock.close()
        server.close()
