"""Rolling-window periods (`30m`, `6h`, `1d`, `1w`) and limit specs (`5/1d`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.errors import ValidationError

UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_PERIOD_SECONDS = 52 * UNIT_SECONDS["w"]
ACCEPTED_FORMS = "a number followed by m, h, d or w, like `30m`, `6h`, `1d` or `1w` (at most 52w)"
_PERIOD = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$", re.IGNORECASE)
ECHO_MAX = 20  # characters of a bad value repeated back: enough to spot the typo


def echo(text: str) -> str:
    """A bad value as shown back inside backticks: cut short, so the answer fits Discord.

    A moderator can paste thousands of characters into an option; repeating them all made
    the reply too long to send, which left them on "thinking…" for ever.
    """
    text = (text or "").replace("`", "'")
    return text if len(text) <= ECHO_MAX else text[: ECHO_MAX - 1] + "…"


def parse_period(text: str) -> int:
    """Seconds in a period such as `6h`; a clear error naming the accepted forms otherwise."""
    match = _PERIOD.match(text or "")
    if not match:
        raise ValidationError(f"`{echo(text)}` is not a period. Use {ACCEPTED_FORMS}.")
    seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2).lower()]
    if seconds <= 0 or seconds > MAX_PERIOD_SECONDS:
        raise ValidationError(f"`{echo(text)}` is out of range. Use {ACCEPTED_FORMS}.")
    return seconds


def format_period(seconds: int) -> str:
    """The shortest exact form of a period, as a moderator would type it (`90m`, `1d`)."""
    for unit in ("w", "d", "h", "m"):
        if seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """`count` clips per rolling `period_seconds`; count 0 blocks."""

    count: int
    period_seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{format_period(self.period_seconds)}"


def parse_limit_spec(text: str) -> LimitSpec:
    """Parse `5/1d` (count/period), as used by the operator's DEFAULT_LIMIT."""
    count_text, sep, period_text = (text or "").partition("/")
    if not sep or not count_text.strip().isdigit():
        raise ValidationError(f"`{echo(text)}` is not a limit. Use count/period, like `5/1d`.")
    return LimitSpec(int(count_text), parse_period(period_text))
