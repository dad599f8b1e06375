"""The configured Discord a test runs against: users, guilds, roles, channels, members, the bot.

Plain mutable dataclasses: a test builds a world (or takes `FakeWorld.default()`), and may change
it while the bot runs (revoke a permission, disable DMs); the fake reads it live on every request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .clock import SnowflakeFactory, iso_timestamp
from .permissions import DEFAULT_BOT_ROLE, DEFAULT_EVERYONE, Perm

_ids = SnowflakeFactory()

# Channel types (Discord's numbering).
GUILD_TEXT = 0
DM = 1
GUILD_VOICE = 2  # has its own text chat, where slash commands work
GUILD_ANNOUNCEMENT = 5
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
GUILD_STAGE_VOICE = 13
GUILD_FORUM = 15  # holds only threads (its posts)
THREAD_TYPES = (10, PUBLIC_THREAD, PRIVATE_THREAD)

# Upload limits per boost tier, as Discord and discord.py's Guild.filesize_limit state them.
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
_TIER_UPLOAD_LIMIT = {
    0: DEFAULT_UPLOAD_LIMIT,
    1: DEFAULT_UPLOAD_LIMIT,
    2: 50 * 1024 * 1024,
    3: 100 * 1024 * 1024,
}

# Privileged gateway intents and the application flags that enable them.
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_MESSAGE_CONTENT = 1 << 15
APP_FLAG_GATEWAY_PRESENCE = 1 << 12
APP_FLAG_GATEWAY_PRESENCE_LIMITED = 1 << 13
APP_FLAG_GATEWAY_GUILD_MEMBERS = 1 << 14
APP_FLAG_GATEWAY_GUILD_MEMBERS_LIMITED = 1 << 15
APP_FLAG_GATEWAY_MESSAGE_CONTENT = 1 << 18
APP_FLAG_GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19
APP_FLAG_APPLICATION_COMMAND_BADGE = 1 << 23


def new_id() -> int:
    """A fresh snowflake for configuration objects."""
    return _ids.next()


@dataclass
class FakeUser:
    """A Discord account: a member, the bot, or the application owner."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    accepts_dms: bool = True

    @property
    def mention(self) -> str:
        """How content mentions this user (`<@id>`)."""
        return f"<@{self.id}>"


@dataclass
class FakeRole:
    """A guild role; the @everyone role has the guild's id."""

    id: int
    name: str
    permissions: int = 0
    position: int = 0
    mentionable: bool = False
    managed: bool = False
    bot_id: int | None = None

    @property
    def mention(self) -> str:
        """How content mentions this role (`<@&id>`)."""
        return f"<@&{self.id}>"


@dataclass
class FakeOverwrite:
    """A channel permission overwrite; type 0 targets a role, 1 a member."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0


@dataclass
class FakeChannel:
    """A guild channel (text by default) with its permission overwrites."""

    id: int
    name: str
    guild_id: int
    type: int = GUILD_TEXT
    position: int = 0
    overwrites: list[FakeOverwrite] = field(default_factory=list)
    # Threads only: the channel (or forum) they belong to, and who started them.
    parent_id: int | None = None
    owner_id: int | None = None

    @property
    def mention(self) -> str:
        """How content mentions this channel (`<#id>`)."""
        return f"<#{self.id}>"

    @property
    def is_thread(self) -> bool:
        """A thread: permissions come from its parent, sending needs Send Messages in Threads."""
        return self.type in THREAD_TYPES

    def deny(self, target: FakeRole | FakeMember, permissions: int) -> None:
        """Add (or extend) an overwrite denying `permissions` to a role or member."""
        kind, target_id = (1, target.user.id) if isinstance(target, FakeMember) else (0, target.id)
        overwrite = next((o for o in self.overwrites if o.type == kind and o.id == target_id), None)
        if overwrite is None:
            overwrite = FakeOverwrite(id=target_id, type=kind)
            self.overwrites.append(overwrite)
        overwrite.deny |= permissions


@dataclass
class FakeMember:
    """A user's membership in one guild."""

    user: FakeUser
    roles: list[int] = field(default_factory=list)
    joined_at: str = field(default_factory=lambda: iso_timestamp(1_700_000_000.0))

    @property
    def id(self) -> int:
        """The member's user id."""
        return self.user.id

    @property
    def mention(self) -> str:
        """How content mentions this member (`<@id>`)."""
        return self.user.mention


@dataclass
class FakeGuild:
    """A server: roles (the first is @everyone), channels and members, including the bot."""

    id: int
    name: str
    owner_id: int
    roles: list[FakeRole] = field(default_factory=list)
    channels: list[FakeChannel] = field(default_factory=list)
    members: list[FakeMember] = field(default_factory=list)
    premium_tier: int = 0
    # Active threads: Discord lists them apart from channels (GUILD_CREATE's `threads`).
    threads: list[FakeChannel] = field(default_factory=list)

    @property
    def everyone_role(self) -> FakeRole:
        """The @everyone role, whose id is the guild id."""
        role = self.role(self.id)
        if role is None:
            raise LookupError(f"guild {self.id} has no @everyone role")
        return role

    @property
    def filesize_limit(self) -> int:
        """Upload limit for messages posted in this guild, by boost tier."""
        return _TIER_UPLOAD_LIMIT.get(self.premium_tier, DEFAULT_UPLOAD_LIMIT)

    def role(self, role_id: int) -> FakeRole | None:
        """The role with this id, if the guild has it."""
        return next((r for r in self.roles if r.id == role_id), None)

    def channel(self, channel_id: int) -> FakeChannel | None:
        """The channel (or active thread) with this id, if the guild has it."""
        return next((c for c in [*self.channels, *self.threads] if c.id == channel_id), None)

    def member(self, user_id: int) -> FakeMember | None:
        """The member with this user id, if they are in the guild."""
        return next((m for m in self.members if m.user.id == user_id), None)

    def add_role(self, name: str, permissions: int = 0, *, mentionable: bool = False) -> FakeRole:
        """Create a role above the existing ones."""
        role = FakeRole(
            id=new_id(),
            name=name,
            permissions=int(permissions),
            position=len(self.roles),
            mentionable=mentionable,
        )
        self.roles.append(role)
        return role

    def add_text_channel(self, name: str) -> FakeChannel:
        """Create a text channel."""
        channel = FakeChannel(id=new_id(), name=name, guild_id=self.id, position=len(self.channels))
        self.channels.append(channel)
        return channel

    def add_channel(self, name: str, kind: int) -> FakeChannel:
        """Create a channel of another type (GUILD_VOICE, GUILD_FORUM, ...)."""
        channel = self.add_text_channel(name)
        channel.type = kind
        return channel

    def add_thread(
        self,
        parent: FakeChannel,
        name: str,
        *,
        private: bool = False,
        owner: FakeMember | None = None,
    ) -> FakeChannel:
        """Start an active thread in ``parent`` (a text channel, or a forum for a post).

        Private threads are modelled as visible to whoever sees the parent: thread
        membership is not modelled.
        """
        if parent.is_thread or self.channel(parent.id) is not parent:
            raise ValueError("a thread's parent is a channel of this guild, not a thread")
        thread = FakeChannel(
            id=new_id(),
            name=name,
            guild_id=self.id,
            type=PRIVATE_THREAD if private else PUBLIC_THREAD,
            parent_id=parent.id,
            owner_id=owner.id if owner is not None else self.owner_id,
        )
        self.threads.append(thread)
        return thread

    def add_member(self, user: FakeUser | str, *, roles: Sequence[FakeRole] = ()) -> FakeMember:
        """Add a user (or a new user with this username) as a member."""
        if isinstance(user, str):
            user = FakeUser(id=new_id(), username=user, global_name=user.title())
        member = FakeMember(user=user, roles=[r.id for r in roles])
        self.members.append(member)
        return member


@dataclass
class FakeWorld:
    """Everything the fake serves: the bot, its application, and the guilds it is in."""

    bot: FakeUser
    owner: FakeUser
    application_id: int
    token: str = "fake-bot-token.not-a-secret"
    application_flags: int = (
        APP_FLAG_GATEWAY_PRESENCE
        | APP_FLAG_GATEWAY_GUILD_MEMBERS
        | APP_FLAG_GATEWAY_MESSAGE_CONTENT
        | APP_FLAG_APPLICATION_COMMAND_BADGE
    )
    guilds: list[FakeGuild] = field(default_factory=list)
    # Overrides every guild's tier-based limit when set (bytes per message, all files together).
    upload_limit: int | None = None

    @classmethod
    def default(cls) -> FakeWorld:
        """One guild, #general, a Moderator role (Manage Server), an owner, a mod and a member."""
        bot = FakeUser(id=new_id(), username="videobot", global_name="Video Bot", bot=True)
        owner = FakeUser(id=new_id(), username="operator", global_name="Operator")
        world = cls(bot=bot, owner=owner, application_id=bot.id)
        guild = world.add_guild("Test Guild")
        guild.add_text_channel("general")
        moderator = guild.add_role("Moderator", Perm.MANAGE_GUILD | Perm.MANAGE_MESSAGES)
        guild.add_member("mod", roles=[moderator])
        guild.add_member("alice")
        return world

    @property
    def guild(self) -> FakeGuild:
        """The first guild, for the common single-guild test."""
        return self.guilds[0]

    def add_guild(self, name: str, *, shard: tuple[int, int] | None = None) -> FakeGuild:
        """A guild owned by `owner`, with @everyone, the bot's managed role and the bot.

        ``shard=(id, count)`` picks an id whose shard is ``id`` of ``count`` (Discord's rule:
        ``(guild_id >> 22) % count``), by moving its timestamp a few milliseconds on.
        """
        guild_id = new_id()
        if shard is not None:
            wanted, count = shard
            guild_id += ((wanted - (guild_id >> 22) % count) % count) << 22
        guild = FakeGuild(id=guild_id, name=name, owner_id=self.owner.id)
        guild.roles.append(FakeRole(id=guild_id, name="@everyone", permissions=DEFAULT_EVERYONE))
        bot_role = guild.add_role(self.bot.username, DEFAULT_BOT_ROLE)
        bot_role.managed, bot_role.bot_id = True, self.bot.id
        guild.add_member(self.owner)
        guild.add_member(self.bot, roles=[bot_role])
        self.guilds.append(guild)
        return guild

    def find_guild(self, guild_id: int) -> FakeGuild | None:
        """The guild with this id, if the bot is in it."""
        return next((g for g in self.guilds if g.id == guild_id), None)

    def find_channel(self, channel_id: int) -> tuple[FakeGuild, FakeChannel] | None:
        """The guild channel with this id and its guild."""
        for guild in self.guilds:
            channel = guild.channel(channel_id)
            if channel is not None:
                return guild, channel
        return None

    def find_user(self, user_id: int) -> FakeUser | None:
        """Any known user: the bot, the owner, or a member of some guild."""
        for user in (self.bot, self.owner):
            if user.id == user_id:
                return user
        for guild in self.guilds:
            member = guild.member(user_id)
            if member is not None:
                return member.user
        return None

    def member_named(self, username: str) -> FakeMember:
        """A member of any guild by username, for readable tests (`world.member_named('alice')`)."""
        for guild in self.guilds:
            for member in guild.members:
                if member.user.username == username:
                    return member
        raise LookupError(f"no member named {username!r}")

    def upload_limit_for(self, guild: FakeGuild | None) -> int:
        """The per-message upload limit for channel messages in this guild (or a DM)."""
        if self.upload_limit is not None:
            return self.upload_limit
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
