"""Discord's JSON error codes the bot reacts to, and the interaction token's lifetime, in one place.

The codes are Discord's own (https://discord.com/developers/docs/topics/opcodes-and-status-codes);
naming them once keeps every route deciding the same way about the same answer.
"""

from __future__ import annotations

import aiohttp
import discord

UNKNOWN_MESSAGE = 10008  # deleted, or not the webhook's own message
UNKNOWN_INTERACTION = 10062  # the interaction's 3 s (or its token's 15 min) have passed
ENTITY_TOO_LARGE = 40005  # an upload over the limit
ALREADY_ACKNOWLEDGED = 40060  # a second initial response to one interaction
MISSING_ACCESS = 50001  # the bot cannot see the server or channel
MISSING_PERMISSIONS = 50013  # the bot lacks a permission in the channel
INVALID_WEBHOOK_TOKEN = 50027  # an interaction token past its 15 minutes

# What a call to Discord may raise: discord.py passes connection errors through untouched.
DISCORD_UNREACHABLE = (discord.HTTPException, aiohttp.ClientError, OSError)

TOKEN_LIFETIME = 15 * 60
# Switch to channel messages a little before Discord's limit, to avoid racing it.
TOKEN_MARGIN = 60


def token_expired(error: discord.HTTPException) -> bool:
    """Whether Discord refused because the interaction's token no longer works."""
    return error.code in (UNKNOWN_INTERACTION, INVALID_WEBHOOK_TOKEN) or error.status == 401


def is_transient(error: discord.HTTPException) -> bool:
    """Discord's own trouble (5xx, 429): the same request may well work later."""
    return error.status >= 500 or error.status == 429


def upload_refused(error: discord.HTTPException) -> bool:
    """413 (too large), or no Attach Files permission: a link may still work."""
    return error.status == 413 or error.code in (ENTITY_TOO_LARGE, MISSING_PERMISSIONS)
