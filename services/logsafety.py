"""A logging filter that blanks secrets, wherever a library might print them.

Our own code never logs tokens or keys; this is the second line of defence for
library debug output (for example request URLs that embed an interaction token).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

# Interaction and webhook tokens travel in URL paths:
# /webhooks/<id>/<token> and /interactions/<id>/<token>.
_TOKEN_IN_PATH = re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.\-]{20,}")
REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Short values would blank innocent text; real tokens and keys are long.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return _TOKEN_IN_PATH.sub(lambda m: m.group(1) + REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, redacted, so the handler prints the clean copy.
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install(secrets: Iterable[str]) -> RedactSecrets:
    """Attach the filter to every root handler, so all loggers' output passes through it."""
    redactor = RedactSecrets(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    return redactor
