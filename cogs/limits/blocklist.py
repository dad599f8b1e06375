"""`/videolimit blocklist add | remove | show`: words and /regex/ kept out of prompts.

Mixed into ``LimitsCog`` (the `/videolimit` group), so these subcommands share its
moderator check and its private defer.
"""

from __future__ import annotations


class BlocklistCommands:
    """Mixed into LimitsCog."""
