"""What the approval cards and history say, read without Discord."""

from __future__ import annotations

from dataclasses import replace

from cogs.approval import wording
from services.approval_models import ApprovalState, HeldRequest
from services.models import VideoRequest


def held(**changes: object) -> HeldRequest:
    request = HeldRequest(
        id=7,
        guild_id=1,
        channel_id=2,
        user_id=3,
        role_ids=(),
        request=VideoRequest(prompt="a fox", seed=42),
        state=ApprovalState.PENDING,
        created_at=1_000.0,
        expires_at=4_600.0,
    )
    return replace(request, **changes)  # type: ignore[arg-type]


def test_outcome_line_keeps_the_relative_timestamp_discord_renders():
    answered = held(state=ApprovalState.DENIED, decided_by=5, decided_at=2_000.0)

    line = wording.outcome_line(answered)

    assert line.startswith("Denied by <@5> <t:2000:R>")
    assert ":r>" not in line
