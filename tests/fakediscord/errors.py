"""Discord's error responses: status, JSON code and message exactly as the API sends them.

Handlers raise `DiscordError`; the server turns it into the response. Constructors are named for
the situation so handlers read like Discord's documentation of each route.
"""

from __future__ import annotations

import time
from typing import Any


class DiscordError(Exception):
    """An API error: HTTP status plus Discord's JSON `{code, message[, errors]}` body."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = dict(headers or {})
        self._body = body

    def body(self) -> dict[str, Any]:
        """The JSON body Discord would send."""
        if self._body is not None:
            return dict(self._body)
        payload: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            payload["errors"] = self.errors
        return payload


def field_error(code: str, message: str) -> dict[str, Any]:
    """One leaf of Discord's nested `errors` tree."""
    return {"_errors": [{"code": code, "message": message}]}


def nest(path: tuple[str | int, ...], leaf: dict[str, Any]) -> dict[str, Any]:
    """Wrap a leaf error in Discord's path-shaped dicts (`{"0": {"name": leaf}}`)."""
    for key in reversed(path):
        leaf = {str(key): leaf}
    return leaf


def merge_errors(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two error trees so several problems are reported together, as Discord does."""
    for key, value in extra.items():
        if key == "_errors":
            into.setdefault("_errors", []).extend(value)
        elif key in into and isinstance(into[key], dict):
            merge_errors(into[key], value)
        else:
            into[key] = value
    return into


def invalid_form_body(errors: dict[str, Any]) -> DiscordError:
    """400 50035: the request body failed validation; `errors` says where."""
    return DiscordError(400, 50035, "Invalid Form Body", errors=errors)


def form_error(path: tuple[str | int, ...], code: str, message: str) -> DiscordError:
    """400 50035 with a single field error at `path`."""
    return invalid_form_body(nest(path, field_error(code, message)))


def unauthorized() -> DiscordError:
    """401 for a missing or wrong bot token."""
    return DiscordError(401, 0, "401: Unauthorized")


def not_found_route() -> DiscordError:
    """404 for a route Discord does not have."""
    return DiscordError(404, 0, "404: Not Found")


def method_not_allowed() -> DiscordError:
    """405 for a known route with the wrong method."""
    return DiscordError(405, 0, "405: Method Not Allowed")


def unknown_channel() -> DiscordError:
    """404 10003."""
    return DiscordError(404, 10003, "Unknown Channel")


def unknown_guild() -> DiscordError:
    return DiscordError(404, 10004, "Unknown Guild")


def unknown_member() -> DiscordError:
    """404 10007: the user is not (or no longer) a member of the server."""
    return DiscordError(404, 10007, "Unknown Member")


def unknown_message() -> DiscordError:
    """404 10008: the message never existed, was deleted, or is not reachable this way."""
    return DiscordError(404, 10008, "Unknown Message")


def unknown_user() -> DiscordError:
    """404 10013."""
    return DiscordError(404, 10013, "Unknown User")


def unknown_webhook() -> DiscordError:
    """404 10015: e.g. a followup sent before the interaction was acknowledged."""
    return DiscordError(404, 10015, "Unknown Webhook")


def unknown_interaction() -> DiscordError:
    """404 10062: unknown, or not acknowledged within 3 seconds."""
    return DiscordError(404, 10062, "Unknown interaction")


def unknown_application() -> DiscordError:
    """404 10002."""
    return DiscordError(404, 10002, "Unknown Application")


def already_acknowledged() -> DiscordError:
    """400 40060: a second initial response to the same interaction."""
    return DiscordError(400, 40060, "Interaction has already been acknowledged.")


def entity_too_large() -> DiscordError:
    """413 40005: the files of one message exceed the upload limit."""
    return DiscordError(413, 40005, "Request entity too large")


def missing_access() -> DiscordError:
    """403 50001: the bot cannot see the channel (or guild)."""
    return DiscordError(403, 50001, "Missing Access")


def missing_permissions() -> DiscordError:
    """403 50013: the bot sees the channel but lacks a permission the action needs."""
    return DiscordError(403, 50013, "Missing Permissions")


def cannot_edit_others_message() -> DiscordError:
    """403 50005."""
    return DiscordError(403, 50005, "Cannot edit a message authored by another user")


def empty_message() -> DiscordError:
    """400 50006: no content, embeds, files, components, stickers or poll."""
    return DiscordError(400, 50006, "Cannot send an empty message")


def cannot_dm_user() -> DiscordError:
    """403 50007: the user has DMs from server members off, or shares no server with the bot."""
    return DiscordError(403, 50007, "Cannot send messages to this user")


def invalid_webhook_token() -> DiscordError:
    """401 50027: unknown token, or an interaction token older than 15 minutes."""
    return DiscordError(401, 50027, "Invalid Webhook Token")


def rate_limited(
    retry_after: float, *, is_global: bool = False, scope: str = "user"
) -> DiscordError:
    """429 with the body and headers discord.py reads (it also needs `Via`, added by the server)."""
    headers = {
        "Retry-After": str(max(1, int(-(-retry_after // 1)))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Scope": "global" if is_global else scope,
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": is_global,
    }
    return DiscordError(429, 0, "You are being rate limited.", headers=headers, body=body)
