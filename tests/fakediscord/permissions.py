"""Discord permission bits and the documented algorithm that turns roles and overwrites into them.

The fake computes permissions itself (it never asks discord.py) so that a bot that trusts the
wrong number is caught: `member.permissions` and `app_permissions` in interactions, and the
checks on channel routes (Missing Access 50001, Missing Permissions 50013) all come from here.
"""

from __future__ import annotations

from enum import IntFlag
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .world import FakeChannel, FakeGuild


class Perm(IntFlag):
    """Permission bits from Discord's documentation (only the ones a text bot meets, plus a few)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    MANAGE_NICKNAMES = 1 << 27
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38
    MODERATE_MEMBERS = 1 << 40
    SEND_POLLS = 1 << 49
    USE_EXTERNAL_APPS = 1 << 50


ALL_PERMISSIONS = (1 << 53) - 1

# What a fresh server grants @everyone (close to Discord's default for new servers).
DEFAULT_EVERYONE = (
    Perm.CREATE_INSTANT_INVITE
    | Perm.ADD_REACTIONS
    | Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.USE_EXTERNAL_EMOJIS
    | Perm.CONNECT
    | Perm.SPEAK
    | Perm.CHANGE_NICKNAME
    | Perm.USE_APPLICATION_COMMANDS
    | Perm.SEND_MESSAGES_IN_THREADS
    | Perm.SEND_POLLS
    | Perm.USE_EXTERNAL_APPS
)

# What the bot's managed role gets from a typical invite link for a posting bot.
DEFAULT_BOT_ROLE = (
    Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.USE_APPLICATION_COMMANDS
)

# Without SEND_MESSAGES these are implicitly denied too (Discord's "implicit permissions").
_NEEDS_SEND = Perm.MENTION_EVERYONE | Perm.SEND_TTS_MESSAGES | Perm.ATTACH_FILES | Perm.EMBED_LINKS


def base_permissions(guild: FakeGuild, user_id: int) -> int:
    """Guild-wide permissions: owner and ADMINISTRATOR get everything, else @everyone | roles."""
    if user_id == guild.owner_id:
        return ALL_PERMISSIONS
    member = guild.member(user_id)
    if member is None:
        return 0
    value = guild.everyone_role.permissions
    for role_id in member.roles:
        role = guild.role(role_id)
        if role is not None:
            value |= role.permissions
    if value & Perm.ADMINISTRATOR:
        return ALL_PERMISSIONS
    return value


def channel_permissions(guild: FakeGuild, channel: FakeChannel, user_id: int) -> int:
    """Permissions in one channel: base, then @everyone, role and member overwrites, in order.

    A thread has no overwrites of its own: it takes its parent channel's.
    """
    if channel.parent_id is not None:
        parent = guild.channel(channel.parent_id)
        if parent is None:
            return 0
        channel = parent
    value = base_permissions(guild, user_id)
    if value == ALL_PERMISSIONS:
        return value
    member = guild.member(user_id)
    if member is None:
        return 0
    overwrites = {(o.type, o.id): o for o in channel.overwrites}
    everyone = overwrites.get((0, guild.id))
    if everyone is not None:
        value = (value & ~everyone.deny) | everyone.allow
    role_allow = role_deny = 0
    for role_id in member.roles:
        overwrite = overwrites.get((0, role_id))
        if overwrite is not None:
            role_allow |= overwrite.allow
            role_deny |= overwrite.deny
    value = (value & ~role_deny) | role_allow
    own = overwrites.get((1, user_id))
    if own is not None:
        value = (value & ~own.deny) | own.allow
    return _apply_implicit(value)


def _apply_implicit(value: int) -> int:
    """Drop what Discord implies away: nothing without VIEW_CHANNEL, no extras without SEND."""
    if not value & Perm.VIEW_CHANNEL:
        return 0
    if not value & Perm.SEND_MESSAGES:
        value &= ~_NEEDS_SEND
    return value


def has(value: int, permission: int) -> bool:
    """Whether every bit of `permission` is set in `value`."""
    return value & permission == permission
