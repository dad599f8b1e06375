"""Custom ids of the approval buttons and the Deny form, signed like job buttons.

``vappr:<action>:<request id>:<signature>``: a prefix of their own, so the job buttons'
``DynamicItem`` (``vjob:...``) never claims them; routed by the cog's ``on_interaction``,
so they work after a restart with no view kept in memory. The signature is the
database's (``cogs.video.custom_ids``) over the action and the request id: a button from
another database, or one with its id changed, never acts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cogs.video.custom_ids import CustomIds

APPROVE, DENY, CANCEL, DENY_FORM, SHOW = "approve", "deny", "cancel", "denyform", "show"
ACTIONS = (APPROVE, DENY, CANCEL, DENY_FORM, SHOW)
REASON_FIELD = "reason"

_ID = re.compile(
    r"vappr:(?P<action>[a-z]{1,12}):(?P<request>\d{1,20}):(?P<sig>[A-Za-z0-9_-]{1,40})"
)


def _signed_action(action: str) -> str:
    # Never the name of a job button's action, so no job signature verifies here.
    return f"approval-{action}"


def make(ids: CustomIds, action: str, request_id: int) -> str:
    signature = ids.make(_signed_action(action), request_id).rsplit(":", 1)[1]
    return f"vappr:{action}:{request_id}:{signature}"


@dataclass(frozen=True)
class Clicked:
    action: str
    request_id: int
    signed: bool  # this database signed exactly this action and request


def read(ids: CustomIds, custom_id: str) -> Clicked | None:
    """The approval action a custom id names; None when it is not an approval id at all."""
    match = _ID.fullmatch(custom_id)
    if match is None or match["action"] not in ACTIONS:
        return None
    request_id = int(match["request"])
    signed = ids.verify(_signed_action(match["action"]), request_id, match["sig"])
    return Clicked(match["action"], request_id, signed)
