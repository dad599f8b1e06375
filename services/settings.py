"""Settings: read once at start from the environment (and `.env`), typed and frozen.

Every problem is collected and reported together, so an operator fixes a `.env` in
one pass; values of secrets are never echoed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from services.errors import ValidationError
from services.models import DEFAULT_NEGATIVE_PROMPT, NEGATIVE_PROMPT_MAX
from services.periods import LimitSpec, parse_limit_spec

T = TypeVar("T")
DEFAULT_LIMIT = LimitSpec(5, 86400)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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
    database_path: Path = Path("data/bot.db")
    discord_guild_id: int | None = None
    max_concurrent_jobs: int = 3
    max_jobs_per_member: int = 1
    default_limit: LimitSpec = DEFAULT_LIMIT
    log_level: str = "INFO"
    default_negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    job_deadline_seconds: float = 15 * 60
    poll_interval_seconds: float = 3.0
    expected_clip_seconds: float = 240.0
    clip_cost_usd: float = 0.36
    max_download_bytes: int = 200 * 1024 * 1024
    credits_recheck_seconds: float = 600.0
    simulate: bool = False
    simulator_queue_seconds: float = 3.0
    simulator_processing_seconds: float = 20.0

    @property
    def clips_dir(self) -> Path:
        """Downloaded clips wait here until delivered (survives restarts)."""
        return self.database_path.parent / "clips"


def database_path_from_url(url: str) -> Path:
    """`sqlite:///relative/path` or `sqlite:////absolute/path`, as SQLAlchemy writes them.

    Only a file path: an in-memory database or URL options would silently lose jobs, and a
    path ending in / or naming a directory cannot be the database file.
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError("use sqlite:///relative/path or sqlite:////absolute/path")
    text = url[len(prefix) :]
    if text.endswith("/") or "?" in text or text == ":memory:" or Path(text).is_dir():
        raise ValueError("the path must name a database file")
    return Path(text)


_USERINFO = re.compile(r"(//)[^/@\s]*@")


def _shown(text: str) -> str:
    """A value as echoed in a problem line, without a password a URL may carry."""
    return _USERINFO.sub(r"\1***@", text)


class _Reader:
    """Reads typed values from an environment, collecting problems instead of raising."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

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
            return default


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError
        return value

    return convert


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError
    return value


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


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _negative_prompt(text: str) -> str:
    if len(text) > NEGATIVE_PROMPT_MAX:
        raise ValueError
    return text


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

    settings = Settings(
        discord_token=token or "",
        segmind_api_key=api_key or "",
        segmind_base_url=r.get(
            "SEGMIND_BASE_URL",
            Settings.segmind_base_url,
            _http_url,
            "use an http(s) URL without ? or #",
        ),
        database_path=r.get(
            "DATABASE_URL",
            Settings.database_path,
            database_path_from_url,
            "use sqlite:///relative/path or sqlite:////absolute/path",
        ),
        discord_guild_id=r.get("DISCORD_GUILD_ID", None, _int_at_least(1), "use a server id"),
        max_concurrent_jobs=r.get(
            "MAX_CONCURRENT_JOBS",
            Settings.max_concurrent_jobs,
            _int_at_least(1),
            "use a whole number of 1 or more",
        ),
        max_jobs_per_member=r.get(
            "MAX_JOBS_PER_MEMBER",
            Settings.max_jobs_per_member,
            _int_at_least(1),
            "use a whole number of 1 or more",
        ),
        default_limit=r.get(
            "DEFAULT_LIMIT", Settings.default_limit, parse_limit_spec, "use count/period, like 5/1d"
        ),
        log_level=r.get(
            "LOG_LEVEL", Settings.log_level, _log_level, "use " + ", ".join(LOG_LEVELS)
        ),
        default_negative_prompt=r.get(
            "DEFAULT_NEGATIVE_PROMPT",
            Settings.default_negative_prompt,
            _negative_prompt,
            f"use at most {NEGATIVE_PROMPT_MAX} characters",
        ),
        job_deadline_seconds=60
        * r.get("JOB_DEADLINE_MINUTES", 15.0, _positive_float, "use a number of minutes above 0"),
        poll_interval_seconds=r.get(
            "POLL_INTERVAL_SECONDS",
            Settings.poll_interval_seconds,
            _positive_float,
            "use seconds above 0",
        ),
        expected_clip_seconds=r.get(
            "EXPECTED_CLIP_SECONDS",
            Settings.expected_clip_seconds,
            _positive_float,
            "use seconds above 0",
        ),
        clip_cost_usd=r.get(
            "CLIP_COST_USD", Settings.clip_cost_usd, _non_negative_float, "use a price like 0.36"
        ),
        max_download_bytes=1024
        * 1024
        * r.get("MAX_DOWNLOAD_MB", 200, _int_at_least(1), "use a whole number of megabytes"),
        credits_recheck_seconds=60
        * r.get(
            "CREDITS_RECHECK_MINUTES", 10.0, _positive_float, "use a number of minutes above 0"
        ),
        simulate=simulate,
        simulator_queue_seconds=r.get(
            "SIMULATOR_QUEUE_SECONDS",
            Settings.simulator_queue_seconds,
            _non_negative_float,
            "use seconds",
        ),
        simulator_processing_seconds=r.get(
            "SIMULATOR_PROCESSING_SECONDS",
            Settings.simulator_processing_seconds,
            _non_negative_float,
            "use seconds",
        ),
    )
    if r.problems:
        raise SettingsError(r.problems)
    return settings


def configure_logging(level: str) -> None:
    """One plain format with timestamps; discord.py's own loggers follow the same level."""
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # discord.py logs every gateway event at DEBUG, including payloads; keep it calmer.
    logging.getLogger("discord.gateway").setLevel(max(logging.INFO, logging.getLogger().level))
