"""Settings: read once at start from the environment (and `.env`), typed and frozen.

Every problem is collected and reported together, so an operator fixes a `.env` in
one pass; values of secrets are never echoed.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from services.database_url import HINT as DATABASE_URL_HINT
from services.database_url import database_from_url
from services.errors import ValidationError
from services.limits import MAX_COUNT, MAX_MONTHLY_USD
from services.models import DEFAULT_NEGATIVE_PROMPT, NEGATIVE_PROMPT_MAX, has_visible_text
from services.periods import LimitSpec, parse_limit_spec
from services.shards import MAX_SHARD_COUNT, ShardPlan, parse_shard_ids

T = TypeVar("T")
DEFAULT_LIMIT = LimitSpec(5, 86400)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
SNOWFLAKE_MAX = 2**63 - 1  # Discord ids fit in a signed 64-bit integer, as SQLite stores them
ECHO_MAX = 80  # characters of a bad value shown in its problem line


def _number(value: float) -> str:
    """A bound as an operator writes it: `1,000,000`, `0.5`, never `1e+06`."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


@dataclass(frozen=True)
class Bounds:
    """The range a numeric setting must be in; outside it, the value is a typo or a hazard."""

    low: float
    high: float
    unit: str
    whole: bool = False

    @property
    def range(self) -> tuple[float, float]:
        return (self.low, self.high)

    @property
    def hint(self) -> str:
        kind = "a whole number of" if self.whole else "a number of"
        return f"use {kind} {self.unit} from {_number(self.low)} to {_number(self.high)}"


# Floors keep Segmind from being hammered (polls, credit rechecks) and a paid clip from being
# abandoned at once (deadline); ceilings catch typos like 1e308 that would mean "never".
MAX_CONCURRENT_JOBS = Bounds(1, 100, "jobs", whole=True)
MAX_JOBS_PER_MEMBER = Bounds(1, 100, "jobs", whole=True)
JOB_DEADLINE_MINUTES = Bounds(1, 180, "minutes")
POLL_INTERVAL_SECONDS = Bounds(0.5, 60, "seconds")
EXPECTED_CLIP_SECONDS = Bounds(10, 3600, "seconds")
CLIP_COST_USD = Bounds(0, 100, "US dollars")
MAX_DOWNLOAD_MB = Bounds(1, 1024, "megabytes", whole=True)
CREDITS_RECHECK_MINUTES = Bounds(1, 1440, "minutes")
SIMULATOR_SECONDS = Bounds(0, 3600, "seconds")
MAX_DAILY_SPEND_USD = Bounds(0, MAX_MONTHLY_USD, "US dollars")
SHARD_COUNT = Bounds(1, MAX_SHARD_COUNT, "shards", whole=True)
JOB_LEASE_SECONDS = Bounds(2, 600, "seconds")
# Ports below 1024 need root, which the bot should never run as.
METRICS_PORTS = (1024, 65535)


class SettingsError(Exception):
    """The configuration is invalid; ``problems`` has one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    discord_token: str = field(repr=False)
    segmind_api_key: str = field(repr=False)
    segmind_base_url: str = "https://api.segmind.com"
    # SQLite's file; with database_url set, only where the clips folder goes.
    database_path: Path = Path("data/bot.db")
    # A postgresql:// URL (several processes may share it); None: SQLite at database_path.
    database_url: str | None = field(default=None, repr=False)
    discord_guild_id: int | None = None
    max_concurrent_jobs: int = 3
    max_jobs_per_member: int = 1
    default_limit: LimitSpec = DEFAULT_LIMIT
    log_level: str = "INFO"
    default_negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    job_deadline_seconds: float = 15 * 60
    poll_interval_seconds: float = 1.4
    expected_clip_seconds: float = 240.0
    clip_cost_usd: float = 0.36
    max_download_bytes: int = 200 * 1024 * 1024
    credits_recheck_seconds: float = 600.0
    # With several processes on one database: how soon a dead process's jobs are taken over.
    job_lease_seconds: float = 30.0
    simulate: bool = False
    simulator_queue_seconds: float = 3.0
    simulator_processing_seconds: float = 20.0
    max_daily_spend_usd: float | None = None  # the operator's ceiling, all servers, UTC day
    allowed_guilds: frozenset[int] | None = None  # None: any server may use the bot
    metrics_port: int | None = None  # None: no /metrics or /healthz (served on 127.0.0.1 only)
    log_format: str = "text"  # or "json": one object per line, for log collectors
    shards: ShardPlan | None = None  # None: one process, as many shards as discord.py decides

    def allows_guild(self, guild_id: int | None) -> bool:
        """Whether the bot serves this server (with ALLOWED_GUILDS set, only those listed)."""
        return self.allowed_guilds is None or guild_id in self.allowed_guilds

    @property
    def database_location(self) -> Path | str:
        """What ``Storage.open`` takes: the PostgreSQL URL, or SQLite's file."""
        return self.database_url or self.database_path

    @property
    def database_shown(self) -> str:
        """The database as a log line or a message may name it: no password."""
        return _shown(self.database_url) if self.database_url else str(self.database_path)

    @property
    def clips_dir(self) -> Path:
        """Downloaded clips wait here until delivered (survives restarts)."""
        return self.database_path.parent / "clips"


# Up to the last @ before the path: a password may itself hold "/", "@" or spaces.
_USERINFO = re.compile(r"(//).*@", re.DOTALL)
# A password given as a URL option (postgresql://u@h/db?password=...), as libpq allows.
_PASSWORD_OPTION = re.compile(r"((?:ssl)?password=)[^&#]*", re.IGNORECASE)


def _shown(text: str) -> str:
    """A value as echoed in a problem line, without a password a URL may carry, cut short."""
    text = _PASSWORD_OPTION.sub(r"\1***", _USERINFO.sub(r"\1***@", text))
    return text if len(text) <= ECHO_MAX else text[: ECHO_MAX - 1] + "…"


class _Reader:
    """Reads typed values from an environment, collecting problems instead of raising."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self.invalid: set[str] = set()

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return value.strip() if value is not None and value.strip() else None

    def get(self, name: str, default: T, convert: Callable[[str], T], hint: str) -> T:
        text = self.raw(name)
        if text is None:
            return default
        try:
            return convert(text)
        except (ValueError, ValidationError):
            # The value is shown because none of the converted settings is a secret (a URL's
            # password aside, which is masked).
            self.problems.append(f"{name}={_shown(text)!r} is invalid: {hint}.")
            self.invalid.add(name)
            return default

    def number(self, name: str, default: float, bounds: Bounds) -> float:
        return self.get(name, default, _float_between(*bounds.range), bounds.hint)

    def whole(self, name: str, default: int, bounds: Bounds) -> int:
        return self.get(name, default, _int_between(int(bounds.low), int(bounds.high)), bounds.hint)


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError
        return value

    return convert


def _float_between(low: float, high: float) -> Callable[[str], float]:
    """A finite number within [low, high]: NaN and infinity are refused, like any typo."""

    def convert(text: str) -> float:
        value = float(text)
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError
        return value

    return convert


def _snowflake(text: str) -> int:
    """A Discord id: a positive integer that fits in 63 bits (as SQLite and Discord store it)."""
    return _int_between(1, SNOWFLAKE_MAX)(text)


def _guild_ids(text: str) -> frozenset[int]:
    """Comma-separated server ids (spaces and empty items between commas are ignored)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError
    return frozenset(_snowflake(item) for item in items)


def _http_url(text: str) -> str:
    parsed = urlparse(text)
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.netloc
        or parsed.query
        or parsed.fragment
    ):
        raise ValueError
    return text.rstrip("/")


def _log_level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise ValueError
    return text.upper()


def _log_format(text: str) -> str:
    if text.lower() not in LOG_FORMATS:
        raise ValueError
    return text.lower()


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _negative_prompt(text: str) -> str:
    # Invisible characters only would make every request without its own negative prompt
    # fail validation; the empty value means the built-in default.
    if len(text) > NEGATIVE_PROMPT_MAX or not has_visible_text(text):
        raise ValueError
    return text


def _default_limit(text: str) -> LimitSpec:
    spec = parse_limit_spec(text)
    if spec.count > MAX_COUNT:
        raise ValueError
    return spec


def _shards(r: _Reader) -> ShardPlan | None:
    """SHARD_COUNT alone runs every shard here; SHARD_IDS picks this process's share of them."""
    count = r.get("SHARD_COUNT", None, _int_between(1, MAX_SHARD_COUNT), SHARD_COUNT.hint)
    ids = r.raw("SHARD_IDS")
    if ids is None:
        return ShardPlan.every_shard(count) if count is not None else None
    if count is None:
        if "SHARD_COUNT" not in r.invalid:
            r.problems.append(
                "SHARD_IDS needs SHARD_COUNT: the number of shards all processes share."
            )
        return None
    try:
        return ShardPlan(count, parse_shard_ids(ids, count))
    except ValueError as error:
        r.problems.append(f"SHARD_IDS={_shown(ids)!r} is invalid: {error}.")
        r.invalid.add("SHARD_IDS")
        return None


def _conflicts(settings: Settings, invalid: set[str]) -> list[str]:
    """Values that are fine alone but together would lose paid clips or shut the bot out."""
    problems: list[str] = []
    expected = settings.expected_clip_seconds
    if (
        not settings.simulate
        and settings.job_deadline_seconds < expected
        and not invalid & {"JOB_DEADLINE_MINUTES", "EXPECTED_CLIP_SECONDS"}
    ):
        problems.append(
            f"JOB_DEADLINE_MINUTES={settings.job_deadline_seconds / 60:g} is shorter than a "
            f"typical clip (EXPECTED_CLIP_SECONDS={expected:g}): most clips would be paid for "
            "and then abandoned. Raise it or leave it unset (15)."
        )
    ceiling = settings.max_daily_spend_usd
    if (
        ceiling is not None
        and 0 < ceiling < settings.clip_cost_usd
        and not invalid & {"MAX_DAILY_SPEND_USD", "CLIP_COST_USD"}
    ):
        problems.append(
            f"MAX_DAILY_SPEND_USD={ceiling:g} is less than one clip "
            f"(CLIP_COST_USD={settings.clip_cost_usd:g}), so no clip could ever be made. "
            "Use 0 to stop all spending on purpose."
        )
    plan = settings.shards
    if (
        plan is not None
        and len(plan.ids) < plan.count
        and settings.database_url is None
        and not invalid & {"SHARD_COUNT", "SHARD_IDS", "DATABASE_URL"}
    ):
        problems.append(
            f"SHARD_IDS runs {plan.describe()} but DATABASE_URL is a SQLite file, which one "
            "process uses alone: the other shards' servers would go unserved, and processes "
            "with files of their own would each count the limits and the daily ceiling. Use "
            "DATABASE_URL=postgresql://... for several processes, or leave SHARD_IDS unset."
        )
    allowed, development = settings.allowed_guilds, settings.discord_guild_id
    if allowed is not None and development is not None and development not in allowed:
        problems.append(
            f"DISCORD_GUILD_ID={development} is not in ALLOWED_GUILDS: the bot would leave the "
            "server it syncs its commands to. Add it to the list."
        )
    return problems


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    simulate: bool | None = None,
    need_discord: bool = True,
) -> Settings:
    """Build the settings from ``env`` (default ``os.environ``); SettingsError lists problems."""
    env = os.environ if env is None else env
    r = _Reader(env)
    simulate = (
        r.get("SIMULATE", False, _bool, "use true or false") if simulate is None else simulate
    )

    token = r.raw("DISCORD_TOKEN")
    if need_discord and token is None:
        r.problems.append(
            "DISCORD_TOKEN is missing: the bot's token from the Discord developer portal."
        )
    api_key = r.raw("SEGMIND_API_KEY")
    if api_key is None and not simulate:
        r.problems.append(
            "SEGMIND_API_KEY is missing: your key from segmind.com (or start with --simulate)."
        )

    no_url: tuple[Path | None, str | None] = (None, None)
    database_path, database_url = r.get(
        "DATABASE_URL", no_url, database_from_url, DATABASE_URL_HINT
    )
    settings = Settings(
        discord_token=token or "",
        segmind_api_key=api_key or "",
        segmind_base_url=r.get(
            "SEGMIND_BASE_URL",
            Settings.segmind_base_url,
            _http_url,
            "use an http(s) URL without ? or #",
        ),
        database_path=database_path or Settings.database_path,
        database_url=database_url,
        discord_guild_id=r.get("DISCORD_GUILD_ID", None, _snowflake, "use a server id"),
        max_concurrent_jobs=r.whole(
            "MAX_CONCURRENT_JOBS", Settings.max_concurrent_jobs, MAX_CONCURRENT_JOBS
        ),
        max_jobs_per_member=r.whole(
            "MAX_JOBS_PER_MEMBER", Settings.max_jobs_per_member, MAX_JOBS_PER_MEMBER
        ),
        default_limit=r.get(
            "DEFAULT_LIMIT",
            Settings.default_limit,
            _default_limit,
            f"use count/period, like 5/1d (a count of at most {MAX_COUNT})",
        ),
        log_level=r.get(
            "LOG_LEVEL", Settings.log_level, _log_level, "use " + ", ".join(LOG_LEVELS)
        ),
        default_negative_prompt=r.get(
            "DEFAULT_NEGATIVE_PROMPT",
            Settings.default_negative_prompt,
            _negative_prompt,
            f"use at most {NEGATIVE_PROMPT_MAX} characters with some visible text",
        ),
        job_deadline_seconds=60
        * r.number(
            "JOB_DEADLINE_MINUTES", Settings.job_deadline_seconds / 60, JOB_DEADLINE_MINUTES
        ),
        poll_interval_seconds=r.number(
            "POLL_INTERVAL_SECONDS", Settings.poll_interval_seconds, POLL_INTERVAL_SECONDS
        ),
        expected_clip_seconds=r.number(
            "EXPECTED_CLIP_SECONDS", Settings.expected_clip_seconds, EXPECTED_CLIP_SECONDS
        ),
        clip_cost_usd=r.number("CLIP_COST_USD", Settings.clip_cost_usd, CLIP_COST_USD),
        max_download_bytes=1024
        * 1024
        * r.whole("MAX_DOWNLOAD_MB", Settings.max_download_bytes // (1024 * 1024), MAX_DOWNLOAD_MB),
        credits_recheck_seconds=60
        * r.number(
            "CREDITS_RECHECK_MINUTES",
            Settings.credits_recheck_seconds / 60,
            CREDITS_RECHECK_MINUTES,
        ),
        job_lease_seconds=r.number(
            "JOB_LEASE_SECONDS", Settings.job_lease_seconds, JOB_LEASE_SECONDS
        ),
        simulate=simulate,
        simulator_queue_seconds=r.number(
            "SIMULATOR_QUEUE_SECONDS", Settings.simulator_queue_seconds, SIMULATOR_SECONDS
        ),
        simulator_processing_seconds=r.number(
            "SIMULATOR_PROCESSING_SECONDS", Settings.simulator_processing_seconds, SIMULATOR_SECONDS
        ),
        max_daily_spend_usd=r.get(
            "MAX_DAILY_SPEND_USD",
            None,
            _float_between(*MAX_DAILY_SPEND_USD.range),
            MAX_DAILY_SPEND_USD.hint,
        ),
        allowed_guilds=r.get(
            "ALLOWED_GUILDS",
            None,
            _guild_ids,
            "use server ids (positive whole numbers) separated by commas",
        ),
        metrics_port=r.get(
            "METRICS_PORT",
            None,
            _int_between(*METRICS_PORTS),
            "use a port from {} to {} (served on 127.0.0.1 only)".format(*METRICS_PORTS),
        ),
        log_format=r.get(
            "LOG_FORMAT", Settings.log_format, _log_format, "use " + " or ".join(LOG_FORMATS)
        ),
        shards=_shards(r),
    )
    r.problems += _conflicts(settings, r.invalid)
    if r.problems:
        raise SettingsError(r.problems)
    return settings


def configure_logging(level: str, log_format: str = "text") -> None:
    """Plain lines with timestamps, or JSON objects (LOG_FORMAT=json); one level for all.

    discord.py's own loggers follow the same level and format. Each line carries the job,
    server, channel, member and Segmind request ids where known (services/logcontext.py):
    JSON writes them as fields; text lines already name the ids they are about.
    """
    from services.logcontext import LogContextFilter
    from services.logformat import JsonFormatter
    from services.logsafety import quiet_payload_loggers

    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(LogContextFilter())
    logging.basicConfig(level=getattr(logging, level, logging.INFO), handlers=[handler])
    # discord.py's gateway and aiosqlite dump payloads at DEBUG (interaction tokens too).
    quiet_payload_loggers()
