"""What the Segmind client and the downloader show of an answer or a URL: never a secret."""

from __future__ import annotations

import pytest

from services.http_text import parse_json, without_query


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://cdn.example/v.mp4?X-Amz-Signature=abc", "https://cdn.example/v.mp4"),
        (
            "http://admin:hunter2-pass@192.168.1.1/clip.mp4?sig=abc#frag",
            "http://192.168.1.1/clip.mp4",
        ),
        ("not a url at all ::::", "(invalid URL)"),
    ],
)
def test_a_url_is_shown_without_its_signature_or_password(url: str, shown: str) -> None:
    assert without_query(url) == shown


def test_json_nested_too_deep_to_read_is_not_json() -> None:
    assert parse_json(b"[" * 100_000 + b"]" * 100_000) is None
    assert parse_json(b'{"ok": [1, 2]}') == {"ok": [1, 2]}
