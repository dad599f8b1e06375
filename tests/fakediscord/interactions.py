"""Interaction responses and the interaction token's webhook, with Discord's timing rules.

- The initial response (`POST /interactions/{id}/{token}/callback`) must arrive within 3 s of the
  interaction's creation, else 404 10062; a second one is 400 40060.
- The token's webhook (`/webhooks/{application_id}/{token}...`) works for 15 minutes, then
  401 50027. Followups before any initial response are 404 10015.
- After a deferred response (type 5), the first followup or @original edit replaces the
  "thinking" message: it keeps the defer's visibility (the followup's ephemeral flag is ignored),
  returns the same message id, and, being an edit, notifies nobody. Later followups are new
  messages with their own flags and pings.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import errors
from .errors import field_error, merge_errors, nest
from .messages import MessageBody, validate
from .records import FLAG_EPHEMERAL, FLAG_LOADING, InteractionRecord, StoredMessage
from .responses import BODY_KEY, json_response
from .store import Store

MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9
APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5

# Which initial responses Discord accepts for each interaction type (the gateway sends no PING).
# All of them stay, so the fake never refuses an answer production would take.
_ALLOWED_RESPONSES = {
    APPLICATION_COMMAND: {MESSAGE, DEFERRED_MESSAGE, MODAL},
    MESSAGE_COMPONENT: {MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, MODAL},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE},
}


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in {"1", "true"}


class InteractionRoutes:
    """Handlers for the callback route and the interaction token's webhook routes."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # Initial response ----------------------------------------------------------------------

    async def callback(self, request: web.Request) -> web.Response:
        """POST /interactions/{interaction_id}/{interaction_token}/callback."""
        record = self._callback_target(request)
        body: MessageBody = request[BODY_KEY]
        kind = body.payload.get("type")
        if kind not in _ALLOWED_RESPONSES.get(record.type, set()):
            raise errors.form_error(
                ("type",),
                "INTERACTION_RESPONSE_TYPE_INVALID",
                "Interaction response type is not valid for this interaction",
            )
        data = body.payload.get("data") or {}
        inner = MessageBody(payload=data, files=body.files)
        self._validate_response(record, kind, inner)
        # Mark acknowledged before any await, so a concurrent second callback sees it.
        record.response_type = kind
        record.acknowledged_at = self.store.clock.monotonic()
        message = await self._apply_response(record, kind, inner)
        self.store.notifier.notify()
        # discord.py always asks `with_response=1`; without it Discord would answer 204.
        return json_response(self._callback_result(record, kind, message))

    def _callback_target(self, request: web.Request) -> InteractionRecord:
        """The interaction being answered, or Discord's 10062/40060 refusal."""
        key = request.match_info["interaction_id"]
        record = self.store.interactions.get(int(key)) if key.isdigit() else None
        if record is None or record.token != request.match_info["interaction_token"]:
            raise errors.unknown_interaction()
        if record.acknowledged:
            raise errors.already_acknowledged()
        if self.store.clock.monotonic() > record.ack_deadline:
            record.late_callbacks += 1
            self.store.notifier.notify()
            raise errors.unknown_interaction()
        return record

    def _validate_response(self, record: InteractionRecord, kind: int, inner: MessageBody) -> None:
        if kind == MESSAGE:
            validate(
                inner,
                upload_limit=record.attachment_size_limit,
                creating=True,
                ephemeral_allowed=True,
            )
        elif kind == UPDATE_MESSAGE:
            validate(inner, upload_limit=record.attachment_size_limit, creating=False)
        elif kind == MODAL:
            _validate_modal(inner.payload)
        elif kind == AUTOCOMPLETE_RESULT and len(inner.payload.get("choices") or []) > 25:
            raise errors.form_error(
                ("data", "choices"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )
        if kind in (DEFERRED_UPDATE, UPDATE_MESSAGE) and record.source_message_id is None:
            raise errors.form_error(
                ("type",),
                "INTERACTION_RESPONSE_TYPE_INVALID",
                "This interaction has no message to update",
            )

    async def _apply_response(
        self, record: InteractionRecord, kind: int, inner: MessageBody
    ) -> StoredMessage | None:
        if kind == MESSAGE:
            message = await self._new_message(record, inner, message_type=_response_type(record))
            record.original_message_id = message.id
            return message
        if kind == DEFERRED_MESSAGE:
            return await self._thinking_message(record, inner.payload)
        if kind in (DEFERRED_UPDATE, UPDATE_MESSAGE):
            record.original_message_id = record.source_message_id
            source = self._existing(record.source_message_id)
            if kind == UPDATE_MESSAGE:
                return await self.store.edit_message(source, inner)
            return None
        if kind == MODAL:
            record.modal = dict(inner.payload)
        elif kind == AUTOCOMPLETE_RESULT:
            record.autocomplete_choices = list(inner.payload.get("choices") or [])
        return None

    async def _thinking_message(
        self, record: InteractionRecord, data: dict[str, Any]
    ) -> StoredMessage:
        """Type 5: a "Bot is thinking..." message whose visibility is fixed now."""
        ephemeral = bool(int(data.get("flags") or 0) & FLAG_EPHEMERAL)
        body = MessageBody(
            payload={"content": "", "flags": FLAG_EPHEMERAL if ephemeral else 0}, files=[]
        )
        message = await self._new_message(
            record,
            body,
            message_type=_response_type(record),
            extra_flags=FLAG_LOADING,
            notify=False,
        )
        record.original_message_id = message.id
        record.loading_resolved = False
        return message

    def _callback_result(
        self, record: InteractionRecord, kind: int, message: StoredMessage | None
    ) -> dict[str, Any]:
        """The `with_response=true` body discord.py reads into InteractionCallbackResponse."""
        summary: dict[str, Any] = {"id": str(record.id), "type": record.type}
        if message is not None:
            summary.update(
                {
                    "response_message_id": str(message.id),
                    "response_message_loading": message.loading,
                    "response_message_ephemeral": message.ephemeral,
                }
            )
        result: dict[str, Any] = {"interaction": summary}
        if message is not None:
            result["resource"] = {"type": kind, "message": self.store.message_payload(message)}
        return result

    # The token's webhook ------------------------------------------------------------------

    async def execute(self, request: web.Request) -> web.Response:
        """POST /webhooks/{application_id}/{webhook_token}: a followup message."""
        record = self._webhook_target(request)
        if not record.acknowledged:
            raise errors.unknown_webhook()
        body: MessageBody = request[BODY_KEY]
        validate(
            body, upload_limit=record.attachment_size_limit, creating=True, ephemeral_allowed=True
        )
        original = self._pending_thinking(record)
        if original is not None:
            # The followup resolves "thinking": same message, defer's visibility, no ping.
            payload = {k: v for k, v in body.payload.items() if k != "flags"}
            message = await self.store.resolve_deferred(
                original, MessageBody(payload=payload, files=body.files), record
            )
        else:
            message = await self._new_message(record, body, message_type=0)
        record.followup_ids.append(message.id)
        self.store.notifier.notify()
        if not _truthy(request.query.get("wait")):
            return web.Response(status=204)
        return json_response(self.store.message_payload(message))

    async def get_message(self, request: web.Request) -> web.Response:
        """GET /webhooks/{application_id}/{webhook_token}/messages/{message_id|@original}."""
        record = self._webhook_target(request)
        message = self._webhook_message(record, request.match_info["message_id"])
        return json_response(self.store.message_payload(message))

    async def edit_message(self, request: web.Request) -> web.Response:
        """PATCH .../messages/{message_id|@original}: edits never ping; resolves "thinking"."""
        record = self._webhook_target(request)
        message = self._webhook_message(record, request.match_info["message_id"])
        body: MessageBody = request[BODY_KEY]
        validate(body, upload_limit=record.attachment_size_limit, creating=False)
        if message.loading:
            await self.store.resolve_deferred(message, body, record)
        else:
            await self.store.edit_message(message, body)
        return json_response(self.store.message_payload(message))

    async def delete_message(self, request: web.Request) -> web.Response:
        """DELETE .../messages/{message_id|@original}."""
        record = self._webhook_target(request)
        message = self._webhook_message(record, request.match_info["message_id"])
        await self.store.delete_message(message)
        return web.Response(status=204)

    def _webhook_target(self, request: web.Request) -> InteractionRecord:
        """The interaction behind a token: 50027 when unknown or older than 15 minutes."""
        record = self.store.interactions_by_token.get(request.match_info["webhook_token"])
        if record is None:
            raise errors.invalid_webhook_token()
        if request.match_info["application_id"] != str(self.store.world.application_id):
            raise errors.unknown_webhook()
        if self.store.clock.monotonic() > record.token_expires_at:
            raise errors.invalid_webhook_token()
        return record

    def _webhook_message(self, record: InteractionRecord, key: str) -> StoredMessage:
        """@original or one of this interaction's followups; anything else is 10008."""
        if key == "@original":
            message_id = record.original_message_id
        else:
            message_id = int(key) if key.isdigit() else None
            if message_id not in {record.original_message_id, *record.followup_ids}:
                message_id = None
        return self._existing(message_id)

    def _existing(self, message_id: int | None) -> StoredMessage:
        message = self.store.message(message_id) if message_id is not None else None
        if message is None or message.deleted:
            raise errors.unknown_message()
        return message

    def _pending_thinking(self, record: InteractionRecord) -> StoredMessage | None:
        if record.response_type != DEFERRED_MESSAGE or record.loading_resolved:
            return None
        message = self.store.message(record.original_message_id or 0)
        if message is None or message.deleted:
            return None
        return message

    async def _new_message(
        self,
        record: InteractionRecord,
        body: MessageBody,
        *,
        message_type: int,
        extra_flags: int = 0,
        notify: bool = True,
    ) -> StoredMessage:
        dest = self.store.destination(record.channel_id)
        assert dest is not None, "interactions come only from known guild channels"
        flags = int(body.payload.get("flags") or 0) | extra_flags
        visible_to = frozenset({record.user_id}) if flags & FLAG_EPHEMERAL else None
        return await self.store.create_message(
            dest,
            self.store.world.bot.id,
            body,
            interaction=record,
            visible_to=visible_to,
            message_type=message_type,
            extra_flags=extra_flags,
            notify=notify,
        )


def _response_type(record: InteractionRecord) -> int:
    """Message type of an interaction's reply: 20 for a slash command's, else 0."""
    return 20 if record.type == APPLICATION_COMMAND else 0


def _validate_modal(data: dict[str, Any]) -> None:
    custom_id, title = data.get("custom_id"), data.get("title")
    problems: dict[str, Any] = {}
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
        problems.update(
            nest(
                ("data", "custom_id"),
                field_error("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."),
            )
        )
    if not isinstance(title, str) or not 1 <= len(title) <= 45:
        problems.setdefault("data", {}).update(
            {"title": field_error("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length.")}
        )
    components = data.get("components") or []
    if not 1 <= len(components) <= 5:
        problems.setdefault("data", {}).update(
            {
                "components": field_error(
                    "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."
                )
            }
        )
    for index, component in enumerate(components):
        for path, text_input in _text_inputs(component):
            for key, leaf in _text_input_problems(text_input).items():
                merge_errors(problems, nest(("data", "components", index, *path, key), leaf))
    if problems:
        raise errors.invalid_form_body(problems)


def _text_inputs(component: dict[str, Any]) -> list[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """A modal row's text inputs with their path: in an action row, or in a label (type 18)."""
    if component.get("type") == 1:
        inner = component.get("components") or []
        return [(("components", i), c) for i, c in enumerate(inner) if c.get("type") == 4]
    if component.get("type") == 18 and (component.get("component") or {}).get("type") == 4:
        return [(("component",), component["component"])]
    return []


def _text_input_problems(data: dict[str, Any]) -> dict[str, Any]:
    """Discord's documented limits on a text input: label 45, placeholder 100, value within
    max_length (at most 4000), custom id 100."""
    problems: dict[str, Any] = {}

    def bad(key: str, low: int, high: int) -> None:
        problems[key] = field_error(
            "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length."
        )

    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
        bad("custom_id", 1, 100)
    label = data.get("label")
    if label is not None and not 1 <= len(label) <= 45:
        bad("label", 1, 45)
    if len(data.get("placeholder") or "") > 100:
        bad("placeholder", 0, 100)
    max_length = data.get("max_length", 4000)
    if not 1 <= max_length <= 4000:
        problems["max_length"] = field_error(
            "NUMBER_TYPE_MAX", "Int value should be less than or equal to 4000."
        )
    if "value" in data and len(data["value"]) > min(max_length, 4000):
        bad("value", 0, min(max_length, 4000))
    return problems
