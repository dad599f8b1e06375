"""Message bodies: Discord's validation rules, attachments, and creating or editing a message.

Shared by channel routes and interaction webhooks so both enforce the same limits: content up to
2000 characters, at most 10 embeds within the embed limits, components in valid rows, a sane
allowed_mentions, and all files of one message within the upload limit (413 40005 beyond it).
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from typing import Any

from . import errors
from .errors import field_error, merge_errors, nest
from .mentions import validate_allowed_mentions
from .records import (
    FLAG_EPHEMERAL,
    FLAG_IS_COMPONENTS_V2,
    FLAG_LOADING,
    FLAG_SUPPRESS_EMBEDS,
    FLAG_SUPPRESS_NOTIFICATIONS,
    MessageRevision,
    StoredAttachment,
    StoredMessage,
    UploadedFile,
)

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
MAX_FILES = 10
_EMBED_LIMITS = {"title": 256, "description": 4096}
_FILES_FIELD = re.compile(r"^files\[(\d+)\]$")
# Flags a bot may set when creating a message (EPHEMERAL only through interactions).
_CREATE_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_IS_COMPONENTS_V2
_EDIT_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_IS_COMPONENTS_V2


@dataclass
class MessageBody:
    """A request body after multipart decoding: the JSON part and the raw files."""

    payload: dict[str, Any]
    files: list[UploadedFile]


def validate(
    body: MessageBody, *, upload_limit: int, creating: bool, ephemeral_allowed: bool = False
) -> None:
    """Raise the DiscordError Discord would answer for this message body, if any."""
    payload = body.payload
    problems: dict[str, Any] = {}
    _check_content(payload, problems)
    _check_embeds(payload, problems)
    _check_components(payload, problems)
    _check_flags(payload, problems, creating=creating, ephemeral_allowed=ephemeral_allowed)
    if len(body.files) > MAX_FILES:
        merge_errors(
            problems,
            nest(
                ("files",),
                field_error("BASE_TYPE_MAX_LENGTH", f"Must be {MAX_FILES} or fewer in length."),
            ),
        )
    if problems:
        raise errors.invalid_form_body(problems)
    validate_allowed_mentions(payload.get("allowed_mentions"))
    if sum(f.size for f in body.files) > upload_limit:
        raise errors.entity_too_large()
    if creating and _is_empty(payload, body.files):
        raise errors.empty_message()


def _check_content(payload: dict[str, Any], problems: dict[str, Any]) -> None:
    content = payload.get("content")
    if content is not None and len(str(content)) > MAX_CONTENT:
        merge_errors(
            problems,
            nest(
                ("content",),
                field_error("BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."),
            ),
        )


def _check_embeds(payload: dict[str, Any], problems: dict[str, Any]) -> None:
    embeds = payload.get("embeds")
    if not embeds:
        return
    if len(embeds) > MAX_EMBEDS:
        merge_errors(
            problems,
            nest(
                ("embeds",),
                field_error("BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length."),
            ),
        )
        return
    total = 0
    for index, embed in enumerate(embeds):
        total += _check_embed(embed, ("embeds", index), problems)
    if total > MAX_EMBED_TOTAL:
        merge_errors(
            problems,
            nest(
                ("embeds",),
                field_error(
                    "MAX_EMBED_SIZE_EXCEEDED",
                    f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}",
                ),
            ),
        )


def _too_long(problems: dict[str, Any], path: tuple[str | int, ...], limit: int) -> None:
    merge_errors(
        problems,
        nest(path, field_error("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")),
    )


def _check_embed(
    embed: dict[str, Any], path: tuple[str | int, ...], problems: dict[str, Any]
) -> int:
    """Check one embed's field limits; return its character count toward the 6000 total."""
    count = 0
    for key, limit in _EMBED_LIMITS.items():
        text = str(embed.get(key) or "")
        count += len(text)
        if len(text) > limit:
            _too_long(problems, path + (key,), limit)
    for key, inner, limit in (("footer", "text", 2048), ("author", "name", 256)):
        text = str((embed.get(key) or {}).get(inner) or "")
        count += len(text)
        if len(text) > limit:
            _too_long(problems, path + (key, inner), limit)
    fields = embed.get("fields") or []
    if len(fields) > 25:
        _too_long(problems, path + ("fields",), 25)
    for index, item in enumerate(fields):
        count += _check_embed_field(item, path + ("fields", index), problems)
    return count


def _check_embed_field(
    item: dict[str, Any], path: tuple[str | int, ...], problems: dict[str, Any]
) -> int:
    name, value = str(item.get("name") or ""), str(item.get("value") or "")
    for key, text, limit in (("name", name, 256), ("value", value, 1024)):
        if not text:
            merge_errors(
                problems,
                nest(path + (key,), field_error("BASE_TYPE_REQUIRED", "This field is required")),
            )
        elif len(text) > limit:
            _too_long(problems, path + (key,), limit)
    return len(name) + len(value)


def _check_components(payload: dict[str, Any], problems: dict[str, Any]) -> None:
    components = payload.get("components")
    if not components:
        return
    if int(payload.get("flags") or 0) & FLAG_IS_COMPONENTS_V2:
        _check_components_v2(payload, problems)
        return
    if len(components) > 5:
        _too_long(problems, ("components",), 5)
    seen: set[str] = set()
    for index, row in enumerate(components):
        path: tuple[str | int, ...] = ("components", index)
        if row.get("type") != 1:
            merge_errors(
                problems,
                nest(
                    path + ("type",),
                    field_error("UNION_TYPE_CHOICES", "Top-level components must be action rows"),
                ),
            )
            continue
        _check_row(row.get("components") or [], path + ("components",), problems, seen)


def _check_row(
    items: list[dict[str, Any]],
    path: tuple[str | int, ...],
    problems: dict[str, Any],
    seen: set[str],
) -> None:
    if not items or len(items) > 5:
        merge_errors(
            problems,
            nest(path, field_error("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")),
        )
    selects = [c for c in items if c.get("type") in (3, 5, 6, 7, 8)]
    if selects and len(items) > 1:
        merge_errors(
            problems,
            nest(
                path,
                field_error(
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                ),
            ),
        )
    for index, item in enumerate(items):
        _check_interactive(item, path + (index,), problems, seen)


def _check_interactive(
    item: dict[str, Any], path: tuple[str | int, ...], problems: dict[str, Any], seen: set[str]
) -> None:
    """Buttons and selects: custom_id rules (1-100, unique), link buttons carry a url only."""
    custom_id = item.get("custom_id")
    is_link = item.get("type") == 2 and item.get("style") == 5
    if is_link:
        if custom_id is not None or not item.get("url"):
            merge_errors(
                problems,
                nest(
                    path,
                    field_error(
                        "BUTTON_COMPONENT_INVALID", "Link buttons need a url and no custom_id"
                    ),
                ),
            )
    elif item.get("type") == 2 and item.get("style") == 6:
        return
    elif not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
        merge_errors(
            problems,
            nest(
                path + ("custom_id",),
                field_error("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."),
            ),
        )
    elif custom_id in seen:
        merge_errors(
            problems,
            nest(
                path + ("custom_id",),
                field_error(
                    "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated"
                ),
            ),
        )
    else:
        seen.add(custom_id)
    label = item.get("label")
    if label is not None and len(str(label)) > 80:
        _too_long(problems, path + ("label",), 80)


def _check_components_v2(payload: dict[str, Any], problems: dict[str, Any]) -> None:
    """With IS_COMPONENTS_V2, content and embeds are not allowed; at most 40 components."""
    for key in ("content", "embeds"):
        if payload.get(key):
            merge_errors(
                problems,
                nest(
                    (key,),
                    field_error(
                        "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                        "The 'content' and 'embeds' fields cannot be used with components v2",
                    ),
                ),
            )
    if _count_components(payload.get("components") or []) > 40:
        _too_long(problems, ("components",), 40)


def _count_components(items: list[dict[str, Any]]) -> int:
    return sum(1 + _count_components(i.get("components") or []) for i in items)


def _check_flags(
    payload: dict[str, Any], problems: dict[str, Any], *, creating: bool, ephemeral_allowed: bool
) -> None:
    flags = payload.get("flags")
    if flags is None:
        return
    allowed = _CREATE_FLAGS if creating else _EDIT_FLAGS
    if ephemeral_allowed:
        allowed |= FLAG_EPHEMERAL
    if int(flags) & ~allowed:
        merge_errors(
            problems,
            nest(
                ("flags",), field_error("MESSAGE_FLAGS_INVALID", "Invalid flags for this request")
            ),
        )


def _is_empty(payload: dict[str, Any], files: list[UploadedFile]) -> bool:
    return not (
        payload.get("content")
        or payload.get("embeds")
        or files
        or payload.get("components")
        or payload.get("sticker_ids")
        or payload.get("poll")
    )


def new_attachments(body: MessageBody, *, make_id: Any, url_for: Any) -> list[StoredAttachment]:
    """Turn uploaded files into attachments, honouring `attachments[].filename/description`."""
    meta = {
        str(a.get("id")): a for a in body.payload.get("attachments") or [] if isinstance(a, dict)
    }
    stored: list[StoredAttachment] = []
    for position, upload in enumerate(body.files):
        match = _FILES_FIELD.match(upload.field)
        index = match.group(1) if match else str(position)
        info = meta.get(index, {})
        filename = str(info.get("filename") or upload.filename or f"file{index}")
        content_type = (
            mimetypes.guess_type(filename)[0] or upload.content_type or "application/octet-stream"
        )
        attachment_id = make_id()
        stored.append(
            StoredAttachment(
                id=attachment_id,
                filename=filename,
                size=upload.size,
                content_type=content_type,
                data=upload.data,
                url=url_for(attachment_id, filename),
                description=info.get("description"),
            )
        )
    return stored


def attachments_after_edit(
    message: StoredMessage, body: MessageBody, uploaded: list[StoredAttachment]
) -> list[StoredAttachment]:
    """v10 edit rule: `attachments` lists everything to keep (existing ids + new files)."""
    listed = body.payload.get("attachments")
    if listed is None:
        return message.attachments + uploaded
    existing = {str(a.id): a for a in message.attachments}
    kept = [
        existing[str(a.get("id"))]
        for a in listed
        if isinstance(a, dict) and str(a.get("id")) in existing
    ]
    return kept + uploaded


def snapshot(message: StoredMessage, at: float) -> None:
    """Record the message's text (creation or edit) for later assertions."""
    message.revisions.append(
        MessageRevision(
            at=at,
            content=message.content,
            embeds=list(message.embeds),
        )
    )


def apply_fields(message: StoredMessage, payload: dict[str, Any]) -> None:
    """Copy the editable fields present in the payload onto the message."""
    if "content" in payload:
        message.content = str(payload["content"] or "")
    if "embeds" in payload:
        message.embeds = list(payload["embeds"] or [])
    if "components" in payload:
        message.components = list(payload["components"] or [])
    if "flags" in payload and payload["flags"] is not None:
        # Only SUPPRESS_EMBEDS / IS_COMPONENTS_V2 change on edit; ephemeral and loading stay.
        kept = message.flags & ~_EDIT_FLAGS
        message.flags = kept | (int(payload["flags"]) & _EDIT_FLAGS)


def resolve_loading(message: StoredMessage) -> None:
    """A deferred "thinking" message becomes a normal one when first edited or followed up."""
    message.flags &= ~FLAG_LOADING
