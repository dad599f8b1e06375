"""The job store keeps no dead queries: each public method has a caller outside storage.

A query nobody calls still has to be kept right through every migration, and it reads as
if something depended on it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "services" / "storage" / "jobs.py"


def public_methods() -> list[str]:
    tree = ast.parse(STORE.read_text(encoding="utf-8"))
    (store,) = (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "JobStore")
    return [
        node.name
        for node in store.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and not node.name.startswith("_")
    ]


def test_every_public_job_store_method_is_called_outside_storage() -> None:
    callers = "\n".join(
        path.read_text(encoding="utf-8")
        for folder in ("services", "cogs")
        for path in (ROOT / folder).rglob("*.py")
        if "storage" not in path.relative_to(ROOT).parts
    )
    unused = [name for name in public_methods() if not re.search(rf"\.{name}\b", callers)]
    assert unused == []
