"""`/videolimit` names all it does: limits and spending, the blocklist, channels, approval."""

from __future__ import annotations

from cogs.limits._cog import LimitsCog
from cogs.limits.wording import render_history
from services.allowed_channels import ALLOW_ACTION
from services.models import AuditEntry

DISCORD_DESCRIPTION_MAX = 100


def test_the_group_description_covers_its_subcommand_groups() -> None:
    description = LimitsCog.__cog_group_description__

    assert len(description) <= DISCORD_DESCRIPTION_MAX
    for part in ("limits", "spending", "blocked words", "where /video works", "approval"):
        assert part in description


def test_the_history_command_and_title_are_not_only_about_limits() -> None:
    history = LimitsCog.history
    assert len(history.description) <= DISCORD_DESCRIPTION_MAX
    assert "blocklist, channels, approval" in history.description

    (page,) = render_history([AuditEntry(1, 1, 7, ALLOW_ACTION, "channel:5", "listed=1", 1e9)])

    assert page.title == "Changes moderators made on this server"
    assert "let `/video` work in <#5>" in (page.description or "")
