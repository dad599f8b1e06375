"""The messenger's errors: what a member may read, and what stays in the operator's log."""

from __future__ import annotations

from cogs.video.messenger import NoRoute
from services.errors import ClipUndeliverable


def test_no_route_is_permanent_and_tells_the_member_nothing_internal() -> None:
    error = NoRoute(detail="no channel, token or DM reaches user for job 7: 50007")
    assert isinstance(error, ClipUndeliverable)  # the runner stops posting, at once
    assert error.user_message == ClipUndeliverable.user_message
    assert "50007" not in error.user_message and "job 7" in error.detail
