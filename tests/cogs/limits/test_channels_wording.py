"""`/videolimit channels` wording, kept out of the command module so history can use it."""

from __future__ import annotations

import ast
from pathlib import Path

from cogs.limits.channels_wording import (
    channel_history_words,
    render_channel_change,
    render_channel_list,
)
from services.allowed_channels import ALLOW_ACTION, DISALLOW_ACTION, ChannelListChange
from services.models import AllowedChannel, AuditEntry

LIMITS = Path(__file__).resolve().parents[3] / "cogs" / "limits"
# The modules that declare commands; wording may not import them (a cycle waits there).
COMMAND_MODULES = {f"cogs.limits.{name}" for name in ("_cog", "approval", "blocklist", "channels")}


def test_wording_modules_do_not_import_the_command_modules() -> None:
    for path in LIMITS.glob("*wording.py"):
        imported = {
            node.module
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not imported & COMMAND_MODULES, path.name


def test_an_add_or_remove_says_where_video_works_now() -> None:
    assert render_channel_change(ChannelListChange(5, added=True, changed=True, listed=2)) == (
        "`/video` now works in <#5> and its threads and the 1 other listed channel, and nowhere "
        "else. Members elsewhere are told where it works."
    )
    last = render_channel_change(ChannelListChange(5, added=False, changed=True, listed=0))
    assert last == "<#5> was the last listed channel: `/video` works in every channel again."


def test_the_list_names_each_channel_and_who_added_it() -> None:
    (page,) = render_channel_list([AllowedChannel(1, 5, 7, 1_700_000_000.0)])

    assert "<#5> · added by <@7> <t:1700000000:R>" in (page.description or "")


def test_history_words_for_allow_list_changes_only() -> None:
    def entry(action: str, detail: str) -> AuditEntry:
        return AuditEntry(1, 1, 7, action, "channel:5", detail, 1e9)

    assert channel_history_words(entry(ALLOW_ACTION, "listed=1")) == "let `/video` work in <#5>"
    assert channel_history_words(entry(DISALLOW_ACTION, "listed=0; deleted")) == (
        "stopped `/video` working in <#5> (the channel was deleted): `/video` works everywhere "
        "again"
    )
    assert channel_history_words(entry("set_user", "1/d -> 2/d")) is None
