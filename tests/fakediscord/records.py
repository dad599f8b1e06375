"""What the fake remembers: every call, every message as members see it, every interaction.

Tests read these to assert outcomes ("the clip was posted with these exact bytes", "nobody was
pinged", "acknowledged in 0.2 s"), so each record is a plain dataclass with readable fields.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_IS_COMPONENTS_V2 = 1 << 15

ACK_WINDOW_SECONDS = 3.0
TOKEN_LIFETIME_SECONDS = 15 * 60.0


@dataclass(frozen=True)
class UploadedFile:
    """One multipart file part exactly as received."""

    field: str
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        """Length in bytes."""
        return len(self.data)


@dataclass
class RecordedCall:
    """One REST request and the fake's answer."""

    seq: int
    method: str
    path: str
    route: str
    json: Any
    files: list[UploadedFile]
    at: float
    status: int = 0
    response: Any = None

    @property
    def error_code(self) -> int | None:
        """Discord's JSON error code, when the answer was an error."""
        if isinstance(self.response, dict) and self.status >= 400:
            return self.response.get("code")
        return None

    @property
    def ok(self) -> bool:
        """Whether the answer was 2xx."""
        return 200 <= self.status < 300

    def __str__(self) -> str:
        return f"#{self.seq} {self.method} {self.path} -> {self.status}"


@dataclass
class StoredAttachment:
    """An uploaded file as Discord stores it, with the exact bytes."""

    id: int
    filename: str
    size: int
    content_type: str
    data: bytes
    url: str
    description: str | None = None


@dataclass(frozen=True)
class Mentions:
    """Mentions Discord parsed and allowed, and whom it actually notified."""

    users: frozenset[int] = frozenset()
    roles: frozenset[int] = frozenset()
    everyone: bool = False
    pinged_user_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class MessageRevision:
    """A message's text at one moment (creation or an edit), for cadence checks."""

    at: float
    content: str
    embeds: list[dict[str, Any]]


@dataclass
class StoredMessage:
    """A message as the channel shows it; ephemeral ones are visible only to `visible_to`."""

    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str
    created_at: float
    created_wall: float
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[StoredAttachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    allowed_mentions: dict[str, Any] | None = None
    mentions: Mentions = field(default_factory=Mentions)
    # Who got a notification when the message appeared (edits never notify).
    pinged_user_ids: frozenset[int] = frozenset()
    interaction_id: int | None = None
    webhook_id: int | None = None
    visible_to: frozenset[int] | None = None
    message_reference: dict[str, Any] | None = None
    nonce: str | None = None  # as sent; with enforce_nonce, a repeat returns this message
    edited_wall: float | None = None
    deleted: bool = False
    revisions: list[MessageRevision] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        """Only the interaction's user sees it."""
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """Still "Bot is thinking..." after a deferred response."""
        return bool(self.flags & FLAG_LOADING)

    @property
    def edit_count(self) -> int:
        """How many times the message changed after it appeared."""
        return max(0, len(self.revisions) - 1)

    def visible_for(self, user_id: int | None) -> bool:
        """Whether this user (None: any member) sees the message in the channel."""
        if self.deleted:
            return False
        return self.visible_to is None or (user_id is not None and user_id in self.visible_to)

    def custom_ids(self) -> list[str]:
        """Every component custom_id on the message, in order."""
        found: list[str] = []
        _collect_custom_ids(self.components, found)
        return found

    def find_component(self, custom_id: str) -> dict[str, Any] | None:
        """The component with this custom_id, if any."""
        return _find_component(self.components, custom_id)


def _collect_custom_ids(components: list[dict[str, Any]], found: list[str]) -> None:
    for component in components:
        if "custom_id" in component:
            found.append(component["custom_id"])
        _collect_custom_ids(component.get("components", []), found)


def _find_component(components: list[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    for component in components:
        if component.get("custom_id") == custom_id:
            return component
        hit = _find_component(component.get("components", []), custom_id)
        if hit is not None:
            return hit
    return None


@dataclass
class InteractionRecord:
    """One interaction the fake sent, and how (and when) the bot answered it."""

    id: int
    token: str
    type: int
    guild_id: int | None
    channel_id: int
    user_id: int
    created_at: float
    payload: dict[str, Any]
    attachment_size_limit: int
    source_message_id: int | None = None
    response_type: int | None = None
    acknowledged_at: float | None = None
    late_callbacks: int = 0
    original_message_id: int | None = None
    loading_resolved: bool = True
    followup_ids: list[int] = field(default_factory=list)
    modal: dict[str, Any] | None = None
    autocomplete_choices: list[dict[str, Any]] | None = None

    @property
    def ack_deadline(self) -> float:
        """When Discord stops accepting the initial response."""
        return self.created_at + ACK_WINDOW_SECONDS

    @property
    def token_expires_at(self) -> float:
        """When the interaction token stops working for followups and edits."""
        return self.created_at + TOKEN_LIFETIME_SECONDS

    @property
    def acknowledged(self) -> bool:
        """Whether an initial response was accepted."""
        return self.response_type is not None

    @property
    def ack_latency(self) -> float | None:
        """Seconds from creation to the accepted initial response."""
        if self.acknowledged_at is None:
            return None
        return self.acknowledged_at - self.created_at

    def missed_acknowledgement(self, now: float) -> bool:
        """Whether the member saw "The application did not respond" (no answer in the window)."""
        return not self.acknowledged and (now > self.ack_deadline or self.late_callbacks > 0)


class AcknowledgementMissed(AssertionError):
    """The bot did not acknowledge an interaction within Discord's 3 seconds."""


class FakeTimeout(AssertionError):
    """A `wait_for` ran out of time; the message lists the latest calls to help debugging."""


class ChangeNotifier:
    """Wakes waiters whenever the fake's state changes, so tests never sleep for a fixed time."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Something changed: wake every waiter, and arm a fresh event for the next change."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(
        self, predicate: Callable[[], T], timeout: float, describe: Callable[[], str]
    ) -> T:
        """Re-check `predicate` after every change until it returns something truthy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # Take the event before checking, so a change between check and wait is not lost.
            event = self._event
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise FakeTimeout(f"condition not met within {timeout}s\n{describe()}")
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                continue
