"""Which code is running, for the start-up line and the doctor: the git commit, when known.

Read from the files under .git rather than by running git, which a host may not have.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNKNOWN = "unknown"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, ValueError):  # ValueError: not text (a damaged checkout)
        return None


def commit(root: Path = ROOT) -> str:
    """The checked-out commit's short id, or ``unknown`` outside a git checkout."""
    git = root / ".git"
    head = _read(git / "HEAD")
    if head is None:
        return UNKNOWN
    if not head.startswith("ref: "):
        return head[:12]  # a detached checkout names the commit itself
    ref = head.removeprefix("ref: ")
    loose = _read(git / ref)
    if loose:
        return loose[:12]
    for line in (_read(git / "packed-refs") or "").splitlines():
        sha, _, name = line.partition(" ")
        if name == ref:
            return sha[:12]
    return UNKNOWN
