"""Whether an MP4 file is whole: its top-level ISO-BMFF boxes account for every byte of it.

A download cut short without a ``Content-Length`` (the connection closed early) still
starts like an MP4; only walking the boxes shows that the last one runs past the end of
the file. Each top-level box opens with a 32-bit big-endian size (the header included) and
a four-character type; size 1 means a 64-bit ``largesize`` follows the type, and size 0
means "to the end of the file" (allowed for the last box only, by construction).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

_HEADER = 8
_LARGE_HEADER = 16
_SIZE_TO_END = 0
_SIZE_IS_LARGE = 1
# Without these a player has no index (moov) or no frames (mdat): nothing it could show.
REQUIRED_BOXES = (b"moov", b"mdat")

# A whole clip has a handful of top-level boxes (even a fragmented one, a few per second).
MAX_TOP_LEVEL_BOXES = 4096


def structure_problem(path: Path) -> str | None:
    """What makes the file at ``path`` not a whole MP4, in words; None when its boxes add up.

    Only the box headers are read (a seek per top-level box), so a large clip costs
    no more than a small one. Blocking file I/O: call it off the event loop.
    """
    with open(path, "rb") as file:
        total = file.seek(0, 2)
        return _walk(file, total)


def _walk(file: BinaryIO, total: int) -> str | None:
    seen: set[bytes] = set()
    offset = 0
    boxes = 0
    while offset < total:
        boxes += 1
        if boxes > MAX_TOP_LEVEL_BOXES:
            # A clip has a handful; millions of tiny boxes would only keep the walk busy.
            return f"more than {MAX_TOP_LEVEL_BOXES} top-level boxes"
        box = _box_at(file, offset, total - offset)
        if isinstance(box, str):
            return box
        kind, size = box
        seen.add(kind)
        offset += size
    missing = [_name(kind) for kind in REQUIRED_BOXES if kind not in seen]
    if missing:
        return f"no {' or '.join(missing)} box"
    return None


def _box_at(file: BinaryIO, offset: int, left: int) -> tuple[bytes, int] | str:
    """The type and whole size of the box at ``offset``, or what is wrong with it."""
    if left < _HEADER:
        return f"{left} stray bytes after the last box, at offset {offset}"
    file.seek(offset)
    size, kind = struct.unpack(">I4s", file.read(_HEADER))
    name = _name(kind)
    if not _is_box_type(kind):
        return f"no box header at offset {offset} (type bytes {kind.hex()})"
    header = _HEADER
    if size == _SIZE_IS_LARGE:
        if left < _LARGE_HEADER:
            return f"box {name} at offset {offset} is cut off inside its 64-bit size"
        (size,) = struct.unpack(">Q", file.read(8))
        header = _LARGE_HEADER
    elif size == _SIZE_TO_END:
        size = left
    if size < header:
        return f"box {name} at offset {offset} claims {size} bytes, less than its header"
    if size > left:
        return (
            f"box {name} at offset {offset} needs {size} bytes but only {left} remain "
            "(the file is cut short)"
        )
    return kind, size


def _is_box_type(kind: bytes) -> bool:
    """Top-level box types are four printable ASCII characters (ftyp, moov, mdat, uuid...)."""
    return all(0x20 <= byte < 0x7F for byte in kind)


def _name(kind: bytes) -> str:
    return repr(kind.decode("latin-1"))
