"""The house rule: no module of the bot grows past 500 lines (split it by what it does)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MOST_LINES = 500
MODULES = sorted(
    path.relative_to(ROOT).as_posix()
    for folder in ("cogs", "services")
    for path in (ROOT / folder).rglob("*.py")
)


@pytest.mark.parametrize("module", MODULES)
def test_the_module_is_at_most_500_lines(module: str) -> None:
    lines = len((ROOT / module).read_text(encoding="utf-8").splitlines())
    assert lines <= MOST_LINES, f"{module} has {lines} lines"
