"""A local, Segmind-compatible v2 server: the same routes, states and errors, no key and no cost.

The tests drive the Segmind client against it over real HTTP, and the bot's ``--simulate``
switch points the client at it. Jobs move QUEUED -> PROCESSING -> COMPLETED on the
injected clock; a prompt containing ``[fail]`` ends FAILED, the way a content block does.
Tests can make the next answers on a route misbehave (``inject``, ``hang``,
``reset_connection``, ``slow``) to play a rate limit, a proxy error, a lost or a late
answer, and cut a download short (``cut_download_short``). A redirect is an ``inject``
with a 3xx status and a ``Location`` header. Those scripts play out in
``services.simulator_faults``; ``services.simulator_payload`` checks a submit's body and
builds a finished job's result.

Run it alone with ``python -m services.simulator --port 0``: it prints
``SIMULATOR_URL=http://127.0.0.1:PORT`` and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import pathlib
import signal
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web

from services.clock import Clock, SystemClock
from services.models import MODEL_SLUG, SegmindState
from services.simulator_faults import Override, act_out, next_misbehaviour
from services.simulator_payload import completed_result, validate_payload

log = logging.getLogger(__name__)

ROUTES = frozenset({"submit", "status", "result", "download"})
OUTPUT_SHAPES = frozenset({"string", "list", "object"})
DEFAULT_VIDEO_PATH = pathlib.Path(__file__).resolve().parent / "assets" / "sample.mp4"
FAIL_MARKER = "[fail]"
FAIL_MARKER_ERROR = (
    "Content policy violation: the prompt was flagged by the safety filter and the "
    "video was not generated."
)


@dataclass
class SimulatorConfig:
    """How the simulated Segmind behaves; the defaults feel like a fast real run."""

    queue_seconds: float = 1.0
    processing_seconds: float = 5.0
    result_ttl: float = 3600.0
    api_key: str | None = None  # when set, API requests must carry it in x-api-key
    output_shape: str = "string"  # "string" | "list" | "object": the forms Segmind uses
    video_path: pathlib.Path = DEFAULT_VIDEO_PATH
    video_bytes: bytes | None = None  # overrides video_path (tests use it for oversized clips)
    # Origin advertised in status_url/response_url instead of the request's own host, to
    # check that a client never follows such links to another origin with its key.
    advertised_base_url: str | None = None
    # False streams the MP4 chunked without Content-Length, as some CDNs do.
    download_content_length: bool = True
    # Each job's own (queue, processing) seconds from its submitted parameters, for a
    # workload where clips take different times (bench/polling.py); None: the two above.
    timing: Callable[[Mapping[str, Any]], tuple[float, float]] | None = None
    # What a result reports as `metrics.cost`, sent as is: tests set another price, or
    # something that is no price at all ("0.5", -1, NaN), to see what the bot trusts.
    reported_cost: Any = 0.36

    def __post_init__(self) -> None:
        if self.output_shape not in OUTPUT_SHAPES:
            raise ValueError(f"output_shape must be one of {sorted(OUTPUT_SHAPES)}")
        if min(self.queue_seconds, self.processing_seconds, self.result_ttl) < 0:
            raise ValueError("simulator timings must not be negative")


@dataclass(frozen=True)
class RecordedCall:
    """One HTTP request the simulator received, headers included (tests check them)."""

    route: str
    method: str
    path: str
    headers: Mapping[str, str]
    at: float = 0.0  # the simulator's clock.monotonic() when it arrived


@dataclass
class _Job:
    request_id: str
    payload: dict[str, Any]
    created_at: float
    failure: str | None  # the error text when this job is doomed to end FAILED
    queue_seconds: float
    processing_seconds: float


class SegmindSimulator:
    """Serves Segmind's v2 routes from memory on loopback; see the module docstring."""

    def __init__(
        self, config: SimulatorConfig | None = None, *, clock: Clock | None = None
    ) -> None:
        self.config = config or SimulatorConfig()
        self.clock: Clock = clock or SystemClock()
        self.base_url = ""
        self.submits: list[dict[str, Any]] = []  # every ACCEPTED submit payload, in order
        self.submit_attempts = 0  # every POST to the submit route, accepted or not
        self.calls: list[RecordedCall] = []
        # Matched case-insensitively against the prompt; the first match decides the error.
        self.fail_prompts_containing: dict[str, str] = {FAIL_MARKER: FAIL_MARKER_ERROR}
        self._jobs: dict[str, _Job] = {}
        self._overrides: dict[str, deque[Override]] = {route: deque() for route in ROUTES}
        self._video = b""
        self._runner: web.AppRunner | None = None
        self._release_hung = asyncio.Event()

    # --- lifecycle -------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving and return the base URL (``http://host:port``, port resolved)."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        self._video = self._load_video()
        self._release_hung = asyncio.Event()
        app = web.Application()
        app.add_routes(
            [
                web.post("/v2/{model}", self._handle_submit),
                web.get("/v2/requests/{request_id}/status", self._handle_status),
                web.get("/v2/requests/{request_id}", self._handle_result),
                web.get("/files/{request_id}.mp4", self._handle_download),
            ]
        )
        # No access log: requests carry the API key's header, and tests capture all logs.
        # Short shutdown timeout: hung handlers are released by stop(), not waited on.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base_url = f"http://{shown_host}:{bound_port}"
        log.info("simulator serving at %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        """Stop serving; hung requests are dropped, not answered."""
        self._release_hung.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _load_video(self) -> bytes:
        if self.config.video_bytes is not None:
            return self.config.video_bytes
        return pathlib.Path(self.config.video_path).read_bytes()

    # --- test controls ----------------------------------------------------------------

    def inject(
        self,
        route: str,
        *,
        status: int,
        body: str | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        accept: bool = False,
    ) -> None:
        """Answer the next ``times`` calls on ``route`` with this instead.

        ``accept=True`` on "submit" creates the job first (a proxy error after the job
        started); a dict body is sent as JSON, a str as HTML or text, None as empty.
        """
        self._add_override(
            route,
            Override("respond", times, accept, status, body, dict(headers or {})),
        )

    def hang(self, route: str, *, times: int = 1, accept: bool = False) -> None:
        """Read the next requests on ``route`` fully, then never answer them."""
        self._add_override(route, Override("hang", times, accept))

    def reset_connection(self, route: str, *, times: int = 1, accept: bool = False) -> None:
        """Read the next requests on ``route`` fully, then drop the connection unanswered."""
        self._add_override(route, Override("reset", times, accept))

    def slow(self, route: str, *, seconds: float, times: int = 1) -> None:
        """Answer the next requests on ``route`` as usual, but only after ``seconds``."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._add_override(route, Override("slow", times, accept=False, delay=seconds))

    def cut_download_short(self, *, keep_bytes: int, times: int = 1) -> None:
        """Send only the clip's first ``keep_bytes`` bytes on the next downloads, then close.

        The answer has neither a ``Content-Length`` nor chunked encoding: its body ends
        where the connection does (HTTP/1.1 allows it), so a client cannot tell from HTTP
        alone that the transfer was cut short. The connection is closed cleanly, not reset.
        """
        if keep_bytes < 0:
            raise ValueError("keep_bytes must not be negative")
        self._add_override("download", Override("cut", times, accept=False, keep_bytes=keep_bytes))

    def expire(self, request_id: str) -> None:
        """Forget a job now, as Segmind does an hour after it finished."""
        self._jobs.pop(request_id, None)

    def job_state(self, request_id: str) -> str | None:
        """The job's Segmind state ("QUEUED", ...), or None when unknown or expired."""
        job = self._live_job(request_id)
        return None if job is None else self._state(job).value

    def ends_at(self, request_id: str) -> float | None:
        """When the job ends (``clock.monotonic()``), finished or not yet; None if unknown."""
        job = self._jobs.get(request_id)
        return None if job is None else job.created_at + job.queue_seconds + job.processing_seconds

    def calls_to(self, route: str) -> list[RecordedCall]:
        """The recorded calls on one route, in order."""
        return [call for call in self.calls if call.route == route]

    def _add_override(self, route: str, override: Override) -> None:
        if route not in ROUTES:
            raise ValueError(f"route must be one of {sorted(ROUTES)}, not {route!r}")
        if override.times < 1:
            raise ValueError("times must be at least 1")
        self._overrides[route].append(override)

    async def _misbehaviour(self, route: str) -> Override | None:
        """The scripted misbehaviour for this call; a slow answer waits here, then is normal."""
        return await next_misbehaviour(self._overrides[route])

    # --- job clock ----------------------------------------------------------------------

    def _state(self, job: _Job) -> SegmindState:
        elapsed = self.clock.monotonic() - job.created_at
        if elapsed < job.queue_seconds:
            return SegmindState.QUEUED
        if job.failure is not None:
            return SegmindState.FAILED
        if elapsed < job.queue_seconds + job.processing_seconds:
            return SegmindState.PROCESSING
        return SegmindState.COMPLETED

    def _finished_at(self, job: _Job) -> float | None:
        state = self._state(job)
        if state is SegmindState.FAILED:
            return job.created_at + job.queue_seconds
        if state is SegmindState.COMPLETED:
            return job.created_at + job.queue_seconds + job.processing_seconds
        return None

    def _live_job(self, request_id: str) -> _Job | None:
        """The job, unless unknown or past its retention (then it is forgotten)."""
        job = self._jobs.get(request_id)
        if job is None:
            return None
        finished_at = self._finished_at(job)
        if (
            finished_at is not None
            and self.clock.monotonic() >= finished_at + self.config.result_ttl
        ):
            log.info("simulator request_id=%s expired", request_id)
            del self._jobs[request_id]
            return None
        return job

    def _failure_for(self, prompt: str) -> str | None:
        lowered = prompt.lower()
        for needle, error in self.fail_prompts_containing.items():
            if needle.lower() in lowered:
                return error
        return None

    # --- handlers -----------------------------------------------------------------------

    async def _handle_submit(self, request: web.Request) -> web.StreamResponse:
        self.submit_attempts += 1
        self._record("submit", request)
        override = await self._misbehaviour("submit")
        if override is None or override.accept:
            answer = await self._submit(request)
            if override is None:
                return answer
        return await self._misbehave(override, request)

    async def _handle_status(self, request: web.Request) -> web.StreamResponse:
        found = await self._known_job("status", request)
        if not isinstance(found, _Job):
            return found
        state = self._state(found)
        if state is SegmindState.FAILED:
            return _failed(found)
        return web.json_response({"request_id": found.request_id, "status": state.value})

    async def _known_job(self, route: str, request: web.Request) -> _Job | web.StreamResponse:
        """What status and result share: record, misbehave, check the key, find the job (or 404)."""
        self._record(route, request)
        override = await self._misbehaviour(route)
        if override is not None:
            return await self._misbehave(override, request)
        refusal = self._check_key(request)
        if refusal is not None:
            return refusal
        job = self._live_job(request.match_info["request_id"])
        if job is None:
            return _error(404, "Request not found or expired")
        return job

    async def _handle_result(self, request: web.Request) -> web.StreamResponse:
        found = await self._known_job("result", request)
        if not isinstance(found, _Job):
            return found
        job, request_id = found, found.request_id
        state = self._state(job)
        if state is SegmindState.FAILED:
            return _failed(job)
        if state is not SegmindState.COMPLETED:
            return web.json_response({"request_id": request_id, "status": state.value})
        video_url = f"{request.url.origin()}/files/{request_id}.mp4"
        return web.json_response(
            completed_result(
                request_id,
                video_url,
                shape=self.config.output_shape,
                queue_seconds=job.queue_seconds,
                processing_seconds=job.processing_seconds,
                cost=self.config.reported_cost,
            )
        )

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        # A CDN: no API key expected, the link works until the result expires.
        self._record("download", request)
        override = await self._misbehaviour("download")
        if override is not None:
            return await self._misbehave(override, request)
        job = self._live_job(request.match_info["request_id"])
        if job is None or self._state(job) is not SegmindState.COMPLETED:
            return web.Response(status=404, text="Not Found")
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        if self.config.download_content_length:
            response.content_length = len(self._video)
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = 16 * 1024
        for offset in range(0, len(self._video), chunk):
            await response.write(self._video[offset : offset + chunk])
        await response.write_eof()
        return response

    # --- submit ---------------------------------------------------------------------

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        """Segmind's own answer to a submit: refuse it, or create the job and link to it."""
        refusal = self._check_key(request)
        if refusal is not None:
            return refusal
        model = request.match_info["model"]
        if model != MODEL_SLUG:
            return _error(404, f"Model '{model}' not found")
        try:
            payload = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return _error(400, "Invalid JSON in request body")
        problem = validate_payload(payload)
        if problem is not None:
            return _error(400, problem)
        timing = self.config.timing
        queue_seconds, processing_seconds = (
            timing(payload)
            if timing is not None
            else (self.config.queue_seconds, self.config.processing_seconds)
        )
        job = _Job(
            request_id=str(uuid.uuid4()),
            payload=payload,
            created_at=self.clock.monotonic(),
            failure=self._failure_for(payload["prompt"]),
            queue_seconds=queue_seconds,
            processing_seconds=processing_seconds,
        )
        self._jobs[job.request_id] = job
        self.submits.append(payload)
        log.info("simulator request_id=%s accepted", job.request_id)
        links = (self.config.advertised_base_url or str(request.url.origin())).rstrip("/")
        return web.json_response(
            {
                "request_id": job.request_id,
                "status": SegmindState.QUEUED.value,
                "status_url": f"{links}/v2/requests/{job.request_id}/status",
                "response_url": f"{links}/v2/requests/{job.request_id}",
            }
        )

    def _check_key(self, request: web.Request) -> web.Response | None:
        expected = self.config.api_key
        if expected is None:
            return None
        given = request.headers.get("x-api-key", "")
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return _error(401, "Unauthorized: missing or invalid API key")

    # --- misbehaviour -----------------------------------------------------------------

    async def _misbehave(self, override: Override, request: web.Request) -> web.StreamResponse:
        return await act_out(override, request, video=self._video, release_hung=self._release_hung)

    def _record(self, route: str, request: web.Request) -> None:
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.calls.append(
            RecordedCall(route, request.method, request.path, headers, self.clock.monotonic())
        )


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _failed(job: _Job) -> web.Response:
    # Segmind serves a FAILED job as 422 with the state still in the body.
    body = {"request_id": job.request_id, "status": SegmindState.FAILED.value, "error": job.failure}
    return web.json_response(body, status=422)


# --- standalone ---------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.simulator", description="Run a local Segmind v2 simulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--queue-seconds", type=float, default=1.0)
    parser.add_argument("--processing-seconds", type=float, default=5.0)
    parser.add_argument("--result-ttl", type=float, default=3600.0)
    parser.add_argument("--output-shape", choices=sorted(OUTPUT_SHAPES), default="string")
    parser.add_argument(
        "--api-key", default=None, help="require this x-api-key (a made-up one; never a real key)"
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    config = SimulatorConfig(
        queue_seconds=args.queue_seconds,
        processing_seconds=args.processing_seconds,
        result_ttl=args.result_ttl,
        output_shape=args.output_shape,
        api_key=args.api_key,
    )
    simulator = SegmindSimulator(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    url = await simulator.start(args.host, args.port)
    # One parseable line, flushed: the parent process waits for it to learn the port.
    print(f"SIMULATOR_URL={url}", flush=True)
    try:
        await stop.wait()
    finally:
        await simulator.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``python -m services.simulator``."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
