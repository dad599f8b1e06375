"""Building INTERACTION_CREATE payloads the way Discord's client and API would.

A member can only invoke what Discord shows them, so by default (`strict=True`) a slash command
must be registered (synced) in the guild or globally, visible in this context, allowed by its
`default_member_permissions`, and given options that pass its schema (types, required, choices,
ranges, lengths); a button must exist on a message the user can see and not be disabled.
Violations raise `InvalidInteraction`: the test tried something no real user could do.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from . import payloads
from .permissions import ALL_PERMISSIONS, Perm, base_permissions, channel_permissions, has
from .records import InteractionRecord, StoredAttachment, StoredMessage
from .schema import (
    ATTACHMENT,
    BOOLEAN,
    CHANNEL,
    INTEGER,
    MENTIONABLE,
    NUMBER,
    ROLE,
    STRING,
    SUB_COMMAND,
    SUB_COMMAND_GROUP,
    USER_OPT,
)
from .store import Destination, Store
from .world import FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser

APPLICATION_COMMAND, MESSAGE_COMPONENT, MODAL_SUBMIT = 2, 3, 5
CONTEXT_GUILD, CONTEXT_BOT_DM = 0, 1
# What Discord grants an app in a DM with its bot (app_permissions there).
_DM_APP_PERMISSIONS = (
    Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.ATTACH_FILES
    | Perm.READ_MESSAGE_HISTORY
    | Perm.ADD_REACTIONS
    | Perm.USE_EXTERNAL_EMOJIS
)


class InvalidInteraction(AssertionError):
    """The test asked for an interaction Discord's client would never send."""


@dataclass(frozen=True)
class Upload:
    """A file for an attachment option."""

    filename: str
    data: bytes
    content_type: str = "application/octet-stream"


UserLike = FakeUser | FakeMember | int
ChannelLike = FakeChannel | int


@dataclass
class _OptionContext:
    """What encoding option values needs: where, who, and the `resolved` being filled."""

    dest: Destination
    invoker_id: int
    strict: bool
    resolved: dict[str, dict[str, Any]]


def user_id_of(user: UserLike) -> int:
    """The id of a user given as id, FakeUser or FakeMember."""
    return user if isinstance(user, int) else user.id


def new_token(interaction_id: int) -> str:
    """An opaque token shaped like Discord's (base64 of "interaction:<id>:<random>")."""
    raw = f"interaction:{interaction_id}:{secrets.token_urlsafe(48)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class InteractionFactory:
    """Builds and registers interactions; the caller sends them over the gateway."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # Slash commands ------------------------------------------------------------------------

    def slash(
        self,
        command: str,
        options: dict[str, Any] | None,
        *,
        user: UserLike,
        channel: ChannelLike,
        locale: str | None,
        attachment_size_limit: int | None,
        strict: bool,
        bypass_permissions: bool,
    ) -> InteractionRecord:
        """A CHAT_INPUT interaction for `command` ("video", "videolimit set", "a b c")."""
        dest = self._destination(channel, user)
        path = command.split()
        registered = self._find_command(path[0], dest)
        if registered is None and strict:
            raise InvalidInteraction(f"/{path[0]} is not registered (synced) for this channel")
        if registered is not None and strict:
            self._check_visible(registered, dest, user_id_of(user), bypass_permissions)
        ctx = _OptionContext(dest=dest, invoker_id=user_id_of(user), strict=strict, resolved={})
        schema = (registered or {}).get("options") or []
        built = self._walk(path[1:], schema, options or {}, ctx)
        resolved = ctx.resolved
        data: dict[str, Any] = {
            "id": (registered or {}).get("id", str(self.store.ids.next())),
            "name": path[0],
            "type": 1,
        }
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        if registered is not None and registered.get("guild_id"):
            data["guild_id"] = registered["guild_id"]
        return self._register(
            APPLICATION_COMMAND,
            data,
            dest,
            user,
            locale=locale,
            attachment_size_limit=attachment_size_limit,
        )

    def _find_command(self, name: str, dest: Destination) -> dict[str, Any] | None:
        scopes = ([dest.guild.id] if dest.guild else []) + [None]
        for scope in scopes:
            for command in self.store.commands(scope):
                if command["name"] == name and command["type"] == 1:
                    return command
        return None

    def _check_visible(
        self, command: dict[str, Any], dest: Destination, user_id: int, bypass_permissions: bool
    ) -> None:
        """Contexts and default_member_permissions decide whether the user sees the command."""
        context = CONTEXT_GUILD if dest.guild is not None else CONTEXT_BOT_DM
        contexts = command.get("contexts")
        if contexts is not None and context not in contexts:
            raise InvalidInteraction(f"/{command['name']} is not available in this context")
        if contexts is None and context == CONTEXT_BOT_DM and command.get("dm_permission") is False:
            raise InvalidInteraction(f"/{command['name']} is not available in DMs")
        required = command.get("default_member_permissions")
        if required is None or dest.guild is None or bypass_permissions:
            return
        perms = base_permissions(dest.guild, user_id)
        if perms == ALL_PERMISSIONS:
            return  # owner and administrators see every command
        if int(required) == 0 or not has(perms, int(required)):
            raise InvalidInteraction(
                f"/{command['name']} is hidden from this member (default_member_permissions="
                f"{required}); pass bypass_permissions=True to model a server override"
            )

    def _walk(
        self,
        path: list[str],
        schema: list[dict[str, Any]],
        values: dict[str, Any],
        ctx: _OptionContext,
    ) -> list[dict[str, Any]]:
        """Nest subcommand groups/subcommands along `path`, then the leaf's value options."""
        if path:
            name = path[0]
            option = next(
                (
                    o
                    for o in schema
                    if o.get("name") == name and o.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP)
                ),
                None,
            )
            if option is None and ctx.strict:
                raise InvalidInteraction(f"no subcommand {name!r} in the registered command")
            kind = (
                option["type"] if option else (SUB_COMMAND if len(path) == 1 else SUB_COMMAND_GROUP)
            )
            inner = self._walk(path[1:], (option or {}).get("options") or [], values, ctx)
            return [{"type": kind, "name": name, "options": inner}]
        if ctx.strict and any(o.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in schema):
            raise InvalidInteraction("this command needs a subcommand (e.g. 'videolimit set')")
        return self._value_options(schema, values, ctx)

    def _value_options(
        self, schema: list[dict[str, Any]], values: dict[str, Any], ctx: _OptionContext
    ) -> list[dict[str, Any]]:
        by_name = {o["name"]: o for o in schema}
        if ctx.strict:
            unknown = set(values) - set(by_name)
            if unknown:
                raise InvalidInteraction(f"unknown option(s) {sorted(unknown)}")
            missing = [o["name"] for o in schema if o.get("required") and o["name"] not in values]
            if missing:
                raise InvalidInteraction(f"required option(s) missing: {missing}")
        built = []
        for name, value in values.items():
            option = by_name.get(name, {"type": _guess_type(value), "name": name})
            kind = option["type"]
            if ctx.strict:
                _check_value(option, value)
            built.append(
                {"name": name, "type": kind, "value": self._encode(kind, value, option, ctx)}
            )
        return built

    def _encode(self, kind: int, value: Any, option: dict[str, Any], ctx: _OptionContext) -> Any:
        """The option's wire value; entity options also fill `resolved` as Discord does."""
        if kind in (USER_OPT, MENTIONABLE) and isinstance(value, (FakeUser, FakeMember)):
            return self._resolve_user(value, ctx)
        if kind in (ROLE, MENTIONABLE) and isinstance(value, FakeRole):
            ctx.resolved.setdefault("roles", {})[str(value.id)] = payloads.role(value)
            return str(value.id)
        if kind == CHANNEL:
            return self._resolve_channel(value, option, ctx)
        if kind == ATTACHMENT:
            return self._resolve_attachment(value, ctx)
        if kind in (USER_OPT, ROLE, MENTIONABLE):
            return self._resolve_id(kind, int(value), ctx)
        return value

    def _resolve_user(self, value: FakeUser | FakeMember, ctx: _OptionContext) -> str:
        dest, resolved = ctx.dest, ctx.resolved
        user = value.user if isinstance(value, FakeMember) else value
        resolved.setdefault("users", {})[str(user.id)] = payloads.user(user)
        member = dest.guild.member(user.id) if dest.guild else None
        if member is not None and dest.channel is not None and dest.guild is not None:
            perms = channel_permissions(dest.guild, dest.channel, user.id)
            data = payloads.member(member, with_user=False, permissions=perms)
            for key in ("deaf", "mute"):
                data.pop(key, None)
            resolved.setdefault("members", {})[str(user.id)] = data
        return str(user.id)

    def _resolve_id(self, kind: int, target: int, ctx: _OptionContext) -> str:
        role = ctx.dest.guild.role(target) if ctx.dest.guild else None
        if kind in (ROLE, MENTIONABLE) and role is not None:
            ctx.resolved.setdefault("roles", {})[str(target)] = payloads.role(role)
            return str(target)
        user = self.store.world.find_user(target)
        if kind in (USER_OPT, MENTIONABLE) and user is not None:
            return self._resolve_user(user, ctx)
        if ctx.strict:
            raise InvalidInteraction(f"no {'role' if kind == ROLE else 'user'} with id {target}")
        return str(target)

    def _resolve_channel(
        self, value: ChannelLike, option: dict[str, Any], ctx: _OptionContext
    ) -> str:
        channel_id = value if isinstance(value, int) else value.id
        found = self.store.world.find_channel(channel_id)
        if found is None:
            if ctx.strict:
                raise InvalidInteraction(f"no channel with id {channel_id}")
            return str(channel_id)
        guild, channel = found
        allowed = option.get("channel_types")
        if ctx.strict and allowed is not None and channel.type not in allowed:
            raise InvalidInteraction(f"channel type {channel.type} not in {allowed}")
        perms = channel_permissions(guild, channel, ctx.invoker_id)
        ctx.resolved.setdefault("channels", {})[str(channel.id)] = {
            "id": str(channel.id),
            "name": channel.name,
            "type": channel.type,
            "permissions": str(perms),
            "parent_id": None,
            "flags": 0,
        }
        return str(channel.id)

    def _resolve_attachment(self, value: Upload, ctx: _OptionContext) -> str:
        dest, resolved = ctx.dest, ctx.resolved
        attachment_id = self.store.ids.next()
        attachment = StoredAttachment(
            id=attachment_id,
            filename=value.filename,
            size=len(value.data),
            content_type=value.content_type,
            data=value.data,
            url=self.store.attachment_url(dest.channel_id, attachment_id, value.filename),
        )
        self.store.attachments[attachment_id] = attachment
        resolved.setdefault("attachments", {})[str(attachment_id)] = payloads.attachment(
            attachment, ephemeral=True
        )
        return str(attachment_id)

    # Components and modals -----------------------------------------------------------------

    def component(
        self,
        message: StoredMessage,
        custom_id: str,
        *,
        user: UserLike,
        values: list[str] | None,
        strict: bool,
    ) -> InteractionRecord:
        """A MESSAGE_COMPONENT interaction: a click on a button or a select choice."""
        uid = user_id_of(user)
        if strict:
            _check_clickable(message, custom_id, uid, values)
        component = message.find_component(custom_id) or {"type": 2}
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
        if values is not None or component["type"] in (3, 5, 6, 7, 8):
            data["values"] = list(values or [])
        dest = self._destination(message.channel_id, user)
        message_payload = self.store.message_payload(message)
        return self._register(
            MESSAGE_COMPONENT,
            data,
            dest,
            user,
            locale=None,
            attachment_size_limit=None,
            message=message,
            message_payload=message_payload,
        )

    def modal_submit(
        self, opener: InteractionRecord, values: dict[str, str], *, strict: bool
    ) -> InteractionRecord:
        """A MODAL_SUBMIT for the modal the bot opened in answer to `opener`."""
        if opener.modal is None:
            raise InvalidInteraction("the bot did not answer this interaction with a modal")
        components = _modal_answers(opener.modal.get("components") or [], values, strict)
        data = {"custom_id": opener.modal.get("custom_id"), "components": components}
        dest = self._destination(opener.channel_id, opener.user_id)
        message = self.store.message(opener.source_message_id or 0)
        message_payload = self.store.message_payload(message) if message else None
        return self._register(
            MODAL_SUBMIT,
            data,
            dest,
            opener.user_id,
            locale=None,
            attachment_size_limit=None,
            message=message,
            message_payload=message_payload,
        )

    # Common envelope -----------------------------------------------------------------------

    def _destination(self, channel: ChannelLike, user: UserLike) -> Destination:
        channel_id = channel if isinstance(channel, int) else channel.id
        dest = self.store.destination(channel_id)
        if dest is not None:
            return dest
        if channel_id == 0:
            # channel=0 means "the bot's DM with this user".
            return self.store.destination(self.store.open_dm(user_id_of(user)))  # type: ignore
        raise InvalidInteraction(f"no channel with id {channel_id}")

    def _register(
        self,
        kind: int,
        data: dict[str, Any],
        dest: Destination,
        user: UserLike,
        *,
        locale: str | None,
        attachment_size_limit: int | None,
        message: StoredMessage | None = None,
        message_payload: dict[str, Any] | None = None,
    ) -> InteractionRecord:
        uid = user_id_of(user)
        account = self.store.world.find_user(uid)
        if account is None:
            raise InvalidInteraction(f"no user with id {uid}")
        interaction_id = self.store.ids.next()
        token = new_token(interaction_id)
        limit = attachment_size_limit or self.store.world.upload_limit_for(dest.guild)
        payload = _envelope(
            interaction_id,
            token,
            kind,
            data,
            self.store.world.application_id,
            limit,
            locale or account.locale,
        )
        payload.update(self._place(dest, account))
        if message_payload is not None:
            payload["message"] = message_payload
        record = InteractionRecord(
            id=interaction_id,
            token=token,
            type=kind,
            guild_id=dest.guild.id if dest.guild else None,
            channel_id=dest.channel_id,
            user_id=uid,
            created_at=self.store.clock.monotonic(),
            payload=payload,
            attachment_size_limit=limit,
            source_message_id=message.id if message else None,
        )
        self.store.interactions[interaction_id] = record
        self.store.interactions_by_token[token] = record
        return record

    def _place(self, dest: Destination, account: FakeUser) -> dict[str, Any]:
        """Guild, channel, member/user, permissions and context of the interaction."""
        world = self.store.world
        if dest.guild is None or dest.channel is None:
            recipient = dest.dm_recipient or account
            return {
                "channel_id": str(dest.channel_id),
                "channel": payloads.dm_channel(dest.channel_id, recipient),
                "user": payloads.user(account),
                "app_permissions": str(int(_DM_APP_PERMISSIONS)),
                "context": CONTEXT_BOT_DM,
                "authorizing_integration_owners": {"0": "0"},
            }
        guild: FakeGuild = dest.guild
        member = guild.member(account.id)
        if member is None:
            raise InvalidInteraction(f"user {account.id} is not a member of guild {guild.id}")
        member_perms = channel_permissions(guild, dest.channel, account.id)
        return {
            "guild_id": str(guild.id),
            "guild": {
                "id": str(guild.id),
                "locale": guild.preferred_locale,
                "features": list(guild.features),
            },
            "guild_locale": guild.preferred_locale,
            "channel_id": str(dest.channel_id),
            "channel": payloads.interaction_channel(guild, dest.channel, account.id),
            "member": payloads.member(member, permissions=member_perms),
            "app_permissions": str(channel_permissions(guild, dest.channel, world.bot.id)),
            "context": CONTEXT_GUILD,
            "authorizing_integration_owners": {"0": str(guild.id)},
        }


def _envelope(
    interaction_id: int,
    token: str,
    kind: int,
    data: dict[str, Any],
    application_id: int,
    limit: int,
    locale: str,
) -> dict[str, Any]:
    return {
        "id": str(interaction_id),
        "application_id": str(application_id),
        "type": kind,
        "data": data,
        "token": token,
        "version": 1,
        "locale": locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": limit,
    }


def _guess_type(value: Any) -> int:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return NUMBER
    if isinstance(value, (FakeUser, FakeMember)):
        return USER_OPT
    if isinstance(value, FakeRole):
        return ROLE
    if isinstance(value, FakeChannel):
        return CHANNEL
    if isinstance(value, Upload):
        return ATTACHMENT
    return STRING


def _check_value(option: dict[str, Any], value: Any) -> None:
    """What Discord's client enforces before sending: type, choices, ranges and lengths."""
    kind, name = option["type"], option["name"]
    if kind == STRING:
        _check_string(option, value)
    elif kind == INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInteraction(f"{name} must be an integer, got {value!r}")
        _check_range(option, value)
    elif kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInteraction(f"{name} must be a number, got {value!r}")
        _check_range(option, value)
    elif kind == BOOLEAN and not isinstance(value, bool):
        raise InvalidInteraction(f"{name} must be a boolean, got {value!r}")
    choices = option.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise InvalidInteraction(f"{name}={value!r} is not one of the choices")


def _check_string(option: dict[str, Any], value: Any) -> None:
    name = option["name"]
    if not isinstance(value, str):
        raise InvalidInteraction(f"{name} must be a string, got {value!r}")
    low, high = option.get("min_length", 0), option.get("max_length", 6000)
    if not low <= len(value) <= high:
        raise InvalidInteraction(f"{name} must be {low}..{high} characters, got {len(value)}")


def _check_range(option: dict[str, Any], value: float) -> None:
    low, high = option.get("min_value"), option.get("max_value")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidInteraction(f"{option['name']}={value} is outside {low}..{high}")


def _check_clickable(
    message: StoredMessage, custom_id: str, user_id: int, values: list[str] | None
) -> None:
    if message.deleted:
        raise InvalidInteraction(f"message {message.id} was deleted")
    if not message.visible_for(user_id):
        raise InvalidInteraction(f"user {user_id} cannot see message {message.id}")
    component = message.find_component(custom_id)
    if component is None:
        raise InvalidInteraction(
            f"no component {custom_id!r} on message {message.id} (has {message.custom_ids()})"
        )
    if component.get("disabled"):
        raise InvalidInteraction(f"component {custom_id!r} is disabled")
    if component["type"] == 3:
        allowed = {o["value"] for o in component.get("options", [])}
        chosen = values or []
        low, high = component.get("min_values", 1), component.get("max_values", 1)
        if not set(chosen) <= allowed or not low <= len(chosen) <= high:
            raise InvalidInteraction(f"invalid select values {chosen!r} for {custom_id!r}")


def _modal_answers(
    components: list[dict[str, Any]], values: dict[str, str], strict: bool
) -> list[dict[str, Any]]:
    """Echo the modal's inputs back with the user's values, in Discord's submit shape."""
    answers: list[dict[str, Any]] = []
    for component in components:
        if component.get("type") == 1:
            row = [_answer(c, values, strict) for c in component.get("components", [])]
            answers.append({"type": 1, "components": row})
        elif component.get("type") == 18:
            answers.append(
                {
                    "type": 18,
                    "id": component.get("id", 0),
                    "component": _answer(component["component"], values, strict),
                }
            )
        elif component.get("type") == 10:
            answers.append(
                {"type": 10, "id": component.get("id", 0), "content": component.get("content", "")}
            )
    return answers


def _answer(component: dict[str, Any], values: dict[str, str], strict: bool) -> dict[str, Any]:
    custom_id = component.get("custom_id", "")
    value = values.get(custom_id, "")
    if strict and component.get("required", True) and component.get("type") == 4 and not value:
        raise InvalidInteraction(f"modal input {custom_id!r} is required")
    answer: dict[str, Any] = {
        "type": component.get("type", 4),
        "custom_id": custom_id,
        "id": component.get("id", 0),
    }
    if component.get("type") == 4:
        answer["value"] = value
    else:
        answer["values"] = value if isinstance(value, list) else [value] if value else []
    return answer
