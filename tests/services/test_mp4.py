"""Whether an MP4 is whole, from its top-level boxes: the sample clip, cut copies, odd sizes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from services.mp4 import structure_problem
from services.simulator import DEFAULT_VIDEO_PATH

SAMPLE = DEFAULT_VIDEO_PATH.read_bytes()


def boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """The sample's top-level boxes as (type, whole box); it uses only 32-bit sizes."""
    found = []
    offset = 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        found.append((kind, data[offset : offset + size]))
        offset += size
    return found


SAMPLE_BOXES = boxes(SAMPLE)
MDAT = next(box for kind, box in SAMPLE_BOXES if kind == b"mdat")
BEFORE_MDAT = SAMPLE[: SAMPLE.index(MDAT)]


def written(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    return path


def test_the_sample_clip_is_whole(tmp_path: Path) -> None:
    assert [kind for kind, _ in SAMPLE_BOXES] == [b"ftyp", b"moov", b"free", b"mdat"]
    assert structure_problem(written(tmp_path, SAMPLE)) is None


@pytest.mark.parametrize(
    "keep",
    [
        9,
        31,
        32 + 100,
        len(BEFORE_MDAT) + 4,
        len(BEFORE_MDAT) + 8,
        len(SAMPLE) // 2,
        len(SAMPLE) - 1,
    ],
    ids=[
        "inside ftyp",
        "ftyp short by one byte",
        "inside moov",
        "inside the mdat header",
        "just the mdat header",
        "half",
        "all but the last byte",
    ],
)
def test_a_copy_cut_short_anywhere_is_not_whole(tmp_path: Path, keep: int) -> None:
    problem = structure_problem(written(tmp_path, SAMPLE[:keep]))

    assert problem is not None


def test_the_problem_says_which_box_runs_past_the_end(tmp_path: Path) -> None:
    problem = structure_problem(written(tmp_path, SAMPLE[:20_000]))

    assert problem == (
        f"box 'mdat' at offset {len(BEFORE_MDAT)} needs {len(MDAT)} bytes but only "
        f"{20_000 - len(BEFORE_MDAT)} remain (the file is cut short)"
    )


def test_a_64_bit_largesize_box_is_read(tmp_path: Path) -> None:
    payload = MDAT[8:]
    large_mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + len(payload)) + payload

    assert structure_problem(written(tmp_path, BEFORE_MDAT + large_mdat)) is None
    assert structure_problem(written(tmp_path, BEFORE_MDAT + large_mdat[:-1])) is not None
    # Cut inside the 64-bit size itself.
    assert "64-bit size" in (
        structure_problem(written(tmp_path, BEFORE_MDAT + large_mdat[:12])) or ""
    )


def test_a_largesize_claiming_more_than_the_file_is_cut_short(tmp_path: Path) -> None:
    payload = MDAT[8:]
    lying = struct.pack(">I4sQ", 1, b"mdat", 2**40) + payload

    assert "cut short" in (structure_problem(written(tmp_path, BEFORE_MDAT + lying)) or "")


def test_size_zero_means_the_last_box_runs_to_the_end_of_the_file(tmp_path: Path) -> None:
    to_the_end = struct.pack(">I4s", 0, b"mdat") + MDAT[8:]

    assert structure_problem(written(tmp_path, BEFORE_MDAT + to_the_end)) is None


def test_a_box_smaller_than_its_own_header_is_refused(tmp_path: Path) -> None:
    bogus = struct.pack(">I4s", 4, b"free")

    problem = structure_problem(written(tmp_path, BEFORE_MDAT + bogus + MDAT))

    assert problem is not None and "less than its header" in problem


def test_a_file_without_moov_is_refused(tmp_path: Path) -> None:
    no_moov = b"".join(box for kind, box in SAMPLE_BOXES if kind != b"moov")

    assert structure_problem(written(tmp_path, no_moov)) == "no 'moov' box"


def test_a_file_without_mdat_is_refused(tmp_path: Path) -> None:
    assert structure_problem(written(tmp_path, BEFORE_MDAT)) == "no 'mdat' box"


def test_stray_bytes_after_the_last_box_are_refused(tmp_path: Path) -> None:
    problem = structure_problem(written(tmp_path, SAMPLE + b"\x00\x00\x00"))

    assert problem is not None and "stray bytes" in problem


def test_garbage_where_a_box_should_start_is_refused(tmp_path: Path) -> None:
    garbage = b"\x00\x00\x00\x10\xff\xfe\x00\x01" + bytes(8)

    problem = structure_problem(written(tmp_path, BEFORE_MDAT + garbage + MDAT))

    assert problem is not None and "no box header" in problem


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    assert structure_problem(written(tmp_path, b"")) == "no 'moov' or 'mdat' box"


def test_millions_of_tiny_boxes_are_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "boxes.mp4"
    path.write_bytes(b"\x00\x00\x00\x08free" * 2_500_000)  # 20 MB of empty boxes
    # Refused for their number, so the walk stopped early instead of reading them all.
    assert structure_problem(path) == "more than 4096 top-level boxes"
