"""`/videolimit approval`: requests wait for a moderator's Approve or Deny.

Mixed into ``LimitsCog`` (the `/videolimit` group), so these subcommands share its
moderator check and its private defer.
"""

from __future__ import annotations


class ApprovalCommands:
    """Mixed into LimitsCog."""
