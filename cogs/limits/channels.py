"""`/videolimit channels add | remove | show`: where `/video` works.

Mixed into ``LimitsCog`` (the `/videolimit` group), so these subcommands share its
moderator check and its private defer.
"""

from __future__ import annotations


class ChannelCommands:
    """Mixed into LimitsCog."""
