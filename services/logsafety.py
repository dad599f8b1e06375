"""No token or key in any log line: quiet the loggers that dump payloads, blank what slips past.

Our own code never logs tokens, keys or prompts. Libraries would, at DEBUG: discord.py's
gateway logs every event it receives (an INTERACTION_CREATE carries the interaction's
token and the member's prompt), its HTTP client every request body (the progress card
shows the prompt), and aiosqlite every statement with its parameters (the jobs table
stores interaction tokens). ``quiet_payload_loggers`` keeps them at INFO even when the bot runs
at DEBUG. ``RedactSecrets`` is the second line of defence, for whatever else a library
prints: the configured secrets, tokens in webhook and interaction URLs, any ``token``
field of a JSON or Python payload, and any interaction token by its shape.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "[redacted]"

# Loggers whose DEBUG output is whole payloads: gateway events, SQL parameters, and every
# REST request and answer (message bodies hold members' prompts; tokens ride in URLs).
# Their warnings (rate limits, reconnects) still come through.
PAYLOAD_LOGGERS = ("discord.gateway", "discord.http", "aiosqlite")

# Interaction and webhook tokens travel in URL paths:
# /webhooks/<id>/<token> and /interactions/<id>/<token>.
_TOKEN_IN_PATH = re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.\-]{20,}")
# A quoted value under any key ending in "token": JSON ("token": "..."), a Python repr
# ('token': '...', interaction_token='...'), a form or query (token=...).
_QUOTED_TOKEN_FIELD = re.compile(
    r"""(?P<key>\b\w*token["']?\s*[:=]\s*)(?P<quote>["'])(?P<value>(?:(?!(?P=quote)).)+)(?P=quote)""",
    re.IGNORECASE,
)
_BARE_TOKEN_FIELD = re.compile(r"(?P<key>\b\w*token=)(?P<value>[^\s&,;'\")]{8,})", re.IGNORECASE)
# Discord's interaction tokens are base64url of "interaction:<id>:...": "aW50ZXJhY3Rpb246".
_INTERACTION_TOKEN = re.compile(r"aW50ZXJhY3Rpb246[A-Za-z0-9_\-]*=*")
# Any other opaque run this long (base64url, no separators) is a credential, not prose.
_LONG_OPAQUE = re.compile(r"(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]{100,}(?![A-Za-z0-9_\-])")


def quiet_payload_loggers() -> None:
    """Keep the payload-dumping loggers at INFO or above, whatever the root level is."""
    level = max(logging.INFO, logging.getLogger().level)
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(level)


class RedactSecrets(logging.Filter):
    """Blanks secrets in a record's message and traceback before any handler writes it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Short values would blank innocent text; real tokens and keys are long.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _TOKEN_IN_PATH.sub(lambda m: m.group(1) + REDACTED, text)
        text = _QUOTED_TOKEN_FIELD.sub(
            lambda m: f"{m['key']}{m['quote']}{REDACTED}{m['quote']}", text
        )
        text = _BARE_TOKEN_FIELD.sub(lambda m: m["key"] + REDACTED, text)
        text = _INTERACTION_TOKEN.sub(REDACTED, text)
        return _LONG_OPAQUE.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, redacted, so the handler prints the clean copy.
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install(secrets: Iterable[str]) -> RedactSecrets:
    """Attach the filter to every root handler, so all loggers' output passes through it."""
    redactor = RedactSecrets(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    return redactor
