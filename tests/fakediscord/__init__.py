"""A fake Discord (REST + gateway on 127.0.0.1) for whole-bot tests with the real discord.py.

Start with `FakeDiscord`, aim discord.py at it with `point_discord_py_at`, run the bot with
`running_client`, then dispatch interactions and assert on calls, messages and pings.
See README.md in this directory.
"""

from .dispatch import InvalidInteraction
from .errors import DiscordError
from .fake import FakeDiscord
from .faults import Fault
from .permissions import Perm
from .records import (
    AcknowledgementMissed,
    FakeTimeout,
    InteractionRecord,
    RecordedCall,
    StoredAttachment,
    StoredMessage,
    UploadedFile,
)
from .seams import point_discord_py_at, running_client
from .world import FakeChannel, FakeGuild, FakeMember, FakeOverwrite, FakeRole, FakeUser, FakeWorld

__all__ = [
    "AcknowledgementMissed",
    "DiscordError",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMember",
    "FakeOverwrite",
    "FakeRole",
    "FakeTimeout",
    "FakeUser",
    "FakeWorld",
    "Fault",
    "InteractionRecord",
    "InvalidInteraction",
    "Perm",
    "RecordedCall",
    "StoredAttachment",
    "StoredMessage",
    "UploadedFile",
    "point_discord_py_at",
    "running_client",
]
