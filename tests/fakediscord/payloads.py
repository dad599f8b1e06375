"""JSON builders for Discord objects, shaped like the API's (snowflakes as strings, full fields).

discord.py parses these with its real models, so a missing or mistyped field here would fail the
way a real API change would; keep them close to Discord's documented object structures.
"""

from __future__ import annotations

from typing import Any

from .clock import iso_timestamp
from .permissions import channel_permissions
from .records import InteractionRecord, StoredAttachment, StoredMessage
from .world import (
    DM,
    GUILD_STAGE_VOICE,
    GUILD_VOICE,
    PRIVATE_THREAD,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    FakeWorld,
)

LOCALE = "en-US"


def user(u: FakeUser) -> dict[str, Any]:
    """A user object."""
    data: dict[str, Any] = {
        "id": str(u.id),
        "username": u.username,
        "discriminator": "0",
        "global_name": u.global_name,
        "avatar": None,
        "avatar_decoration_data": None,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "primary_guild": None,
        "collectibles": None,
    }
    if u.bot:
        data["bot"] = True
    return data


def member(
    m: FakeMember, *, with_user: bool = True, permissions: int | None = None
) -> dict[str, Any]:
    """A guild member object; `permissions` is added where Discord adds it (interactions)."""
    data: dict[str, Any] = {
        "roles": [str(r) for r in m.roles],
        "nick": None,
        "avatar": None,
        "banner": None,
        "joined_at": m.joined_at,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
        "unusual_dm_activity_until": None,
    }
    if with_user:
        data["user"] = user(m.user)
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def role(r: FakeRole) -> dict[str, Any]:
    """A role object."""
    data: dict[str, Any] = {
        "id": str(r.id),
        "name": r.name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": r.position,
        "permissions": str(r.permissions),
        "managed": r.managed,
        "mentionable": r.mentionable,
        "flags": 0,
    }
    if r.bot_id is not None:
        data["tags"] = {"bot_id": str(r.bot_id)}
    return data


def channel(
    c: FakeChannel, *, with_guild_id: bool = True, permissions: int | None = None
) -> dict[str, Any]:
    """A guild text channel object (GUILD_CREATE omits guild_id, events include it)."""
    if c.is_thread:
        return thread(c, permissions=permissions)
    data: dict[str, Any] = {
        "id": str(c.id),
        "type": c.type,
        "name": c.name,
        "position": c.position,
        "permission_overwrites": [
            {"id": str(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
            for o in c.overwrites
        ],
        "parent_id": None,
        "topic": None,
        "nsfw": False,
        "rate_limit_per_user": 0,
        "last_message_id": None,
        "last_pin_timestamp": None,
        "flags": 0,
    }
    if c.type in (GUILD_VOICE, GUILD_STAGE_VOICE):  # fields discord.py requires of them
        data.update({"bitrate": 64000, "user_limit": 0, "rtc_region": None})
    if with_guild_id:
        data["guild_id"] = str(c.guild_id)
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def thread(c: FakeChannel, *, permissions: int | None = None) -> dict[str, Any]:
    """A thread channel object: its parent and starter, metadata, and no overwrites of its own.

    Discord includes guild_id even inside GUILD_CREATE's `threads`.
    """
    data: dict[str, Any] = {
        "id": str(c.id),
        "type": c.type,
        "guild_id": str(c.guild_id),
        "parent_id": str(c.parent_id),
        "owner_id": str(c.owner_id),
        "name": c.name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "total_message_sent": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": iso_timestamp(1_700_000_000.0),
            "locked": False,
            "create_timestamp": iso_timestamp(1_700_000_000.0),
            **({"invitable": True} if c.type == PRIVATE_THREAD else {}),
        },
    }
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def dm_channel(
    channel_id: int, recipient: FakeUser, last_message_id: int | None = None
) -> dict[str, Any]:
    """A DM channel object."""
    return {
        "id": str(channel_id),
        "type": DM,
        "last_message_id": str(last_message_id) if last_message_id else None,
        "flags": 0,
        "recipients": [user(recipient)],
    }


def guild(g: FakeGuild) -> dict[str, Any]:
    """A guild object (GUILD_CREATE adds members, channels and the rest)."""
    return {
        "id": str(g.id),
        "name": g.name,
        "icon": None,
        "icon_hash": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": str(g.owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "widget_enabled": False,
        "widget_channel_id": None,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [role(r) for r in g.roles],
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "max_presences": None,
        "max_members": 500000,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": g.premium_tier,
        "premium_subscription_count": 0,
        "preferred_locale": LOCALE,
        "public_updates_channel_id": None,
        "max_video_channel_users": 25,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "safety_alerts_channel_id": None,
        "incidents_data": None,
    }


def guild_create(
    g: FakeGuild, members: list[FakeMember], *, large: bool, joined_at: str
) -> dict[str, Any]:
    """GUILD_CREATE: the guild plus the gateway-only fields (members, channels, ...)."""
    data = guild(g)
    data.update(
        {
            "joined_at": joined_at,
            "large": large,
            "unavailable": False,
            "member_count": len(g.members),
            "voice_states": [],
            "members": [member(m) for m in members],
            "channels": [channel(c, with_guild_id=False) for c in g.channels],
            "threads": [thread(t) for t in g.threads],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }
    )
    return data


def attachment(a: StoredAttachment, *, ephemeral: bool = False) -> dict[str, Any]:
    """An attachment object; `url` serves the stored bytes from the fake's CDN route."""
    data: dict[str, Any] = {
        "id": str(a.id),
        "filename": a.filename,
        "size": a.size,
        "url": a.url,
        "proxy_url": a.url,
        "content_type": a.content_type,
        "flags": 0,
    }
    if a.description is not None:
        data["description"] = a.description
    if ephemeral:
        data["ephemeral"] = True
    return data


def message(
    msg: StoredMessage, world: FakeWorld, *, interaction: InteractionRecord | None = None
) -> dict[str, Any]:
    """A message object as REST returns it."""
    author = world.find_user(msg.author_id) or FakeUser(id=msg.author_id, username="unknown")
    data: dict[str, Any] = {
        "id": str(msg.id),
        "type": msg.type,
        "channel_id": str(msg.channel_id),
        "author": user(author),
        "content": msg.content,
        "timestamp": iso_timestamp(msg.created_wall),
        "edited_timestamp": iso_timestamp(msg.edited_wall) if msg.edited_wall else None,
        "tts": False,
        "mention_everyone": msg.mentions.everyone,
        "mentions": [
            user(u) for u in map(world.find_user, sorted(msg.mentions.users)) if u is not None
        ],
        "mention_roles": [str(r) for r in sorted(msg.mentions.roles)],
        "attachments": [attachment(a, ephemeral=msg.ephemeral) for a in msg.attachments],
        "embeds": list(msg.embeds),
        "pinned": False,
        "flags": msg.flags,
        "components": list(msg.components),
    }
    if msg.webhook_id is not None:
        data["webhook_id"] = str(msg.webhook_id)
        data["application_id"] = str(world.application_id)
    if msg.message_reference is not None:
        data["message_reference"] = dict(msg.message_reference)
    if interaction is not None:
        data.update(_interaction_metadata(interaction, world))
    return data


def _interaction_metadata(record: InteractionRecord, world: FakeWorld) -> dict[str, Any]:
    invoker = world.find_user(record.user_id)
    invoker_data = user(invoker) if invoker else {"id": str(record.user_id)}
    owners = record.payload.get("authorizing_integration_owners", {})
    metadata: dict[str, Any] = {
        "id": str(record.id),
        "type": record.type,
        "user": invoker_data,
        "authorizing_integration_owners": owners,
    }
    if record.original_message_id is not None:
        metadata["original_response_message_id"] = str(record.original_message_id)
    if record.source_message_id is not None:
        metadata["interacted_message_id"] = str(record.source_message_id)
    legacy = {
        "id": str(record.id),
        "type": record.type,
        "user": invoker_data,
        "name": record.payload.get("data", {}).get("name", ""),
    }
    return {"interaction_metadata": metadata, "interaction": legacy}


def application(world: FakeWorld) -> dict[str, Any]:
    """GET /oauth2/applications/@me: no interactions endpoint URL, so the gateway gets them."""
    return {
        "id": str(world.application_id),
        "name": "Fake Video Bot",
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "bot": user(world.bot),
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "owner": user(world.owner),
        "team": None,
        "flags": world.application_flags,
        "hook": True,
        "interactions_endpoint_url": None,
        "role_connections_verification_url": None,
        "event_webhooks_url": None,
        "event_webhooks_status": 1,
        "event_webhooks_types": [],
        "redirect_uris": [],
        "tags": [],
        "approximate_guild_count": len(world.guilds),
        "approximate_user_install_count": 0,
        "integration_types_config": {"0": {}},
        "install_params": None,
        "custom_install_url": None,
    }


def interaction_channel(guild_obj: FakeGuild, c: FakeChannel, user_id: int) -> dict[str, Any]:
    """The channel object inside an interaction: the invoker's permissions are included."""
    return channel(c, permissions=channel_permissions(guild_obj, c, user_id))
