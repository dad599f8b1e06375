"""Building INTERACTION_CREATE payloads the way Discord's client and API would.

A member can only invoke what Discord shows them, so a slash command must be registered (synced)
in the guild or globally, visible in a guild, allowed by its `default_member_permissions`, and
given options that pass its schema (types, required, choices, ranges, lengths); a button must
exist on a message the user can see and not be disabled; a modal must have been opened by the
bot. Violations raise `InvalidInteraction`: the test tried something no real user could do.

Only guild interactions are modelled: the bot's commands are guild-only and its DMs carry no
buttons, so Discord never sends it an interaction from a DM.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from . import payloads
from .permissions import ALL_PERMISSIONS, base_permissions, channel_permissions, has
from .records import InteractionRecord, StoredMessage
from .schema import (
    BOOLEAN,
    CHANNEL,
    INTEGER,
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
CONTEXT_GUILD = 0
TEXT_INPUT, TEXT_DISPLAY, LABEL = 4, 10, 18
LOCALE = "en-US"


class InvalidInteraction(AssertionError):
    """The test asked for an interaction Discord's client would never send."""


UserLike = FakeUser | FakeMember | int
ChannelLike = FakeChannel | int


@dataclass
class _OptionContext:
    """What encoding option values needs: where, who, and the `resolved` being filled."""

    dest: Destination
    guild: FakeGuild
    invoker_id: int
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
        attachment_size_limit: int | None,
        bypass_permissions: bool,
    ) -> InteractionRecord:
        """A CHAT_INPUT interaction for `command` ("video", "videolimit set", "a b c")."""
        dest, guild = self._destination(channel)
        path = command.split()
        registered = self._find_command(path[0], guild)
        if registered is None:
            raise InvalidInteraction(f"/{path[0]} is not registered (synced) for this channel")
        _check_visible(registered, guild, user_id_of(user), bypass_permissions)
        ctx = _OptionContext(dest=dest, guild=guild, invoker_id=user_id_of(user), resolved={})
        built = self._walk(path[1:], registered.get("options") or [], options or {}, ctx)
        data: dict[str, Any] = {"id": registered["id"], "name": path[0], "type": 1}
        if built:
            data["options"] = built
        if ctx.resolved:
            data["resolved"] = ctx.resolved
        if registered.get("guild_id"):
            data["guild_id"] = registered["guild_id"]
        return self._register(
            APPLICATION_COMMAND, data, dest, user, attachment_size_limit=attachment_size_limit
        )

    def _find_command(self, name: str, guild: FakeGuild) -> dict[str, Any] | None:
        for scope in (guild.id, None):
            for command in self.store.commands(scope):
                if command["name"] == name and command["type"] == 1:
                    return command
        return None

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
            if option is None:
                raise InvalidInteraction(f"no subcommand {name!r} in the registered command")
            inner = self._walk(path[1:], option.get("options") or [], values, ctx)
            return [{"type": option["type"], "name": name, "options": inner}]
        if any(o.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in schema):
            raise InvalidInteraction("this command needs a subcommand (e.g. 'videolimit set')")
        return self._value_options(schema, values, ctx)

    def _value_options(
        self, schema: list[dict[str, Any]], values: dict[str, Any], ctx: _OptionContext
    ) -> list[dict[str, Any]]:
        by_name = {o["name"]: o for o in schema}
        unknown = set(values) - set(by_name)
        if unknown:
            raise InvalidInteraction(f"unknown option(s) {sorted(unknown)}")
        missing = [o["name"] for o in schema if o.get("required") and o["name"] not in values]
        if missing:
            raise InvalidInteraction(f"required option(s) missing: {missing}")
        built = []
        for name, value in values.items():
            option = by_name[name]
            _check_value(option, value)
            value = self._encode(option, value, ctx)
            built.append({"name": name, "type": option["type"], "value": value})
        return built

    def _encode(self, option: dict[str, Any], value: Any, ctx: _OptionContext) -> Any:
        """The option's wire value; entity options also fill `resolved` as Discord does."""
        kind = option["type"]
        if kind == USER_OPT:
            return self._resolve_user(value, ctx)
        if kind == ROLE:
            if not isinstance(value, FakeRole) or ctx.guild.role(value.id) is None:
                raise InvalidInteraction(f"{option['name']} must be a role of this guild")
            ctx.resolved.setdefault("roles", {})[str(value.id)] = payloads.role(value)
            return str(value.id)
        if kind == CHANNEL:
            return self._resolve_channel(value, option, ctx)
        return value

    def _resolve_user(self, value: Any, ctx: _OptionContext) -> str:
        if not isinstance(value, (FakeUser, FakeMember)):
            raise InvalidInteraction(f"a user option takes a FakeUser or FakeMember, not {value!r}")
        user = value.user if isinstance(value, FakeMember) else value
        ctx.resolved.setdefault("users", {})[str(user.id)] = payloads.user(user)
        member = ctx.guild.member(user.id)
        if member is not None and ctx.dest.channel is not None:
            perms = channel_permissions(ctx.guild, ctx.dest.channel, user.id)
            data = payloads.member(member, with_user=False, permissions=perms)
            for key in ("deaf", "mute"):
                data.pop(key, None)
            ctx.resolved.setdefault("members", {})[str(user.id)] = data
        return str(user.id)

    def _resolve_channel(self, value: Any, option: dict[str, Any], ctx: _OptionContext) -> str:
        channel_id = value if isinstance(value, int) else value.id
        found = self.store.world.find_channel(channel_id)
        if found is None:
            raise InvalidInteraction(f"no channel with id {channel_id}")
        guild, channel = found
        allowed = option.get("channel_types")
        if allowed is not None and channel.type not in allowed:
            raise InvalidInteraction(f"channel type {channel.type} not in {allowed}")
        perms = channel_permissions(guild, channel, ctx.invoker_id)
        resolved: dict[str, Any] = {
            "id": str(channel.id),
            "name": channel.name,
            "type": channel.type,
            "permissions": str(perms),
            "parent_id": str(channel.parent_id) if channel.parent_id is not None else None,
            "flags": 0,
        }
        if channel.is_thread:  # Discord resolves a thread with its metadata
            resolved["thread_metadata"] = payloads.thread(channel)["thread_metadata"]
        ctx.resolved.setdefault("channels", {})[str(channel.id)] = resolved
        return str(channel.id)

    # Components and modals -----------------------------------------------------------------

    def component(
        self, message: StoredMessage, custom_id: str, *, user: UserLike
    ) -> InteractionRecord:
        """A MESSAGE_COMPONENT interaction: a click on a button of the message."""
        _check_clickable(message, custom_id, user_id_of(user))
        data = {"custom_id": custom_id, "component_type": 2}
        dest, _ = self._destination(message.channel_id)
        return self._register(MESSAGE_COMPONENT, data, dest, user, message=message)

    def modal_submit(self, opener: InteractionRecord, values: dict[str, str]) -> InteractionRecord:
        """A MODAL_SUBMIT for the modal the bot opened in answer to `opener`."""
        if opener.modal is None:
            raise InvalidInteraction("the bot did not answer this interaction with a modal")
        components = _modal_answers(opener.modal.get("components") or [], values)
        data = {"custom_id": opener.modal.get("custom_id"), "components": components}
        dest, _ = self._destination(opener.channel_id)
        message = self.store.message(opener.source_message_id or 0)
        return self._register(MODAL_SUBMIT, data, dest, opener.user_id, message=message)

    # Common envelope -----------------------------------------------------------------------

    def _destination(self, channel: ChannelLike) -> tuple[Destination, FakeGuild]:
        channel_id = channel if isinstance(channel, int) else channel.id
        dest = self.store.destination(channel_id)
        if dest is None or dest.guild is None:
            raise InvalidInteraction(f"no guild channel {channel_id} (DMs are not modelled)")
        return dest, dest.guild

    def _register(
        self,
        kind: int,
        data: dict[str, Any],
        dest: Destination,
        user: UserLike,
        *,
        attachment_size_limit: int | None = None,
        message: StoredMessage | None = None,
    ) -> InteractionRecord:
        uid = user_id_of(user)
        account = self.store.world.find_user(uid)
        if account is None:
            raise InvalidInteraction(f"no user with id {uid}")
        interaction_id = self.store.ids.next()
        token = new_token(interaction_id)
        limit = attachment_size_limit or self.store.world.upload_limit_for(dest.guild)
        payload = {
            "id": str(interaction_id),
            "application_id": str(self.store.world.application_id),
            "type": kind,
            "data": data,
            "token": token,
            "version": 1,
            "locale": LOCALE,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": limit,
            **self._place(dest, account),
        }
        if message is not None:
            payload["message"] = self.store.message_payload(message)
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
        """Guild, channel, member, permissions and context of the interaction."""
        guild, channel = dest.guild, dest.channel
        assert guild is not None and channel is not None
        member = guild.member(account.id)
        if member is None:
            raise InvalidInteraction(f"user {account.id} is not a member of guild {guild.id}")
        member_perms = channel_permissions(guild, channel, account.id)
        bot_perms = channel_permissions(guild, channel, self.store.world.bot.id)
        return {
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": LOCALE, "features": []},
            "guild_locale": LOCALE,
            "channel_id": str(dest.channel_id),
            "channel": payloads.interaction_channel(guild, channel, account.id),
            "member": payloads.member(member, permissions=member_perms),
            "app_permissions": str(bot_perms),
            "context": CONTEXT_GUILD,
            "authorizing_integration_owners": {"0": str(guild.id)},
        }


def _check_visible(
    command: dict[str, Any], guild: FakeGuild, user_id: int, bypass_permissions: bool
) -> None:
    """Contexts and default_member_permissions decide whether the user sees the command."""
    contexts = command.get("contexts")
    if contexts is not None and CONTEXT_GUILD not in contexts:
        raise InvalidInteraction(f"/{command['name']} is not available in servers")
    required = command.get("default_member_permissions")
    if required is None or bypass_permissions:
        return
    perms = base_permissions(guild, user_id)
    if perms == ALL_PERMISSIONS:
        return  # owner and administrators see every command
    if int(required) == 0 or not has(perms, int(required)):
        raise InvalidInteraction(
            f"/{command['name']} is hidden from this member (default_member_permissions="
            f"{required}); pass bypass_permissions=True to model a server override"
        )


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


def _check_clickable(message: StoredMessage, custom_id: str, user_id: int) -> None:
    if message.deleted:
        raise InvalidInteraction(f"message {message.id} was deleted")
    if not message.visible_for(user_id):
        raise InvalidInteraction(f"user {user_id} cannot see message {message.id}")
    component = message.find_component(custom_id)
    if component is None:
        raise InvalidInteraction(
            f"no component {custom_id!r} on message {message.id} (has {message.custom_ids()})"
        )
    if component.get("type") != 2:
        raise InvalidInteraction(f"{custom_id!r} is not a button (the fake clicks only buttons)")
    if component.get("disabled"):
        raise InvalidInteraction(f"component {custom_id!r} is disabled")


def _modal_answers(components: list[dict[str, Any]], values: dict[str, str]) -> list[Any]:
    """Echo the modal's text inputs back with the user's values, in Discord's submit shape.

    discord.py 2.7.1 sends a bare TextInput inside an action row and a `ui.Label`'s inside a
    label (type 18); text displays (type 10) come back as they were.
    """
    answers: list[dict[str, Any]] = []
    for component in components:
        if component.get("type") == 1:
            row = [_answer(c, values) for c in component.get("components", [])]
            answers.append({"type": 1, "components": row})
        elif component.get("type") == LABEL:
            answer = _answer(component["component"], values)
            answers.append({"type": LABEL, "id": component.get("id", 0), "component": answer})
        elif component.get("type") == TEXT_DISPLAY:
            answers.append(dict(component))
    return answers


def _answer(component: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    custom_id = component.get("custom_id", "")
    if component.get("type") != TEXT_INPUT:
        raise InvalidInteraction(f"{custom_id!r}: the fake submits only text inputs in modals")
    # An input the test leaves out was left as the bot filled it; Discord sends its contents.
    value = values.get(custom_id, component.get("value") or "")
    if component.get("required", True) and not value:
        raise InvalidInteraction(f"modal input {custom_id!r} is required")
    if not component.get("min_length", 0) <= len(value) <= component.get("max_length", 4000):
        raise InvalidInteraction(f"modal input {custom_id!r}: Discord's client enforces its length")
    answer_id = component.get("id", 0)
    return {"type": TEXT_INPUT, "custom_id": custom_id, "id": answer_id, "value": value}
