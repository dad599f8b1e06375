"""`python bot.py doctor`, the part that speaks Discord: the token, every server, the commands.

It logs in with the bot's own intents and reads; it answers no interaction and changes
nothing (a plain ``discord.Client`` has no command tree, so a member's /video still goes
to the running bot). The checks without Discord and the checklist are ``services.doctor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from typing import Any

import aiohttp
import discord
import dotenv
from discord.ext import commands

from cogs.startup import quiet_voice_warnings
from cogs.sync import command_payload, schema_key
from cogs.tree import VideoBotTree
from cogs.videobot import EXTENSIONS, intents
from services import logsafety
from services.doctor import Check, describe_error, diagnose, exit_code, render, sync_was_recorded
from services.settings import Settings

READY_TIMEOUT = 30.0  # login, gateway and every server's GUILD_CREATE
# One REST call (login, the commands list): Discord accepting the connection but never
# answering would otherwise hold the doctor for aiohttp's five minutes.
REQUEST_TIMEOUT = 20.0
CHANNELS_SHOWN = 5  # per missing permission; the rest are counted
# What the bot needs where /video is used: see the clip's post, the progress message's
# embed, the MP4, and its own earlier posts (to not post a clip twice after a restart).
NEEDED = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("embed_links", "Embed Links"),
    ("attach_files", "Attach Files"),
    ("read_message_history", "Read Message History"),
    ("send_messages_in_threads", "Send Messages in Threads"),  # /video inside a thread
)
# Without View Channel Discord grants nothing else there, and without Send Messages no
# embed or file either: name only the permission that is the cause.
_NEEDS_SEND = frozenset({"embed_links", "attach_files"})
SYNC_FIX = "run `python bot.py sync` (it syncs the commands, then runs the bot)"
TOKEN_FIX = "copy the bot token again from the developer portal (Bot > Reset Token)"


async def run_doctor(*, simulate: bool | None) -> int:
    """Print the checklist to stdout; 0 only when all is well."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    token, key = os.environ.get("DISCORD_TOKEN", ""), os.environ.get("SEGMIND_API_KEY", "")
    logsafety.install([token.strip(), key.strip()])
    env_file_found = bool(dotenv.find_dotenv(usecwd=True))
    checks = await diagnose(
        os.environ, simulate=simulate, discord_checks=check_discord, env_file_found=env_file_found
    )
    print(render(checks))
    sys.stdout.flush()
    return exit_code(checks)


async def check_discord(
    settings: Settings, *, ready_timeout: float = READY_TIMEOUT, guild_ready_timeout: float = 2.0
) -> list[Check]:
    """Log in, wait for every server, read permissions and commands, log out."""
    quiet_voice_warnings()
    client = discord.Client(intents=intents(), guild_ready_timeout=guild_ready_timeout)
    async with client:  # closes the session whatever happens below
        try:
            await asyncio.wait_for(client.login(settings.discord_token), REQUEST_TIMEOUT)
        except discord.LoginFailure:
            return [Check.problem("Discord token", "rejected by Discord", TOKEN_FIX)]
        except (aiohttp.ClientError, OSError, TimeoutError, discord.HTTPException) as error:
            return [_unreachable(error)]
        except ValueError:  # aiohttp refuses a header value with a control character in it
            return [
                Check.problem(
                    "Discord token",
                    "DISCORD_TOKEN contains an invisible character: paste it again",
                    TOKEN_FIX,
                )
            ]
        return await _connected_checks(client, settings, ready_timeout)


async def _connected_checks(
    client: discord.Client, settings: Settings, ready_timeout: float
) -> list[Check]:
    user = client.user
    token = Check.ok("Discord token", f"logged in as {user} (id {user.id if user else '?'})")
    connection = asyncio.create_task(client.connect(reconnect=False))
    ready = asyncio.create_task(client.wait_until_ready())
    try:
        await asyncio.wait(
            {connection, ready}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if not ready.done():
            return [token, _gateway_problem(connection, ready_timeout)]
        checks = [token]
        if not client.guilds:
            checks.append(
                Check.warning(
                    "Servers",
                    "the bot is in no server yet",
                    f"invite it: {invite_url(client)}",
                )
            )
        checks.extend(check_guild(guild, settings) for guild in client.guilds)
        checks.append(await check_commands(client, settings))
        return checks
    finally:
        ready.cancel()
        await client.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await connection


def _gateway_problem(connection: asyncio.Task[None], waited: float) -> Check:
    error = connection.exception() if connection.done() and not connection.cancelled() else None
    if isinstance(error, discord.PrivilegedIntentsRequired):
        return Check.problem(
            "Discord gateway",
            "Discord refused the gateway intents this bot asks for",
            "enable them in the developer portal (Bot > Privileged Gateway Intents)",
        )
    if error is not None:
        return Check.problem(
            "Discord gateway",
            f"the connection failed: {describe_error(error)}",
            "check the network and Discord's status page, then run the doctor again",
        )
    return Check.problem(
        "Discord gateway",
        f"logged in, but the gateway was not ready within {waited:g} s",
        "check the network and Discord's status page, then run the doctor again",
    )


def _unreachable(error: BaseException) -> Check:
    return Check.problem(
        "Discord token",
        f"Discord could not be reached to check it: {describe_error(error)}",
        "check the network and Discord's status page, then run the doctor again",
    )


def invite_url(client: discord.Client) -> str:
    """The invite link with the scopes and the permissions the bot needs."""
    permissions = discord.Permissions(**{flag: True for flag, _ in NEEDED})
    app_id = client.application_id or 0
    return discord.utils.oauth_url(
        app_id, permissions=permissions, scopes=("bot", "applications.commands")
    )


# --- servers and their channels ------------------------------------------------------------


def video_channels(guild: discord.Guild) -> list[discord.TextChannel]:
    """Text channels where members can run /video: some member role may view and use commands.

    Discord does not say which roles are meant to use the bot, so any role but a bot's
    own counts (a role-gated server lets @Member in where @everyone is kept out). Read-only
    channels such as #rules, where nobody may use commands, are left out, and so are
    administrator roles, which see every staff room by rank rather than by invitation.
    Threads take their parent's permissions, so checking the parents covers them.
    """
    member_roles = [
        role
        for role in guild.roles
        if not role.is_bot_managed() and not role.permissions.administrator
    ]
    return [
        channel
        for channel in guild.text_channels
        if any(_can_use_commands(channel.permissions_for(role)) for role in member_roles)
    ]


def _can_use_commands(permissions: discord.Permissions) -> bool:
    return permissions.view_channel and permissions.use_application_commands


def missing_permissions(permissions: discord.Permissions) -> list[tuple[str, str]]:
    """What the bot lacks in a channel, the cause only (no View Channel says it all)."""
    if not permissions.view_channel:
        return [("view_channel", "View Channel")]
    lacking = [(flag, label) for flag, label in NEEDED if not getattr(permissions, flag)]
    if not permissions.send_messages:
        lacking = [(flag, label) for flag, label in lacking if flag not in _NEEDS_SEND]
    return lacking


def check_guild(guild: discord.Guild, settings: Settings) -> Check:
    """One line per server: the permissions the bot lacks, grouped by permission."""
    name = f'Server "{guild.name}" ({guild.id})'
    if not settings.allows_guild(guild.id):
        return Check.warning(
            name,
            "not on ALLOWED_GUILDS: the bot leaves this server when it starts",
            f"add {guild.id} to ALLOWED_GUILDS to serve it",
        )
    channels = video_channels(guild)
    if not channels:
        return Check.warning(
            name,
            "no text channel where members may use commands, so /video works nowhere",
            "let a member role view the channel for /video and Use Application Commands there",
        )
    missing: dict[tuple[str, str], list[discord.TextChannel]] = {}
    for channel in channels:
        for needed in missing_permissions(channel.permissions_for(guild.me)):
            missing.setdefault(needed, []).append(channel)
    if not missing:
        return Check.ok(name, f"every permission /video needs, in {_count_channels(channels)}")
    detail = "; ".join(
        f"no {label} in {_channel_list(lacking)}" for (_, label), lacking in missing.items()
    )
    return Check.problem(name, detail, _permission_fix(guild, missing))


def _permission_fix(
    guild: discord.Guild, missing: dict[tuple[str, str], list[discord.TextChannel]]
) -> str:
    """Where to give each permission: the role, the channels that deny it, or the bot's own deny.

    A channel overwrite for the bot member wins over every role, so allowing the role there
    would change nothing: that deny has to go.
    """
    me, role = guild.me, guild.self_role
    who = f"the bot's role @{role.name}" if role is not None else f"the bot (@{me.name})"
    server_wide = me.guild_permissions
    on_role = [label for flag, label in missing if not getattr(server_wide, flag)]
    parts = []
    if on_role:
        if role is not None:
            parts.append(f"give {who} {_and(on_role)} in Server Settings > Roles")
        else:  # no role of its own to edit
            parts.append(f"give the bot a role with {_and(on_role)} (Server Settings > Roles)")
    for (flag, label), lacking in missing.items():
        denied_to_me = [c for c in lacking if getattr(c.overwrites_for(me), flag) is False]
        if denied_to_me:
            parts.append(
                f"remove the deny of {label} for the bot member (@{me.name}) in "
                f"{_channel_list(denied_to_me)} (Edit Channel > Permissions)"
            )
        by_roles = [c for c in lacking if c not in denied_to_me]
        if by_roles and getattr(server_wide, flag):  # a role has it; these channels take it
            parts.append(
                f"allow {label} for {who} in {_channel_list(by_roles)} (Edit Channel > Permissions)"
            )
    return "; ".join(parts)


def _channel_list(channels: list[discord.TextChannel]) -> str:
    shown = ", ".join(f"#{channel.name}" for channel in channels[:CHANNELS_SHOWN])
    more = len(channels) - CHANNELS_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _count_channels(channels: list[Any]) -> str:
    return "1 channel" if len(channels) == 1 else f"{len(channels)} channels"


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# --- commands ------------------------------------------------------------------------------


class _CommandReader(commands.Bot):
    """Loads the bot's extensions only to read their slash commands; never logs in.

    ``add_cog`` puts the cog's commands on the tree as discord.py's own does, but starts
    nothing (no ``cog_load``, no listeners), so no services are needed.
    """

    async def add_cog(self, cog: commands.Cog, /, **_: Any) -> None:
        group = cog.app_command
        for command in [group] if group is not None else cog.get_app_commands():
            self.tree.add_command(command)


async def own_commands() -> list[dict[str, Any]]:
    """The payload `bot.py sync` would send, as cogs.sync builds it."""
    reader = _CommandReader(
        command_prefix=commands.when_mentioned, intents=intents(), tree_cls=VideoBotTree
    )
    for extension in EXTENSIONS:
        await reader.load_extension(extension)
    return command_payload(reader.tree)


async def check_commands(client: discord.Client, settings: Settings) -> Check:
    """Whether Discord holds the commands this bot would sync, where it would sync them."""
    guild_id = settings.discord_guild_id
    where = f"to server {guild_id}" if guild_id else "globally"
    app_id = client.application_id
    try:
        if guild_id:
            listing = client.http.get_guild_commands(app_id, guild_id)  # type: ignore[arg-type]
        else:
            listing = client.http.get_global_commands(app_id)  # type: ignore[arg-type]
        stored = await asyncio.wait_for(listing, REQUEST_TIMEOUT)
    except discord.Forbidden:
        return Check.problem(
            "Commands",
            f"DISCORD_GUILD_ID={guild_id}: the bot is not in that server, or was invited "
            "without the applications.commands scope",
            f"invite it with this link: {invite_url(client)}",
        )
    except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as error:
        return Check.problem(
            "Commands",
            f"Discord did not list the commands: {describe_error(error)}",
            "run the doctor again in a minute",
        )
    expected = {command["name"]: canonical_command(command) for command in await own_commands()}
    found = {str(command["name"]): canonical_command(dict(command)) for command in stored}
    if found == expected:
        names = ", ".join(f"/{name}" for name in sorted(expected))
        return Check.ok("Commands", f"{names} synced {where}")
    key = schema_key(app_id, guild_id)
    if not await sync_was_recorded(settings, key):
        return Check.warning(
            "Commands",
            f"not synced {where} yet: the bot syncs them at its first start",
        )
    return Check.problem(
        "Commands", f"not synced {where}: {_differences(expected, found)}", SYNC_FIX
    )


def _differences(expected: dict[str, Any], found: dict[str, Any]) -> str:
    parts = []
    absent = sorted(set(expected) - set(found))
    changed = sorted(name for name in set(expected) & set(found) if expected[name] != found[name])
    extra = sorted(set(found) - set(expected))
    if absent:
        parts.append("Discord lacks " + ", ".join(f"/{name}" for name in absent))
    if changed:
        parts.append("Discord has an older " + ", ".join(f"/{name}" for name in changed))
    if extra:
        parts.append("Discord still has " + ", ".join(f"/{name}" for name in extra))
    return "; ".join(parts)


# What Discord keeps of a command and its options, with its defaults filled in: Discord
# answers with ids and versions, leaves out `required: false` and empty lists, and writes
# permissions as a string, none of which is a difference.
_COMMAND_DEFAULTS: dict[str, Any] = {
    "type": 1,
    "description": "",
    "default_member_permissions": None,
    "nsfw": False,
    "contexts": None,
    "integration_types": [0],
    "options": [],
}
_OPTION_DEFAULTS: dict[str, Any] = {
    "type": None,
    "description": "",
    "required": False,
    "autocomplete": False,
    "choices": [],
    "channel_types": [],
    "min_value": None,
    "max_value": None,
    "min_length": None,
    "max_length": None,
    "options": [],
}
_LOCALIZED = ("name_localizations", "description_localizations")


def canonical_command(command: dict[str, Any]) -> dict[str, Any]:
    """A command as comparable data: only what Discord keeps, defaults made explicit."""
    shown = _canonical(command, _COMMAND_DEFAULTS)
    permissions = shown["default_member_permissions"]
    shown["default_member_permissions"] = None if permissions is None else str(permissions)
    return shown


def _canonical(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {"name": data.get("name")}
    for key, default in defaults.items():
        value = data.get(key)
        shown[key] = default if value is None else value
    for key in _LOCALIZED:
        shown[key] = data.get(key) or {}
    shown["options"] = [_canonical(option, _OPTION_DEFAULTS) for option in shown["options"]]
    if shown.get("min_length") == 0:  # Discord may leave out a minimum of 0
        shown["min_length"] = None
    for key in ("min_value", "max_value"):
        if shown.get(key) is not None:
            shown[key] = float(shown[key])
    if shown.get("contexts") is not None:
        shown["contexts"] = sorted(shown["contexts"])
    return shown
