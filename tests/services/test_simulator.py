"""The simulator speaks Segmind's v2 wire format: checked with plain HTTP, no client code."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.models import MODEL_SLUG, VideoRequest
from services.simulator import (
    DEFAULT_VIDEO_PATH,
    FAIL_MARKER_ERROR,
    SegmindSimulator,
    SimulatorConfig,
)
from tests.conftest import TEST_SEGMIND_API_KEY, SimulatorFactory
from tests.fakeclock import FakeClock

ROOT = Path(__file__).resolve().parents[2]
KEY = {"x-api-key": TEST_SEGMIND_API_KEY}
VALID = VideoRequest.create("A lighthouse in a storm", seed=7).to_payload()


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    payload: Any,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async with session.post(url, json=payload, headers=KEY if headers is None else headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def get_json(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with session.get(url, headers=KEY if headers is None else headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def submit(
    session: aiohttp.ClientSession, sim: SegmindSimulator, **changes: Any
) -> dict[str, Any]:
    status, body = await post_json(session, f"{sim.base_url}/v2/{MODEL_SLUG}", VALID | changes)
    assert status == 200, body
    return body


@pytest.fixture
async def timed(simulator_factory: SimulatorFactory, fake_clock: FakeClock) -> SegmindSimulator:
    """A simulator on a FakeClock: queue 10 s, processing 60 s, results kept 3600 s."""
    return await simulator_factory(clock=fake_clock, queue_seconds=10, processing_seconds=60)


# --- submit ----------------------------------------------------------------------------


async def test_submit_answers_with_absolute_links_on_the_requests_host(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession
) -> None:
    port = simulator.base_url.rsplit(":", 1)[1]
    headers = KEY | {"Host": f"localhost:{port}"}
    url = f"{simulator.base_url}/v2/{MODEL_SLUG}"

    status, body = await post_json(http_session, url, VALID, headers=headers)

    assert status == 200
    request_id = body["request_id"]
    assert body["status"] == "QUEUED"
    assert body["status_url"] == f"http://localhost:{port}/v2/requests/{request_id}/status"
    assert body["response_url"] == f"http://localhost:{port}/v2/requests/{request_id}"
    assert simulator.submits == [VALID]
    assert simulator.submit_attempts == 1


async def test_a_job_goes_queued_processing_completed_on_the_clock(
    timed: SegmindSimulator, fake_clock: FakeClock, http_session: aiohttp.ClientSession
) -> None:
    body = await submit(http_session, timed)
    seen = []
    for step in (0, 9.9, 0.1, 59.9, 0.1):
        fake_clock.advance(step)
        status, answer = await get_json(http_session, body["status_url"])
        assert status == 200
        seen.append(answer["status"])

    assert seen == ["QUEUED", "QUEUED", "PROCESSING", "PROCESSING", "COMPLETED"]
    assert timed.job_state(body["request_id"]) == "COMPLETED"


async def test_each_job_can_take_its_own_time_from_its_parameters(
    simulator_factory: SimulatorFactory, fake_clock: FakeClock, http_session: aiohttp.ClientSession
) -> None:
    def timing(payload: Mapping[str, Any]) -> tuple[float, float]:
        return 5.0, float(payload["steps"])  # the longer the steps, the longer the clip

    sim = await simulator_factory(clock=fake_clock, timing=timing)
    short = await submit(http_session, sim, steps=25)
    long = await submit(http_session, sim, steps=50)

    fake_clock.advance(5 + 25)
    assert sim.job_state(short["request_id"]) == "COMPLETED"
    assert sim.job_state(long["request_id"]) == "PROCESSING"
    fake_clock.advance(25)
    assert sim.job_state(long["request_id"]) == "COMPLETED"
    status, answer = await get_json(http_session, long["response_url"])
    assert status == 200
    assert answer["metrics"]["queue_time"] == 5.0
    assert answer["metrics"]["inference_time"] == 50.0


async def test_the_result_before_completion_carries_no_output(
    timed: SegmindSimulator, http_session: aiohttp.ClientSession
) -> None:
    body = await submit(http_session, timed)

    status, answer = await get_json(http_session, body["response_url"])

    assert status == 200
    assert answer["status"] == "QUEUED"
    assert "output" not in answer


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("string", lambda url: url),
        ("list", lambda url: [url]),
        ("object", lambda url: {"video": url, "content_type": "video/mp4"}),
    ],
)
async def test_the_result_serves_each_output_shape(
    simulator_factory: SimulatorFactory,
    fake_clock: FakeClock,
    http_session: aiohttp.ClientSession,
    shape: str,
    expected: Any,
) -> None:
    sim = await simulator_factory(clock=fake_clock, output_shape=shape)
    body = await submit(http_session, sim)
    fake_clock.advance(1)

    status, answer = await get_json(http_session, body["response_url"])

    assert status == 200
    assert answer["status"] == "COMPLETED"
    video_url = f"{sim.base_url}/files/{body['request_id']}.mp4"
    assert answer["output"] == expected(video_url)
    assert set(answer["metrics"]) >= {"inference_time"}


async def test_the_video_link_serves_the_sample_mp4_without_a_key(
    timed: SegmindSimulator, fake_clock: FakeClock, http_session: aiohttp.ClientSession
) -> None:
    body = await submit(http_session, timed)
    fake_clock.advance(70)

    async with http_session.get(f"{timed.base_url}/files/{body['request_id']}.mp4") as resp:
        data = await resp.read()
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "video/mp4"
        assert resp.content_length == len(data)

    assert data == DEFAULT_VIDEO_PATH.read_bytes()


async def test_the_video_can_be_streamed_without_a_length(
    simulator_factory: SimulatorFactory,
    fake_clock: FakeClock,
    http_session: aiohttp.ClientSession,
) -> None:
    sim = await simulator_factory(
        clock=fake_clock, video_bytes=b"x" * 100_000, download_content_length=False
    )
    body = await submit(http_session, sim)
    fake_clock.advance(1)

    async with http_session.get(f"{sim.base_url}/files/{body['request_id']}.mp4") as resp:
        data = await resp.read()
        assert resp.content_length is None
        assert resp.headers.get("Transfer-Encoding") == "chunked"

    assert data == b"x" * 100_000


async def test_the_video_is_not_served_before_completion(
    timed: SegmindSimulator, http_session: aiohttp.ClientSession
) -> None:
    body = await submit(http_session, timed)

    async with http_session.get(f"{timed.base_url}/files/{body['request_id']}.mp4") as resp:
        assert resp.status == 404


# --- failure, expiry, unknown ids ---------------------------------------------------------


@pytest.mark.parametrize("prompt", ["a storm [fail]", "A STORM [FAIL]"])
async def test_a_fail_marker_ends_failed_as_a_422_after_queueing(
    timed: SegmindSimulator,
    fake_clock: FakeClock,
    http_session: aiohttp.ClientSession,
    prompt: str,
) -> None:
    body = await submit(http_session, timed, prompt=prompt)
    queued = await get_json(http_session, body["status_url"])
    fake_clock.advance(10)

    status_answer = await get_json(http_session, body["status_url"])
    result_answer = await get_json(http_session, body["response_url"])

    assert queued == (200, {"request_id": body["request_id"], "status": "QUEUED"})
    expected = {"request_id": body["request_id"], "status": "FAILED", "error": FAIL_MARKER_ERROR}
    assert status_answer == (422, expected)
    assert result_answer == (422, expected)


async def test_failure_rules_can_be_added_by_tests(
    timed: SegmindSimulator, fake_clock: FakeClock, http_session: aiohttp.ClientSession
) -> None:
    timed.fail_prompts_containing["FAIL"] = "Prompt blocked by content policy"
    body = await submit(http_session, timed, prompt="please fail")
    fake_clock.advance(10)

    status, answer = await get_json(http_session, body["status_url"])

    assert status == 422
    assert answer["error"] == "Prompt blocked by content policy"
    assert timed.job_state(body["request_id"]) == "FAILED"


async def test_results_expire_after_their_ttl(
    timed: SegmindSimulator, fake_clock: FakeClock, http_session: aiohttp.ClientSession
) -> None:
    body = await submit(http_session, timed)
    video = f"{timed.base_url}/files/{body['request_id']}.mp4"
    fake_clock.advance(70 + 3599)
    assert (await get_json(http_session, body["response_url"]))[0] == 200

    fake_clock.advance(1)

    assert await get_json(http_session, body["status_url"]) == (
        404,
        {"error": "Request not found or expired"},
    )
    assert (await get_json(http_session, body["response_url"]))[0] == 404
    async with http_session.get(video) as resp:
        assert resp.status == 404
    assert timed.job_state(body["request_id"]) is None


async def test_expire_forgets_a_job_at_once(
    timed: SegmindSimulator, http_session: aiohttp.ClientSession
) -> None:
    body = await submit(http_session, timed)

    timed.expire(body["request_id"])

    assert (await get_json(http_session, body["status_url"]))[0] == 404
    assert timed.job_state(body["request_id"]) is None


async def test_an_unknown_request_id_is_404(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession
) -> None:
    status, body = await get_json(http_session, f"{simulator.base_url}/v2/requests/nope/status")

    assert status == 404
    assert isinstance(body["error"], str)


async def test_an_unknown_model_is_404_and_not_accepted(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession
) -> None:
    status, body = await post_json(http_session, f"{simulator.base_url}/v2/sdxl-turbo", VALID)

    assert status == 404
    assert body == {"error": "Model 'sdxl-turbo' not found"}
    assert simulator.submits == []
    assert simulator.submit_attempts == 1


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"Authorization": "Bearer x"}])
async def test_a_missing_or_wrong_key_is_401_everywhere(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    accepted = await submit(http_session, simulator)
    url = f"{simulator.base_url}/v2/{MODEL_SLUG}"

    answers = [
        await post_json(http_session, url, VALID, headers=headers),
        await get_json(http_session, accepted["status_url"], headers=headers),
        await get_json(http_session, accepted["response_url"], headers=headers),
    ]

    assert [status for status, _ in answers] == [401, 401, 401]
    assert all(isinstance(body["error"], str) for _, body in answers)
    assert simulator.submits == [VALID]
    assert simulator.submit_attempts == 2


async def test_without_a_configured_key_anyone_may_call(
    simulator_factory: SimulatorFactory, http_session: aiohttp.ClientSession
) -> None:
    sim = await simulator_factory(api_key=None)

    status, _ = await post_json(http_session, f"{sim.base_url}/v2/{MODEL_SLUG}", VALID, headers={})

    assert status == 200


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "mentions"),
    [
        ({"prompt": None}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"negative_prompt": "x" * 2001}, "negative_prompt"),
        ({"negative_prompt": 3}, "negative_prompt"),
        ({"input_frames": 15}, "input_frames"),
        ({"input_frames": 61}, "input_frames"),
        ({"input_frames": 30.0}, "input_frames"),
        ({"steps": 24}, "steps"),
        ({"steps": 51}, "steps"),
        ({"steps": True}, "steps"),
        ({"guidance_scale": 4.9}, "guidance_scale"),
        ({"guidance_scale": 10.1}, "guidance_scale"),
        ({"guidance_scale": "6"}, "guidance_scale"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**53}, "seed"),
        ({"seed": "7"}, "seed"),
        ({"frame_rate": 7}, "frame_rate"),
        ({"frame_rate": 11}, "frame_rate"),
    ],
)
async def test_invalid_parameters_are_400_with_segminds_error_shape(
    simulator: SegmindSimulator,
    http_session: aiohttp.ClientSession,
    changes: dict[str, Any],
    mentions: str,
) -> None:
    payload = {k: v for k, v in (VALID | changes).items() if v is not None}

    status, body = await post_json(http_session, f"{simulator.base_url}/v2/{MODEL_SLUG}", payload)

    assert status == 400
    assert mentions in body["error"]
    assert simulator.submits == []


@pytest.mark.parametrize(
    "changes",
    [
        {"prompt": "x" * 2000},
        {"input_frames": 16, "steps": 25, "guidance_scale": 5, "seed": 0, "frame_rate": 8},
        {
            "input_frames": 60,
            "steps": 50,
            "guidance_scale": 10.0,
            "seed": 2**53 - 1,
            "frame_rate": 10,
        },
    ],
)
async def test_the_range_edges_are_accepted(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession, changes: dict[str, Any]
) -> None:
    await submit(http_session, simulator, **changes)

    assert len(simulator.submits) == 1


async def test_only_the_prompt_is_required(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession
) -> None:
    url = f"{simulator.base_url}/v2/{MODEL_SLUG}"

    status, _ = await post_json(http_session, url, {"prompt": "a cat"})

    assert status == 200


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b""])
async def test_a_body_that_is_not_a_json_object_is_400(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession, raw: bytes
) -> None:
    async with http_session.post(
        f"{simulator.base_url}/v2/{MODEL_SLUG}", data=raw, headers=KEY
    ) as resp:
        assert resp.status == 400
        assert isinstance((await resp.json())["error"], str)


# --- scripted misbehaviour --------------------------------------------------------------------


async def test_inject_answers_the_next_calls_then_behaves_again(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession
) -> None:
    url = f"{simulator.base_url}/v2/{MODEL_SLUG}"
    simulator.inject(
        "submit", status=429, body={"error": "slow"}, headers={"Retry-After": "3"}, times=2
    )

    answers = []
    for _ in range(3):
        async with http_session.post(url, json=VALID, headers=KEY) as resp:
            answers.append((resp.status, resp.headers.get("Retry-After")))

    assert answers == [(429, "3"), (429, "3"), (200, None)]
    assert simulator.submit_attempts == 3
    assert len(simulator.submits) == 1


async def test_inject_serves_html_and_empty_bodies(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession
) -> None:
    simulator.inject("status", status=502, body="<html><h1>502 Bad Gateway</h1></html>")
    simulator.inject("status", status=504)
    url = f"{simulator.base_url}/v2/requests/x/status"

    async with http_session.get(url) as first:
        assert (first.status, first.content_type) == (502, "text/html")
        assert "Bad Gateway" in await first.text()
    async with http_session.get(url) as second:
        assert (second.status, await second.read()) == (504, b"")


async def test_inject_sends_a_dict_as_json_under_the_content_type_a_test_gives(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession
) -> None:
    """A JSON body under a lying Content-Type: what a misconfigured proxy may send."""
    simulator.inject(
        "status", status=200, body={"status": "COMPLETED"}, headers={"Content-Type": "text/plain"}
    )
    simulator.inject("status", status=503, body={"error": "busy"}, headers={"Retry-After": "7"})
    url = f"{simulator.base_url}/v2/requests/x/status"

    async with http_session.get(url) as first:
        assert (first.status, first.content_type) == (200, "text/plain")
        assert await first.json(content_type=None) == {"status": "COMPLETED"}
    async with http_session.get(url) as second:
        assert (second.status, second.content_type) == (503, "application/json")
        assert second.headers["Retry-After"] == "7"
        assert await second.json() == {"error": "busy"}


async def test_an_accepted_inject_creates_the_job_behind_the_error(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession
) -> None:
    simulator.inject("submit", status=502, body="<html>Bad Gateway</html>", accept=True)

    async with http_session.post(
        f"{simulator.base_url}/v2/{MODEL_SLUG}", json=VALID, headers=KEY
    ) as resp:
        assert resp.status == 502

    assert simulator.submits == [VALID]
    assert simulator.submit_attempts == 1


@pytest.mark.parametrize("accept", [True, False])
async def test_hang_never_answers(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession, accept: bool
) -> None:
    simulator.hang("submit", accept=accept)

    with pytest.raises(TimeoutError):
        await http_session.post(
            f"{simulator.base_url}/v2/{MODEL_SLUG}",
            json=VALID,
            headers=KEY,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )

    assert len(simulator.submits) == (1 if accept else 0)


@pytest.mark.parametrize("accept", [True, False])
async def test_reset_connection_drops_the_request_unanswered(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession, accept: bool
) -> None:
    simulator.reset_connection("submit", accept=accept)

    with pytest.raises(aiohttp.ClientConnectionError):
        await http_session.post(f"{simulator.base_url}/v2/{MODEL_SLUG}", json=VALID, headers=KEY)

    assert len(simulator.submits) == (1 if accept else 0)
    assert simulator.submit_attempts == 1


async def test_slow_answers_late_but_normally(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession
) -> None:
    simulator.slow("submit", seconds=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()

    body = await submit(http_session, simulator)
    late = loop.time() - started
    started = loop.time()
    await submit(http_session, simulator)  # only the next call was slow

    assert late >= 0.2 > loop.time() - started
    assert body["status"] == "QUEUED" and len(simulator.submits) == 2


async def test_stop_releases_hung_requests_quickly(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory()
    sim.hang("status")
    async with aiohttp.ClientSession() as session:

        async def call() -> int:
            async with session.get(f"{sim.base_url}/v2/requests/x/status") as resp:
                return resp.status

        pending = asyncio.create_task(call())
        async with asyncio.timeout(2):
            while not sim.calls_to("status"):  # wait until the request is being held
                await asyncio.sleep(0.005)

        await asyncio.wait_for(sim.stop(), timeout=2)

        with pytest.raises(aiohttp.ClientConnectionError):
            await pending


def test_controls_refuse_unknown_routes() -> None:
    sim = SegmindSimulator()
    with pytest.raises(ValueError, match="route must be one of"):
        sim.inject("poll", status=500)
    with pytest.raises(ValueError, match="times must be at least 1"):
        sim.hang("submit", times=0)


def test_config_refuses_an_unknown_output_shape() -> None:
    with pytest.raises(ValueError, match="output_shape must be one of"):
        SimulatorConfig(output_shape="bytes")


async def test_calls_are_recorded_with_their_headers(
    simulator: SegmindSimulator, http_session: aiohttp.ClientSession
) -> None:
    body = await submit(http_session, simulator)
    await get_json(http_session, body["status_url"], headers={"x-api-key": "other"})

    routes = [(c.route, c.method, c.headers.get("x-api-key")) for c in simulator.calls]

    assert routes == [("submit", "POST", TEST_SEGMIND_API_KEY), ("status", "GET", "other")]


# --- standalone process ------------------------------------------------------------------------


async def test_the_standalone_simulator_prints_its_url_serves_and_stops_on_sigterm(
    http_session: aiohttp.ClientSession,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.simulator",
        "--port",
        "0",
        "--queue-seconds",
        "0",
        "--processing-seconds",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=10)).decode().strip()
        assert line.startswith("SIMULATOR_URL=http://127.0.0.1:")
        base_url = line.removeprefix("SIMULATOR_URL=")

        status, body = await post_json(
            http_session, f"{base_url}/v2/{MODEL_SLUG}", VALID, headers={}
        )
        assert status == 200
        assert (await get_json(http_session, body["status_url"], headers={}))[1]["status"] == (
            "COMPLETED"
        )

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
