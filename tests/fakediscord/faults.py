"""Fault injection: make the next N matching requests fail the way Discord fails.

A pattern is `"[METHOD ]path"`; in the path, `{name}` and `*` match one segment and `**` any rest,
so `"POST /channels/{channel_id}/messages"` (discord.py's own route spelling) and
`"POST /channels/*/messages"` both work, as does a concrete id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import errors
from .errors import DiscordError

_HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def compile_route_pattern(pattern: str) -> tuple[str | None, re.Pattern[str]]:
    """Split an optional method off the pattern and turn the path into an anchored regex."""
    method, _, rest = pattern.partition(" ")
    if rest and method.upper() in _HTTP_METHODS:
        path = rest.strip()
        chosen: str | None = method.upper()
    else:
        path, chosen = pattern.strip(), None
    parts = []
    for segment in path.strip("/").split("/"):
        if segment == "**":
            parts.append(".*")
        elif segment == "*" or re.fullmatch(r"\{[^}]*\}", segment):
            parts.append("[^/]+")
        else:
            parts.append(re.escape(segment))
    return chosen, re.compile("^/" + "/".join(parts) + "/?$")


@dataclass
class Fault:
    """A canned failure for requests matching `route`, served `times` times (None: forever)."""

    route: str
    error: DiscordError
    times: int | None = 1
    hits: int = 0
    # Discord's edge failing after its backend already did the work (a 502/504 on a slow
    # upload): the request takes effect, yet the client sees the error and may retry.
    after_apply: bool = False
    _method: str | None = field(init=False, repr=False, default=None)
    _regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._method, self._regex = compile_route_pattern(self.route)

    @property
    def exhausted(self) -> bool:
        """Whether this fault has been served as often as asked."""
        return self.times is not None and self.hits >= self.times

    def matches(self, method: str, path: str) -> bool:
        """Whether a request (path relative to /api/v10) falls under this fault."""
        if self.exhausted:
            return False
        if self._method is not None and self._method != method.upper():
            return False
        return bool(self._regex.match(path))

    # Constructors for the failures a bot must survive -------------------------------------

    @classmethod
    def rate_limited(
        cls,
        route: str,
        *,
        retry_after: float = 0.05,
        is_global: bool = False,
        times: int | None = 1,
    ) -> Fault:
        """429 with `retry_after` in the body and the X-RateLimit-* / Retry-After headers."""
        return cls(route, errors.rate_limited(retry_after, is_global=is_global), times)

    @classmethod
    def expired_token(cls, route: str = "/webhooks/**", *, times: int | None = 1) -> Fault:
        """401 50027 Invalid Webhook Token, as for an interaction token past 15 minutes."""
        return cls(route, errors.invalid_webhook_token(), times)

    @classmethod
    def unknown_interaction(
        cls, route: str = "POST /interactions/**", *, times: int | None = 1
    ) -> Fault:
        """404 10062, as for a callback after the 3 s window."""
        return cls(route, errors.unknown_interaction(), times)

    @classmethod
    def entity_too_large(cls, route: str, *, times: int | None = 1) -> Fault:
        """413 40005 Request entity too large."""
        return cls(route, errors.entity_too_large(), times)

    @classmethod
    def missing_permissions(cls, route: str, *, times: int | None = 1) -> Fault:
        """403 50013 Missing Permissions."""
        return cls(route, errors.missing_permissions(), times)

    @classmethod
    def server_error(
        cls, route: str, *, status: int = 500, times: int | None = 1, after_apply: bool = False
    ) -> Fault:
        """A 5xx; note discord.py retries 500/502/504 after 1 s, 3 s, ... (slow in tests).

        ``after_apply``: the request is carried out first, then answered with the 5xx.
        """
        error = DiscordError(status, 0, f"{status}: Internal Server Error")
        return cls(route, error, times, after_apply=after_apply)

    @classmethod
    def custom(
        cls, route: str, status: int, code: int, message: str, *, times: int | None = 1
    ) -> Fault:
        """Any status with Discord's `{code, message}` body."""
        return cls(route, DiscordError(status, code, message), times)


class FaultInjector:
    """The active faults, checked in the order they were added."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Arm a fault; returns it so a test can read `hits` later."""
        self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed fault matching this request, counted as served."""
        for fault in self._faults:
            if fault.matches(method, path):
                fault.hits += 1
                return fault
        return None
