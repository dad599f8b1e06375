"""Where Segmind's API key may be sent: the configured base URL's origin, and nowhere else.

Segmind's answers carry links (``status_url``, ``response_url``); a link to another origin
(a proxy that rewrote it, a hostile answer) must never receive the key, so such links are
replaced by the documented paths on the configured origin. ``services.segmind`` makes
every keyed request through these URLs.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from yarl import URL

from services.models import Submission

# Its lines tell of the client's requests, so they keep its logger's name.
log = logging.getLogger("services.segmind")


class ApiOrigin:
    """The API's base URL and the origin (scheme, host, port) the key belongs to."""

    def __init__(self, base_url: str) -> None:
        self._base = _api_root(base_url)
        self._origin = _origin_of(self._base)

    @property
    def base(self) -> str:
        return str(self._base)

    @property
    def display(self) -> str:
        """The base URL as logs and the doctor show it: without a proxy's user and password."""
        return str(self._base.with_user(None))

    def submit_url(self, model: str) -> str:
        return f"{self._base}/v2/{quote(model, safe='')}"

    def status_url(self, submission: Submission) -> str:
        fallback = f"{self._base}/v2/requests/{quote(submission.request_id, safe='')}/status"
        return self._own_url(submission.status_url, fallback)

    def result_url(self, submission: Submission) -> str:
        fallback = f"{self._base}/v2/requests/{quote(submission.request_id, safe='')}"
        return self._own_url(submission.response_url, fallback)

    def holds(self, url: str) -> bool:
        """Whether ``url`` (absolute, or relative to the base) is on the API's origin."""
        return self._resolve_own(url) is not None

    def _own_url(self, given: str, fallback: str) -> str:
        """``given`` when it is on the API origin (the key may go there), else ``fallback``."""
        resolved = self._resolve_own(given)
        if resolved is None:
            log.debug("segmind link to another origin ignored; using the documented path")
            return fallback
        return resolved

    def _resolve_own(self, url: str) -> str | None:
        try:
            resolved = self._base.join(URL(url))
        except (ValueError, TypeError):
            return None
        if _origin_of(resolved) != self._origin or resolved.path in ("", "/"):
            return None
        return str(resolved)


def _api_root(base_url: str) -> URL:
    """The base URL without a trailing slash or version segment (``/v1`` as in Segmind's docs)."""
    text = base_url.strip().rstrip("/")
    if text.endswith(("/v1", "/v2")):
        text = text[:-3]
    url = URL(text)
    if url.scheme not in ("http", "https") or not url.host or url.query_string or url.fragment:
        raise ValueError("base_url must be an absolute http(s) URL without query or fragment")
    return url


def _origin_of(url: URL) -> tuple[str, str, int | None]:
    """Scheme, host and effective port: what decides where the key may be sent."""
    return (url.scheme.lower(), (url.host or "").lower(), url.port)
