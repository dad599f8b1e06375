"""What the approval cards and history say, read without Discord."""

from __future__ import annotations

from dataclasses import replace

from cogs.approval import wording
from cogs.limits.wording import render_history
from services.approval_models import ApprovalChange, ApprovalRule, ApprovalState, HeldRequest
from services.approvals import audit_detail
from services.models import AuditEntry, VideoRequest


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


def entry(detail: str, action: str = "set_approval") -> AuditEntry:
    return AuditEntry(
        id=1, guild_id=1, actor_id=9, action=action, target="server", detail=detail, at=2_000.0
    )


def stored(before: ApprovalRule | None, after: ApprovalRule | None) -> str:
    return audit_detail(ApprovalChange(before, after))


def rule(role_id: int | None, expiry_seconds: int) -> ApprovalRule:
    return ApprovalRule(1, role_id, expiry_seconds, set_by=9, set_at=1_000.0)


def test_history_says_which_role_skips_approval_and_what_it_was():
    words = wording.approval_history_words(entry(stored(None, rule(5, 3600))))

    assert words == "required approval for members without <@&5>, waiting up to 1h (it was off)"


def test_history_says_approval_was_turned_off_and_for_whom_it_was_required():
    words = wording.approval_history_words(entry(stored(rule(None, 7200), None)))

    assert (
        words == "turned approval off (it was required approval for every member, waiting up to 2h)"
    )


def test_history_line_reads_in_words_with_no_internal_names():
    [page] = render_history([entry(stored(None, rule(5, 3600)))])

    text = page.description or ""
    assert "required approval for members without <@&5>, waiting up to 1h (it was off)" in text
    assert "set approval server" not in text


def test_history_words_leave_other_entries_alone():
    assert wording.approval_history_words(entry("5 auto; was off", "set_gallery")) is None
