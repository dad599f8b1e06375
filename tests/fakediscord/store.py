"""The fake's mutable state and the operations both REST and interaction routes share.

One `Store` per `FakeDiscord`: messages per channel, interactions by id and token, registered
commands, DM channels and the call log. Creating, editing and deleting a message goes through
here so mentions and revisions stay consistent. No MESSAGE_* gateway events are sent: the bot
asks for no message intents, so Discord sends it none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import mentions, payloads
from .clock import FakeDiscordClock, SnowflakeFactory
from .messages import (
    MessageBody,
    apply_fields,
    attachments_after_edit,
    new_attachments,
    resolve_loading,
    snapshot,
)
from .records import (
    ChangeNotifier,
    InteractionRecord,
    Mentions,
    RecordedCall,
    StoredAttachment,
    StoredMessage,
)
from .world import FakeChannel, FakeGuild, FakeUser, FakeWorld

# Discord de-duplicates a nonce with enforce_nonce "for a few minutes".
NONCE_WINDOW = 5 * 60


@dataclass(frozen=True)
class Destination:
    """Where a message goes: a guild channel, or a DM with one recipient."""

    channel_id: int
    guild: FakeGuild | None
    channel: FakeChannel | None
    dm_recipient: FakeUser | None = None


class Store:
    """All state one fake Discord holds while a test runs."""

    def __init__(
        self,
        world: FakeWorld,
        clock: FakeDiscordClock,
        ids: SnowflakeFactory,
        notifier: ChangeNotifier,
    ) -> None:
        self.world = world
        self.clock = clock
        self.ids = ids
        self.notifier = notifier
        self.base_url = ""
        self.messages: dict[int, StoredMessage] = {}
        self.channel_messages: dict[int, list[int]] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.interactions_by_token: dict[str, InteractionRecord] = {}
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self._command_ids: dict[tuple[int | None, int, str], int] = {}
        self.dm_channels: dict[int, int] = {}
        self.dm_recipients: dict[int, int] = {}
        self.calls: list[RecordedCall] = []

    # Lookups --------------------------------------------------------------------------------

    def destination(self, channel_id: int) -> Destination | None:
        """Resolve a channel id to a guild channel or a DM; None if unknown."""
        found = self.world.find_channel(channel_id)
        if found is not None:
            guild, channel = found
            return Destination(channel_id, guild, channel)
        recipient_id = self.dm_recipients.get(channel_id)
        if recipient_id is not None:
            return Destination(channel_id, None, None, self.world.find_user(recipient_id))
        return None

    def message(self, message_id: int) -> StoredMessage | None:
        """A stored message (deleted ones included)."""
        return self.messages.get(message_id)

    def channel_history(self, channel_id: int) -> list[StoredMessage]:
        """Every message ever posted in the channel, oldest first."""
        return [self.messages[i] for i in self.channel_messages.get(channel_id, [])]

    def last_message_id(self, channel_id: int) -> int | None:
        """The newest non-ephemeral message id, as Discord reports in channel objects."""
        for message in reversed(self.channel_history(channel_id)):
            if not message.ephemeral and not message.deleted:
                return message.id
        return None

    def message_payload(self, message: StoredMessage) -> dict[str, Any]:
        """The message object, with interaction metadata when an interaction created it."""
        interaction = self.interactions.get(message.interaction_id or 0)
        return payloads.message(message, self.world, interaction=interaction)

    # Messages ------------------------------------------------------------------------------

    async def create_message(
        self,
        dest: Destination,
        author_id: int,
        body: MessageBody,
        *,
        interaction: InteractionRecord | None = None,
        visible_to: frozenset[int] | None = None,
        message_type: int = 0,
        extra_flags: int = 0,
        notify: bool = True,
    ) -> StoredMessage:
        """Store a new message and work out its mentions and pings."""
        payload = body.payload
        now = self.clock.monotonic()
        message = StoredMessage(
            id=self.ids.next(),
            channel_id=dest.channel_id,
            guild_id=dest.guild.id if dest.guild else None,
            author_id=author_id,
            content=str(payload.get("content") or ""),
            created_at=now,
            created_wall=self.clock.wall(),
            embeds=list(payload.get("embeds") or []),
            components=list(payload.get("components") or []),
            flags=int(payload.get("flags") or 0) | extra_flags,
            type=message_type,
            allowed_mentions=payload.get("allowed_mentions"),
            interaction_id=interaction.id if interaction else None,
            webhook_id=self.world.application_id if interaction else None,
            visible_to=visible_to,
            message_reference=payload.get("message_reference"),
            nonce=str(payload["nonce"]) if payload.get("nonce") is not None else None,
        )
        message.attachments = self._upload(body, dest.channel_id)
        message.mentions = self._mentions(message, dest, message.allowed_mentions, notify=notify)
        message.pinged_user_ids = message.mentions.pinged_user_ids
        snapshot(message, now)
        self.messages[message.id] = message
        self.channel_messages.setdefault(dest.channel_id, []).append(message.id)
        self.notifier.notify()
        return message

    def message_with_nonce(self, channel_id: int, payload: dict[str, Any]) -> StoredMessage | None:
        """The bot's message in the channel created with this nonce in the last few minutes."""
        nonce = payload.get("nonce")
        if nonce is None or not payload.get("enforce_nonce"):
            return None
        now = self.clock.monotonic()
        for message_id in reversed(self.channel_messages.get(channel_id, [])):
            message = self.messages[message_id]
            if now - message.created_at > NONCE_WINDOW:
                break
            if message.nonce == str(nonce) and not message.deleted:
                return message
        return None

    async def edit_message(self, message: StoredMessage, body: MessageBody) -> StoredMessage:
        """Apply an edit; edits re-parse mentions (allowed_mentions is not kept) but never ping."""
        uploaded = self._upload(body, message.channel_id)
        if uploaded or "attachments" in body.payload:
            message.attachments = attachments_after_edit(message, body, uploaded)
        apply_fields(message, body.payload)
        dest = self.destination(message.channel_id)
        if dest is not None:
            message.mentions = self._mentions(
                message, dest, body.payload.get("allowed_mentions"), notify=False
            )
        message.edited_wall = self.clock.wall()
        snapshot(message, self.clock.monotonic())
        self.notifier.notify()
        return message

    def _upload(self, body: MessageBody, channel_id: int) -> list[StoredAttachment]:
        """The body's files as attachments (their `url` is not served: the bot reads none)."""
        return new_attachments(
            body,
            make_id=self.ids.next,
            url_for=lambda aid, name: f"{self.base_url}/attachments/{channel_id}/{aid}/{name}",
        )

    async def resolve_deferred(
        self, message: StoredMessage, body: MessageBody, interaction: InteractionRecord
    ) -> StoredMessage:
        """The first edit/followup after a defer replaces "thinking" (an edit: nobody pinged)."""
        resolve_loading(message)
        interaction.loading_resolved = True
        return await self.edit_message(message, body)

    async def delete_message(self, message: StoredMessage) -> None:
        """Mark deleted (later edits get 10008)."""
        message.deleted = True
        self.notifier.notify()

    def _mentions(
        self,
        message: StoredMessage,
        dest: Destination,
        allowed: dict[str, Any] | None,
        *,
        notify: bool,
    ) -> Mentions:
        reference = message.message_reference or {}
        replied = (
            self.messages.get(int(reference["message_id"])) if reference.get("message_id") else None
        )
        return mentions.resolve(
            message.content,
            allowed,
            guild=dest.guild,
            channel=dest.channel,
            author_id=message.author_id,
            dm_recipient_id=dest.dm_recipient.id if dest.dm_recipient else None,
            replied_author_id=replied.author_id if replied else None,
            visible_to=message.visible_to,
            notify=notify,
        )

    # Application commands ------------------------------------------------------------------

    def commands(self, guild_id: int | None) -> list[dict[str, Any]]:
        """The registered commands of a scope (None: global)."""
        if guild_id is None:
            return self.global_commands
        return self.guild_commands.get(guild_id, [])

    def overwrite_commands(
        self, guild_id: int | None, bodies: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Bulk overwrite: same name and type keeps its id, as Discord does."""
        stored = [self._stored_command(guild_id, body) for body in bodies]
        if guild_id is None:
            self.global_commands = stored
        else:
            self.guild_commands[guild_id] = stored
        self.notifier.notify()
        return stored

    def _stored_command(self, guild_id: int | None, body: dict[str, Any]) -> dict[str, Any]:
        kind = int(body.get("type", 1))
        key = (guild_id, kind, str(body.get("name")))
        command_id = self._command_ids.setdefault(key, self.ids.next())
        stored: dict[str, Any] = {
            "id": str(command_id),
            "application_id": str(self.world.application_id),
            "version": str(self.ids.next()),
            "type": kind,
            "name": body.get("name"),
            "description": body.get("description", "") or "",
            "default_member_permissions": _permissions_string(body),
            "dm_permission": body.get("dm_permission", True),
            "nsfw": bool(body.get("nsfw", False)),
            "contexts": body.get("contexts"),
            "integration_types": body.get("integration_types", [0]),
        }
        for key_name in ("name_localizations", "description_localizations", "options"):
            if body.get(key_name) is not None:
                stored[key_name] = body[key_name]
        if guild_id is not None:
            stored["guild_id"] = str(guild_id)
        return stored

    # DMs -----------------------------------------------------------------------------------

    def open_dm(self, user_id: int) -> int:
        """The DM channel id with this user, created on first use."""
        channel_id = self.dm_channels.get(user_id)
        if channel_id is None:
            channel_id = self.ids.next()
            self.dm_channels[user_id] = channel_id
            self.dm_recipients[channel_id] = user_id
        return channel_id


def _permissions_string(body: dict[str, Any]) -> str | None:
    value = body.get("default_member_permissions")
    return None if value is None else str(value)
