"""Who a message pings, by Discord's allowed-mentions rules.

Rules implemented (Discord's "Allowed Mentions Object" docs and observed behaviour):
- Without `allowed_mentions`, every mention parsed from `content` is allowed (replies ping too).
- With it, a kind is allowed only via `parse` ("users", "roles", "everyone") or an explicit id in
  `users` / `roles`; `parse` and the id list of the same kind together is a 400.
- `@everyone`/`@here` ping only with MENTION_EVERYONE in the channel; a role pings only if it is
  mentionable or the author has MENTION_EVERYONE.
- Only members who can see the channel are notified; the author never pings itself.
- Edits never notify; ephemeral messages can only notify the user who sees them.
- Mentions in embeds never ping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import field_error, invalid_form_body, merge_errors, nest
from .permissions import Perm, channel_permissions, has
from .records import Mentions
from .world import FakeChannel, FakeGuild

_USER_MENTION = re.compile(r"<@!?(\d{1,20})>")
_ROLE_MENTION = re.compile(r"<@&(\d{1,20})>")
_PARSE_TYPES = {"users", "roles", "everyone"}


@dataclass(frozen=True)
class ParsedMentions:
    """Mention syntax found in content, before any rule is applied."""

    users: tuple[int, ...]
    roles: tuple[int, ...]
    everyone: bool


def parse_content(content: str) -> ParsedMentions:
    """Find `<@id>`, `<@!id>`, `<@&id>`, `@everyone` and `@here` in message content."""
    users = tuple(dict.fromkeys(int(m) for m in _USER_MENTION.findall(content)))
    roles = tuple(dict.fromkeys(int(m) for m in _ROLE_MENTION.findall(content)))
    everyone = "@everyone" in content or "@here" in content
    return ParsedMentions(users=users, roles=roles, everyone=everyone)


def validate_allowed_mentions(value: Any) -> None:
    """Reject malformed allowed_mentions with 400 50035, as Discord does."""
    if value is None:
        return
    problems: dict[str, Any] = {}
    if not isinstance(value, dict):
        raise invalid_form_body(
            {
                "allowed_mentions": field_error(
                    "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"
                )
            }
        )
    parse = value.get("parse", [])
    for index, kind in enumerate(parse or []):
        if kind not in _PARSE_TYPES:
            merge_errors(
                problems,
                nest(
                    ("allowed_mentions", "parse", index),
                    field_error(
                        "BASE_TYPE_CHOICES", f"Value must be one of {sorted(_PARSE_TYPES)}."
                    ),
                ),
            )
    for kind in ("users", "roles"):
        ids = value.get(kind) or []
        if ids and kind in (parse or []):
            merge_errors(
                problems,
                nest(
                    ("allowed_mentions",),
                    field_error(
                        "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                        f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                    ),
                ),
            )
        if len(ids) > 100:
            merge_errors(
                problems,
                nest(
                    ("allowed_mentions", kind),
                    field_error("BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length."),
                ),
            )
    if problems:
        raise invalid_form_body(problems)


def resolve(
    content: str,
    allowed: dict[str, Any] | None,
    *,
    guild: FakeGuild | None,
    channel: FakeChannel | None,
    author_id: int,
    dm_recipient_id: int | None = None,
    replied_author_id: int | None = None,
    visible_to: frozenset[int] | None = None,
    notify: bool = True,
) -> Mentions:
    """Apply the rules to content: which mentions stand, and who is notified."""
    parsed = parse_content(content or "")
    author_perms = _author_permissions(guild, channel, author_id)
    users = {u for u in parsed.users if _allowed(allowed, "users", u)}
    roles = {
        r
        for r in parsed.roles
        if _allowed(allowed, "roles", r) and _role_pingable(guild, r, author_perms)
    }
    everyone = (
        parsed.everyone
        and _allowed(allowed, "everyone", None)
        and has(author_perms, Perm.MENTION_EVERYONE)
    )
    replied = _replied_user_allowed(allowed) and replied_author_id is not None
    if replied and replied_author_id is not None:
        users.add(replied_author_id)
    if guild is not None:
        roles &= {r.id for r in guild.roles}
    pinged = _notified(guild, channel, users, roles, everyone, dm_recipient_id)
    pinged.discard(author_id)
    if visible_to is not None:
        pinged &= set(visible_to)
    return Mentions(
        users=frozenset(users),
        roles=frozenset(roles),
        everyone=everyone,
        pinged_user_ids=frozenset(pinged) if notify else frozenset(),
    )


def _allowed(allowed: dict[str, Any] | None, kind: str, target: int | None) -> bool:
    """Whether allowed_mentions lets this kind (and id) through; absent means everything."""
    if allowed is None:
        return True
    if kind in (allowed.get("parse") or []):
        return True
    if target is None:
        return False
    return str(target) in {str(x) for x in allowed.get(kind) or []}


def _replied_user_allowed(allowed: dict[str, Any] | None) -> bool:
    """Replies ping their author by default, but not once allowed_mentions is given."""
    if allowed is None:
        return True
    return bool(allowed.get("replied_user", False))


def _author_permissions(
    guild: FakeGuild | None, channel: FakeChannel | None, author_id: int
) -> int:
    if guild is None or channel is None:
        # In DMs @everyone means nothing and there are no roles.
        return 0
    return channel_permissions(guild, channel, author_id)


def _role_pingable(guild: FakeGuild | None, role_id: int, author_perms: int) -> bool:
    if guild is None:
        return False
    role = guild.role(role_id)
    if role is None or role.id == guild.id:
        return False
    return role.mentionable or has(author_perms, Perm.MENTION_EVERYONE)


def _notified(
    guild: FakeGuild | None,
    channel: FakeChannel | None,
    users: set[int],
    roles: set[int],
    everyone: bool,
    dm_recipient_id: int | None,
) -> set[int]:
    """Expand users, roles and @everyone into the members who can see the channel."""
    if guild is None or channel is None:
        return {u for u in users if u == dm_recipient_id}
    viewers = {
        m.user.id
        for m in guild.members
        if has(channel_permissions(guild, channel, m.user.id), Perm.VIEW_CHANNEL)
    }
    pinged = {u for u in users if u in viewers}
    for member in guild.members:
        if member.user.id not in viewers:
            continue
        if everyone or roles.intersection(member.roles):
            pinged.add(member.user.id)
    return pinged
