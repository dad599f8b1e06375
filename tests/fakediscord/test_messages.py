"""Message body limits discord.py does not check itself, checked as Discord does."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakediscord import DiscordError, UploadedFile
from tests.fakediscord.messages import MessageBody, validate

LIMIT = 10 * 1024 * 1024


def refused(
    payload: dict[str, Any], files: list[UploadedFile] | None = None, creating: bool = True
) -> DiscordError:
    with pytest.raises(DiscordError) as error:
        validate(
            MessageBody(payload=payload, files=files or []), upload_limit=LIMIT, creating=creating
        )
    return error.value


def test_more_than_ten_embeds_is_refused():
    error = refused({"embeds": [{"title": str(i)} for i in range(11)]})
    assert (error.status, error.code) == (400, 50035) and "embeds" in error.errors


def test_embed_field_values_are_limited_to_1024_characters():
    # A 2000-character prompt fits in content or a description, not in a field value.
    error = refused({"embeds": [{"fields": [{"name": "Prompt", "value": "p" * 2000}]}]})
    assert (
        error.errors["embeds"]["0"]["fields"]["0"]["value"]["_errors"][0]["code"]
        == "BASE_TYPE_MAX_LENGTH"
    )


def test_all_embeds_together_are_limited_to_6000_characters():
    error = refused({"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]})
    assert error.errors["embeds"]["_errors"][0]["code"] == "MAX_EMBED_SIZE_EXCEEDED"


def test_custom_ids_are_1_to_100_characters_and_unique():
    row = {
        "type": 1,
        "components": [
            {"type": 2, "style": 1, "label": "Re-roll", "custom_id": "x" * 101},
            {"type": 2, "style": 1, "label": "Share", "custom_id": "share"},
            {"type": 2, "style": 1, "label": "Share", "custom_id": "share"},
        ],
    }
    error = refused({"content": "clip", "components": [row]})
    buttons = error.errors["components"]["0"]["components"]
    assert set(buttons) == {"0", "2"}


def test_empty_messages_and_ephemeral_flags_outside_interactions_are_refused():
    assert refused({"content": ""}).code == 50006
    assert refused({"content": "hi", "flags": 64}).code == 50035


def test_all_files_of_a_message_count_toward_the_limit():
    half = UploadedFile("files[0]", "a.mp4", "video/mp4", b"x" * (LIMIT // 2 + 1))
    other = UploadedFile("files[1]", "b.mp4", "video/mp4", b"x" * (LIMIT // 2))
    error = refused({"content": "two clips"}, [half, other])
    assert (error.status, error.code) == (413, 40005)
