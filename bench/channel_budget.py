"""Many jobs in one channel after their tokens expired: 429s, still messages, delivery waits.

    .venv/bin/python bench/channel_budget.py                    # 60 requests, about 5 minutes
    .venv/bin/python bench/channel_budget.py --bot-root /tmp/old  # the same, another tree's bot

The real bot.py runs in a child process (tests/harness/run_bot.py, as bench/soak.py runs it)
against the in-process fake Discord, which enforces Discord's per-channel message buckets
(5 creates and 5 edits per 5 s per channel, a 429 past that, with Discord's headers), and
the Segmind simulator. Time is not compressed: Discord's window, the bot's 5 s between edits
and its channel budget are production's. Members send ``/video`` in one channel, one every
``--spread / --requests`` seconds; as soon as a request's progress message exists, its
interaction token stops working (Discord answers 401 50027 to its webhook edits, as after 15
minutes), so every later progress edit and the clip go through channel messages.

Printed, with the targets: the share of the bot's requests answered 429 (< 1 %), the longest
a live progress message stood still (<= 60 s; a message is live from its token's end until
its final text), how long clips waited from Segmind's end to the channel, and edits per job
against 1 + duration / 5 s. Also the most progress messages live at once: the budget moves
4 messages per 5 s in a channel, so with N live, one round takes N * 5 / 4 s; past 48 live
no schedule moves each once a minute (Discord's own 5 per 5 s caps it at 60).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak import ROOT, BotProcess, bot_environment  # bench/soak.py

from services.simulator import SegmindSimulator, SimulatorConfig
from tests.fakediscord import (
    FakeDiscord,
    FakeTimeout,
    FakeWorld,
    Fault,
    InteractionRecord,
    StoredMessage,
)

MAKING = "Making your video"  # the progress message's title (cogs/video/render.py)
DISCORD_WRITES, DISCORD_WINDOW = 5, 5.0
EDIT_INTERVAL = 5.0
STILL_TARGET = 60.0
SHARE_429_TARGET = 0.01


@dataclass
class Request:
    index: int
    record: InteractionRecord
    expired_at: float | None = None  # when its token stopped working (the fake's clock)
    submitted_at: float | None = None  # when Segmind accepted it (this process's clock)


@dataclass
class Figures:
    calls: int = 0
    refused_429: int = 0
    expired_401: int = 0
    still: list[float] = field(default_factory=list)  # per request, the longest still stretch
    waits: list[float] = field(default_factory=list)  # Segmind's end -> the clip in the channel
    edits: list[tuple[int, float]] = field(default_factory=list)  # (edits, 1 + duration / 5)
    peak_live: int = 0
    unfinished: int = 0


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--spread", type=float, default=240.0, help="seconds over which they come")
    parser.add_argument("--queue", type=float, default=5.0, help="Segmind's queue seconds")
    parser.add_argument("--processing", type=float, default=60.0, help="Segmind's seconds")
    parser.add_argument("--bot-root", type=Path, default=ROOT, help="the tree whose bot runs")
    parser.add_argument("--timeout", type=float, default=600.0)
    return parser.parse_args()


async def bench(args: argparse.Namespace, folder: Path) -> Figures:
    world = FakeWorld.default()
    world.token = "bench-bot-token.channel-budget"
    members = [world.guild.add_member(f"member{n:03d}") for n in range(args.requests)]
    fake = FakeDiscord(world)
    fake.enforce_rate_limits(DISCORD_WRITES, DISCORD_WINDOW)
    requests: list[Request] = []
    by_prompt: dict[str, Request] = {}

    def timing(payload: dict[str, Any]) -> tuple[float, float]:
        request = by_prompt.get(str(payload.get("prompt")))
        if request is not None:
            request.submitted_at = time.monotonic()
        return args.queue, args.processing

    key = "sg-bench-channel-budget"
    simulator = SegmindSimulator(
        SimulatorConfig(
            queue_seconds=args.queue,
            processing_seconds=args.processing,
            api_key=key,
            timing=timing,
        )
    )
    await fake.start()
    await simulator.start("127.0.0.1", 0)
    env = bot_environment(folder, fake, simulator, key)
    env.update(
        PYTHONPATH=str(args.bot_root.resolve()),
        MAX_CONCURRENT_JOBS=str(min(100, args.requests)),
        EXPECTED_CLIP_SECONDS=str(max(10.0, args.queue + args.processing)),
    )
    bot = BotProcess(folder, fake, env)
    try:
        await bot.start(debug=False)
        started = time.monotonic()
        expiring: list[asyncio.Task[None]] = []
        for index, member in enumerate(members):
            await asyncio.sleep(
                max(0.0, started + index * args.spread / args.requests - time.monotonic())
            )
            prompt = f"req{index} a slow tide over the flats"
            record = await fake.dispatch_slash_command("video", {"prompt": prompt}, user=member)
            request = Request(index, record)
            requests.append(request)
            by_prompt[prompt] = request
            expiring.append(asyncio.create_task(expire_token(fake, request)))
        await asyncio.gather(*expiring)
        with contextlib.suppress(FakeTimeout):  # reported as unfinished below
            await fake.wait_until(lambda: all(finished(fake, r) for r in requests), args.timeout)
    finally:
        await bot.stop()
        await simulator.stop()
        await fake.stop()
    return measure(fake, requests, args)


async def expire_token(fake: FakeDiscord, request: Request) -> None:
    """Once the progress message exists, its token answers 50027, as after 15 minutes."""
    record = request.record
    await fake.wait_for_ack(record)
    message_id = await fake.wait_until(lambda: record.original_message_id, timeout=30)
    fake.inject(Fault.expired_token(f"/webhooks/*/*/messages/{message_id}", times=None))
    request.expired_at = fake.clock.monotonic()


def title(embeds: list[dict[str, Any]]) -> str | None:
    return embeds[0].get("title") if embeds else None


def progress_message(fake: FakeDiscord, request: Request) -> StoredMessage | None:
    message_id = request.record.original_message_id
    return fake.message(message_id) if message_id else None


def finished(fake: FakeDiscord, request: Request) -> bool:
    message = progress_message(fake, request)
    return message is not None and title(message.embeds) != MAKING


def measure(fake: FakeDiscord, requests: list[Request], args: argparse.Namespace) -> Figures:
    figures = Figures(calls=len(fake.calls))
    figures.refused_429 = sum(1 for c in fake.calls if c.status == 429)
    figures.expired_401 = sum(1 for c in fake.calls if c.status == 401)
    live: list[tuple[float, int]] = []
    for request in requests:
        message = progress_message(fake, request)
        if message is None or request.expired_at is None:
            figures.unfinished += 1
            continue
        revisions = message.revisions
        final = next((r.at for r in revisions if title(r.embeds) != MAKING), None)
        if final is None:
            figures.unfinished += 1
            final = fake.clock.monotonic()
        moved = [request.expired_at]
        moved += [r.at for r in revisions if request.expired_at < r.at <= final]
        if moved[-1] < final:
            moved.append(final)
        figures.still.append(max(b - a for a, b in itertools.pairwise(moved)))
        live += [(request.expired_at, 1), (final, -1)]
        duration = final - revisions[0].at
        figures.edits.append((message.edit_count, 1 + duration / EDIT_INTERVAL))
    running = 0
    for _, step in sorted(live):
        running += step
        figures.peak_live = max(figures.peak_live, running)
    figures.waits = delivery_waits(fake, requests, args)
    return figures


def delivery_waits(
    fake: FakeDiscord, requests: list[Request], args: argparse.Namespace
) -> list[float]:
    """Seconds from Segmind's end of each job to its clip's post in the channel."""
    # The fake's clock is this process's monotonic clock: no test advance() here.
    by_member = {r.record.user_id: r for r in requests}
    waits = []
    for call in fake.calls_to("POST /channels/*/messages"):
        if not (call.ok and call.files):
            continue
        mentioned = (call.json or {}).get("allowed_mentions", {}).get("users", [])
        request = by_member.get(int(mentioned[0])) if mentioned else None
        if request is None or request.submitted_at is None:
            continue
        waits.append(call.at - (request.submitted_at + args.queue + args.processing))
    return waits


def report(figures: Figures, args: argparse.Namespace, elapsed: float) -> bool:
    share = figures.refused_429 / max(1, figures.calls)
    still = max(figures.still, default=0.0)
    over = [e for e, bound in figures.edits if e > bound]
    worst = max((e / b for e, b in figures.edits), default=0.0)
    waits = sorted(figures.waits)
    print(
        f"channel budget: {args.requests} requests in one channel over {args.spread:g} s, "
        f"Segmind {args.queue:g} + {args.processing:g} s, bot from {args.bot_root}"
    )
    print(f"  run took {elapsed:.0f} s; unfinished jobs: {figures.unfinished}")
    print(
        f"  requests to Discord: {figures.calls}; answered 429: {figures.refused_429} "
        f"= {share:.2%} (target < {SHARE_429_TARGET:.0%}); "
        f"401 50027 (expired tokens, expected): {figures.expired_401}"
    )
    print(
        f"  progress messages live at once: at most {figures.peak_live} "
        f"(one round of the budget: {figures.peak_live * DISCORD_WINDOW / 4:.0f} s)"
    )
    print(
        f"  longest a live progress message stood still: {still:.1f} s "
        f"(target <= {STILL_TARGET:.0f} s); median of each message's longest: "
        f"{statistics.median(figures.still) if figures.still else 0:.1f} s; "
        f"messages over {STILL_TARGET:.0f} s: {sum(s > STILL_TARGET for s in figures.still)}"
    )
    if waits:
        print(
            f"  clip waits, Segmind's end -> channel: median {statistics.median(waits):.1f} s, "
            f"p90 {waits[int(0.9 * (len(waits) - 1))]:.1f} s, max {waits[-1]:.1f} s "
            f"({len(waits)} clips; includes polling and the download)"
        )
    print(
        f"  edits per job: at most {max((e for e, _ in figures.edits), default=0)}, "
        f"mean {statistics.mean(e for e, _ in figures.edits) if figures.edits else 0:.1f}; "
        f"jobs over 1 + duration/5 s: {len(over)} (highest ratio {worst:.2f})"
    )
    met = (
        share < SHARE_429_TARGET and still <= STILL_TARGET and not over and figures.unfinished == 0
    )
    print("PASS" if met else "FAIL")
    return met


def main() -> int:
    args = options()
    folder = Path(tempfile.mkdtemp(prefix="videobot-channel-budget-"))
    logging.basicConfig(filename=folder / "bench-process.log", level=logging.INFO)
    started = time.monotonic()
    figures = asyncio.run(bench(args, folder))
    met = report(figures, args, time.monotonic() - started)
    print(f"bot log: {folder / 'bot-0.log'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
