"""Custom ids for job buttons, signed with this database's own secret.

A button carries its job's row id (``vjob:<action>:<id>:<signature>``). Row ids restart
at 1 with a new database, so an old message's Delete could otherwise act on another
member's new clip. The signature is an HMAC of the action and id under a random secret
kept in the database: a button from another database never verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_KEY = "button_secret"
_SIGNATURE_BYTES = 9  # 12 characters: far beyond guessing, well inside Discord's 100


def new_secret() -> str:
    return secrets.token_hex(32)


class CustomIds:
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def __repr__(self) -> str:
        return "CustomIds(<secret>)"

    def make(self, action: str, job_id: int) -> str:
        return f"vjob:{action}:{job_id}:{self._sign(action, job_id)}"

    def verify(self, action: str, job_id: int, signature: str | None) -> bool:
        """Whether ``signature`` is this database's for the action and job."""
        if not signature:
            return False
        return hmac.compare_digest(signature, self._sign(action, job_id))

    def _sign(self, action: str, job_id: int) -> str:
        digest = hmac.new(self._secret, f"{action}:{job_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:_SIGNATURE_BYTES]).decode()
