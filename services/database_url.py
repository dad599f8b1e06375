"""DATABASE_URL: a SQLite file for one process, or a PostgreSQL server for several."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
HINT = (
    "use sqlite:///relative/path, sqlite:////absolute/path, "
    "or postgresql://user:password@host:port/database"
)


def database_path_from_url(url: str) -> Path:
    """`sqlite:///relative/path` or `sqlite:////absolute/path`, as SQLAlchemy writes them.

    Only a file path: an in-memory database or URL options would silently lose jobs, and a
    path ending in / or naming a directory cannot be the database file.
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError("use sqlite:///relative/path or sqlite:////absolute/path")
    text = url[len(prefix) :]
    if text.endswith("/") or "?" in text or text == ":memory:" or Path(text).is_dir():
        raise ValueError("the path must name a database file")
    return Path(text)


def is_postgres(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def postgres_url(url: str) -> str:
    """A postgresql:// URL that names a server and a database (checked, not connected to).

    A missing database name would make the driver use the user's name: the bot would
    quietly fill whichever database that is.
    """
    if not is_postgres(url):
        raise ValueError("not a postgresql:// URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        # Not urllib's words: they quote the URL's text, which may be part of a password.
        raise ValueError("not a valid URL (is a password's / # ? @ written %-encoded?)") from None
    if any(char.isspace() for char in url):
        raise ValueError("a URL holds no spaces")
    if not parts.path.strip("/") or "/" in parts.path.strip("/"):
        raise ValueError("name one database after the host: postgresql://host/database")
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError("name the server: postgresql://user:password@host/database")
    return url


def database_from_url(url: str) -> tuple[Path | None, str | None]:
    """(SQLite file, None) or (None, PostgreSQL URL)."""
    if is_postgres(url):
        return None, postgres_url(url)
    return database_path_from_url(url), None
