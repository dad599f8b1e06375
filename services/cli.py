"""`python bot.py generate "prompt" --out clip.mp4`: the same job pipeline, without Discord.

The operator's way to check a Segmind key, and a newcomer's way to watch the main
job work. The job itself runs on a throwaway database, so the bot never resumes it. What
it costs is still the operator's money: with MAX_DAILY_SPEND_USD set, the clip is checked
against, and counted in, the bot's own daily spend (services.storage.outside_spend), so the
bot and this command together stay under the ceiling. It is priced as the bot's admission
prices a clip (services.reported_cost.reservation_usd: CLIP_COST_USD, or more when Segmind
lately charged more for clips of this size), and once Segmind reports what it charged, that
figure is what the bot's database counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from services.app import open_services
from services.clock import Clock, SystemClock
from services.console import JobDisplay, PlainDisplay, open_display
from services.errors import (
    BotError,
    SegmindAuthError,
    SegmindInsufficientCredits,
    SegmindNotFound,
)
from services.models import Job, Progress, VideoRequest
from services.reported_cost import recent_prices, reservation_usd
from services.settings import Settings
from services.spend_caps import SpendCeilingReached, ceiling_refusal, spent_today
from services.storage import NewJob, Storage
from services.storage.database import DATABASE_ERRORS
from services.storage.outside_spend import hold_outside_clip, record_outside_outcome

# Nothing was sent: the operator's daily spending ceiling would be passed.
EXIT_CEILING = 3
# Nothing was sent: the bot's database, where today's spend is, could not be read (as bot.py).
EXIT_DATABASE = 2
# What opening or reading the bot's database may raise, whichever engine holds it.
_UNREADABLE: tuple[type[Exception], ...] = (*DATABASE_ERRORS, OSError, RuntimeError)

OPERATOR_WORDS: dict[type[BotError], str] = {
    SegmindAuthError: "Segmind refused the key: check SEGMIND_API_KEY (and SEGMIND_BASE_URL).",
    SegmindNotFound: "Segmind does not know this model or route: check SEGMIND_BASE_URL.",
    SegmindInsufficientCredits: "The Segmind account is out of credits: top it up at segmind.com.",
}


class ConsoleListener:
    """Tells the display how the job goes, saves the clip, and words the last line."""

    def __init__(self, out: Path, display: JobDisplay) -> None:
        self.out = out
        self.display = display
        self.exit_code = 1
        self.last_line = "failed: the job ended without a clip (see the log above)"

    def say(self, text: str) -> None:
        self.display.say(text)

    async def on_progress(self, job: Job, progress: Progress) -> None:
        self.display.show(progress)

    async def on_clip_ready(self, job: Job) -> int | None:
        assert job.clip_path is not None
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(job.clip_path, self.out)
        except OSError as error:
            # A full disk or a read-only folder does not heal with retries, and the clip is
            # paid for: keep it where it can be written, and say so as the last line.
            self.last_line = self._kept_elsewhere(job, error)
            return None
        size = _size_words(self.out.stat().st_size)
        # Absolute, not resolved: the path the operator named, from wherever they look.
        self.last_line = f"saved {self.out.absolute()} ({size}, seed {job.request.seed})"
        self.exit_code = 0
        return None

    def _kept_elsewhere(self, job: Job, error: OSError) -> str:
        assert job.clip_path is not None
        reason = f"{self.out} could not be written ({error.strerror or error})"
        try:
            handle, kept = tempfile.mkstemp(prefix="videobot-", suffix=".mp4")
            with open(handle, "wb") as target, open(job.clip_path, "rb") as source:
                shutil.copyfileobj(source, target)
        except OSError as second:
            return f"failed: {reason}, nor a temporary file ({second.strerror or second})"
        return f"failed: {reason}; the clip is kept at {kept} (seed {job.request.seed})"

    async def on_failed(self, job: Job, error: BotError) -> None:
        # The member's wording speaks of moderators; here the reader is the operator.
        if error.detail != error.user_message:
            self.say(f"detail: {error.detail}")
        self.last_line = f"failed: {OPERATOR_WORDS.get(type(error), error.user_message)}"

    async def on_operator_alert(self, job: Job, error: BotError) -> None:
        pass  # on_failed says it, in the operator's words


def out_problem(out: Path) -> str | None:
    """Why the clip could not be written to ``out``, checked before anything is paid for."""
    if out.is_dir():
        return f"--out {out} is a folder; name the .mp4 file to write."
    # The nearest folder that exists is the one the missing ones would be made in.
    folder = next(parent for parent in out.absolute().parents if parent.exists())
    if not folder.is_dir():
        return f"--out {out}: {folder} is a file, not a folder."
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"--out {out}: the folder {folder} is not writable."
    if out.exists() and not os.access(out, os.W_OK):
        return f"--out {out} exists and is not writable."
    return None


def run_generate(settings: Settings, request: VideoRequest, out: Path, *, verbose: bool) -> int:
    """`bot.py generate`: the job on stdout, a bar on a terminal; returns the exit code.

    The display wraps the event loop, so on Ctrl-C the bar is gone before bot.py speaks.
    """
    with open_display(sys.stdout, verbose=verbose) as display:
        return asyncio.run(generate(settings, request, out, display=display))


async def generate(
    settings: Settings,
    request: VideoRequest,
    out: Path,
    *,
    stream: TextIO = sys.stdout,
    clock: Clock | None = None,
    display: JobDisplay | None = None,
) -> int:
    """Run one request through submit, poll, download; returns a process exit code.

    ``clock`` dates the clip's spend in the bot's database (tests pin it; the job's own
    timings always use the system clock). Without a ``display``, plain lines go to ``stream``.
    """
    display = display or PlainDisplay(stream)
    clock = clock or SystemClock()
    with tempfile.TemporaryDirectory(prefix="videobot-generate-") as scratch:
        scratch_settings = dataclasses.replace(
            settings, database_path=Path(scratch) / "generate.db", database_url=None
        )
        async with open_services(scratch_settings) as services:
            listener = ConsoleListener(out, display)
            held: int | None = None
            # What the scratch job is reserved at: Segmind's report is checked against it.
            reserved = settings.clip_cost_usd
            if settings.simulate:
                listener.say(
                    f"the simulator bills nothing (a real clip costs about"
                    f" ${settings.clip_cost_usd:.2f})"
                )
            elif settings.max_daily_spend_usd is None:
                reserved = await _quoted_price(settings, request, clock)
                listener.say(
                    f"this clip costs about ${reserved:.2f};"
                    " no MAX_DAILY_SPEND_USD is set, so nothing caps today's spend"
                )
            else:
                try:
                    hold = await _hold_spend(settings, request, clock, listener)
                except _UNREADABLE as error:
                    # The ceiling cannot be checked, so nothing is spent past it unseen.
                    listener.say(
                        f"Nothing was sent: today's spend is kept in {settings.database_shown}"
                        f" (DATABASE_URL), which cannot be read: {error}"
                    )
                    return EXIT_DATABASE
                if hold is None:
                    return EXIT_CEILING
                held, reserved = hold
            services.runner.set_listener(listener)
            await services.runner.start()
            job = await services.storage.jobs.insert(
                NewJob(
                    guild_id=0,
                    channel_id=0,
                    user_id=0,
                    request=request,
                    created_at=services.clock.time(),
                    cost_usd=reserved,
                )
            )
            where = "the simulator" if settings.simulate else settings.segmind_base_url
            listener.say(f"job {job.id}: seed {request.seed}, sending to {where}")
            await services.runner.enqueue(job)
            await services.runner.wait_idle()
            ran = await services.storage.jobs.get(job.id)
            if held is not None and ran is not None:
                await _record_outcome(settings, held, ran, clock, listener)
        # After the services close, so nothing they log comes below the last line.
        display.conclude(listener.last_line, ok=listener.exit_code == 0)
        return listener.exit_code


async def _quoted_price(settings: Settings, request: VideoRequest, clock: Clock) -> float:
    """What the bot would reserve for this clip, for the line printed when nothing caps it.

    Only read from a bot's database that exists: with no ceiling this command otherwise
    leaves it alone, and a bot that never ran has no reports to price from. Nothing is at
    stake on this figure, so a database that cannot be read quotes CLIP_COST_USD.
    """
    estimate = settings.clip_cost_usd
    if settings.database_url is None and not settings.database_path.is_file():
        return estimate
    try:
        storage = await Storage.open(settings.database_location)
        try:
            async with storage.db.transaction() as tx:
                prices = await recent_prices(storage.jobs, clock.time(), estimate, tx=tx)
        finally:
            await storage.close()
    except _UNREADABLE:
        return estimate
    return reservation_usd(request, estimate, prices)


async def _hold_spend(
    settings: Settings, request: VideoRequest, clock: Clock, listener: ConsoleListener
) -> tuple[int, float] | None:
    """Check the ceiling and count this clip in the bot's database, as one transaction.

    Returns the id of the row that counts it and the price it is counted at, or None (said
    why) when it would pass the ceiling. The price is admission's reservation, read in the
    same transaction, so this command never lets in a clip the bot's own gate would refuse.
    The database is opened only for this: the running bot keeps using it (WAL, and SQLite's
    write lock orders this against the bot's own admissions).
    """
    ceiling = settings.max_daily_spend_usd
    assert ceiling is not None
    storage = await Storage.open(settings.database_location)
    try:
        async with storage.db.transaction() as tx:
            now = clock.time()
            prices = await recent_prices(storage.jobs, now, settings.clip_cost_usd, tx=tx)
            cost = reservation_usd(request, settings.clip_cost_usd, prices)
            spent = await spent_today(storage.jobs, now, tx=tx)
            refusal = ceiling_refusal(
                ceiling_usd=ceiling, spent_usd=spent, clip_cost_usd=cost, now=now
            )
            if refusal is not None:
                listener.say(_ceiling_words(refusal, now))
                return None
            held = await hold_outside_clip(storage.jobs, request, cost_usd=cost, now=now, tx=tx)
    finally:
        await storage.close()
    listener.say(
        f"this clip costs about ${cost:.2f}; today's spend ${spent:.2f} of the"
        f" MAX_DAILY_SPEND_USD ceiling ${ceiling:.2f} (UTC day, all servers and this command)"
    )
    return held, cost


async def _record_outcome(
    settings: Settings, held: int, ran: Job, clock: Clock, listener: ConsoleListener
) -> None:
    """Leave the clip counted in the bot's database only if Segmind may have billed it.

    Counted at what Segmind reported it charged, when it did (the scratch run checked the
    figure): the ceiling then sums real charges, and the bot prices later clips of this
    size from it, as it does from its own.
    """
    try:
        storage = await Storage.open(settings.database_location)
        try:
            await record_outside_outcome(storage.jobs, held, ran, now=clock.time())
            if ran.cost_reported and ran.request_id is not None:
                await storage.jobs.update(
                    held, now=clock.time(), cost_usd=ran.cost_usd, cost_reported=True
                )
        finally:
            await storage.close()
    except _UNREADABLE as error:
        # The row stays counted as "outcome unknown": at worst the day counts one clip more.
        listener.say(f"note: this clip stays counted in today's spend ({error})")


def _size_words(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    return f"{size / 1000:.1f} kB"


def _ceiling_words(refusal: SpendCeilingReached, now: float) -> str:
    left = max(0, int(refusal.resets_at - now))
    return (
        f"Nothing was sent: this clip (about ${refusal.clip_cost_usd:.2f}) would pass your"
        f" MAX_DAILY_SPEND_USD ceiling of ${refusal.ceiling_usd:.2f}; ${refusal.spent_usd:.2f}"
        " was already spent today across all servers and this command. The day resets at"
        f" midnight UTC (in {left // 3600}h {left % 3600 // 60:02d}m); raise"
        " MAX_DAILY_SPEND_USD (and restart the bot) to allow more today."
    )
