"""Approval before spending, as data: a server's rule and a request held for a moderator.

Kept apart from ``services.models`` so that the storage layer and the approvals service
share them without an import cycle through ``services.approvals``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from services.models import JobOrigin, VideoRequest

DEFAULT_EXPIRY_SECONDS = 3600  # an hour: long enough for a moderator to look, short for a member
MIN_EXPIRY_SECONDS = 5 * 60
MAX_EXPIRY_SECONDS = 7 * 86400


class ApprovalState(str, enum.Enum):
    PENDING = "pending"  # waiting for a moderator; nothing stored as a job, nothing counted
    APPROVED = "approved"  # a moderator approved it and admission made ``job_id`` from it
    REFUSED = "refused"  # approved, but admission refused it then (limit, budget, credits)
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # withdrawn by the member, or a moderator, while it waited
    FAILED = "failed"  # approved, but the bot could not start it (its error, not the limits)


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    """Approval is required on a server for members without ``role_id`` (None: everyone)."""

    guild_id: int
    role_id: int | None
    expiry_seconds: int
    set_by: int
    set_at: float

    def exempts(self, role_ids: tuple[int, ...]) -> bool:
        return self.role_id is not None and self.role_id in role_ids


@dataclass(frozen=True, slots=True)
class ApprovalChange:
    """What `/videolimit approval` did: the rule before and after (None: approval off)."""

    before: ApprovalRule | None
    after: ApprovalRule | None

    @property
    def changed(self) -> bool:
        def key(rule: ApprovalRule | None) -> tuple[int | None, int] | None:
            return None if rule is None else (rule.role_id, rule.expiry_seconds)

        return key(self.before) != key(self.after)


@dataclass(frozen=True, slots=True)
class HeldRequest:
    """One request held for approval, as stored: who asked, what, where, and how it ended."""

    id: int
    guild_id: int
    channel_id: int
    user_id: int
    role_ids: tuple[int, ...]
    request: VideoRequest
    state: ApprovalState
    created_at: float
    expires_at: float
    private: bool = False
    parent_job_id: int | None = None
    fingerprint: str | None = None
    interaction_token: str | None = field(default=None, repr=False)  # a secret for 15 min
    interaction_created_at: float | None = None
    application_id: int | None = None
    upload_limit: int | None = None
    message_id: int | None = None  # the member's "waiting for approval" message
    alert_channel_id: int | None = None  # where the moderators' Approve/Deny message is
    alert_message_id: int | None = None
    decided_by: int | None = None
    decided_at: float | None = None
    reason: str | None = None
    job_id: int | None = None
    member_told: bool = False  # once ended: the member knows (or cannot be told)
    card_updated: bool = False  # once ended: the moderators' card says it

    def origin(self) -> JobOrigin:
        """The request's origin as admission takes it: the member's interaction, still."""
        return JobOrigin(
            guild_id=self.guild_id,
            channel_id=self.channel_id,
            user_id=self.user_id,
            role_ids=self.role_ids,
            private=self.private,
            parent_job_id=self.parent_job_id,
            interaction_token=self.interaction_token,
            interaction_created_at=self.interaction_created_at,
            application_id=self.application_id,
            upload_limit=self.upload_limit,
            fingerprint=self.fingerprint,
        )
