"""Application command validation, following Discord's documented rules for command payloads.

`validate_commands` checks a bulk-overwrite body and returns Discord's nested `errors` tree
(keyed by command index, then field path) so the server can answer 400 50035 exactly as Discord
does; an empty dict means the payload is valid. Things discord.py does not check locally
(parameter descriptions over 100 characters, more than 25 choices, the 4000-character total...)
only fail here, which is the point of having this.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import field_error, merge_errors, nest

CHAT_INPUT, USER, MESSAGE, PRIMARY_ENTRY_POINT = 1, 2, 3, 4
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER_OPT, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = range(3, 12)
VALUE_TYPES = {STRING, INTEGER, BOOLEAN, USER_OPT, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT}
CHOICE_TYPES = {STRING, INTEGER, NUMBER}

MAX_OPTIONS = 25
MAX_CHOICES = 25
MAX_COMBINED_CHARS = 4000
MAX_SAFE_INTEGER = 2**53
# Per scope (global, or one guild), per command type.
MAX_COMMANDS = {CHAT_INPUT: 100, USER: 15, MESSAGE: 15, PRIMARY_ENTRY_POINT: 1}

# Discord's regex is ^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$; Python's \w covers letters,
# digits and underscore in every script, which is the same set for practical names.
_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")
_LOCALES = {
    "id",
    "da",
    "de",
    "en-GB",
    "en-US",
    "es-ES",
    "es-419",
    "fr",
    "hr",
    "it",
    "lt",
    "hu",
    "nl",
    "no",
    "pl",
    "pt-BR",
    "ro",
    "fi",
    "sv-SE",
    "vi",
    "tr",
    "cs",
    "el",
    "bg",
    "ru",
    "uk",
    "hi",
    "th",
    "zh-CN",
    "ja",
    "zh-TW",
    "ko",
}

Errors = dict[str, Any]
Path = tuple[str | int, ...]


def _error(errors: Errors, path: Path, code: str, message: str) -> None:
    merge_errors(errors, nest(path, field_error(code, message)))


def validate_commands(commands: Any) -> Errors:
    """Validate a bulk-overwrite body (a list of commands); empty result means valid."""
    errors: Errors = {}
    if not isinstance(commands, list):
        _error(errors, (), "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        return errors
    for index, command in enumerate(commands):
        validate_command(command, errors, (index,))
    _check_duplicates(commands, errors)
    _check_counts(commands, errors)
    return errors


def validate_command(command: Any, errors: Errors, path: Path) -> None:
    """Validate one command object at `path` (its index in the bulk body)."""
    if not isinstance(command, dict):
        _error(errors, path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return
    kind = command.get("type", CHAT_INPUT)
    if kind not in MAX_COMMANDS:
        _error(
            errors,
            path + ("type",),
            "BASE_TYPE_CHOICES",
            f"Value must be one of {sorted(MAX_COMMANDS)}.",
        )
        return
    if kind == CHAT_INPUT:
        _check_chat_name(command.get("name"), errors, path + ("name",))
        _check_description(command.get("description"), errors, path + ("description",))
    else:
        _check_context_menu(command, errors, path)
    _check_localizations(command, kind, errors, path)
    _check_permissions_fields(command, errors, path)
    options = command.get("options")
    if options is not None:
        if kind != CHAT_INPUT:
            _error(
                errors,
                path + ("options",),
                "APPLICATION_COMMAND_OPTIONS_NOT_ALLOWED",
                "Only chat input commands can have options",
            )
        else:
            _check_options(options, errors, path + ("options",), depth=0)
    if _combined_length(command) > MAX_COMBINED_CHARS:
        _error(
            errors,
            path,
            "APPLICATION_COMMAND_TOO_LARGE",
            f"Command exceeds maximum size ({MAX_COMBINED_CHARS})",
        )


def _check_chat_name(name: Any, errors: Errors, path: Path) -> None:
    if not isinstance(name, str) or not name:
        _error(errors, path, "BASE_TYPE_REQUIRED", "This field is required")
    elif not _NAME_RE.match(name) or name != name.lower():
        _error(errors, path, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")


def _check_description(description: Any, errors: Errors, path: Path) -> None:
    if not isinstance(description, str) or not description or len(description) > 100:
        _error(errors, path, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")


def _check_context_menu(command: dict[str, Any], errors: Errors, path: Path) -> None:
    """User and message commands: 1-32 characters, any case and spaces, empty description."""
    name = command.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 32:
        _error(
            errors, path + ("name",), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length."
        )
    if command.get("description") not in (None, ""):
        _error(
            errors,
            path + ("description",),
            "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
            "Context menu commands cannot have description",
        )


def _check_localizations(item: dict[str, Any], kind: int, errors: Errors, path: Path) -> None:
    for key in ("name_localizations", "description_localizations"):
        table = item.get(key)
        if table is None:
            continue
        if not isinstance(table, dict):
            _error(
                errors,
                path + (key,),
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            )
            continue
        for locale, value in table.items():
            if locale not in _LOCALES:
                _error(errors, path + (key, locale), "LOCALE_INVALID", "Invalid locale")
            elif key == "name_localizations" and kind == CHAT_INPUT:
                _check_chat_name(value, errors, path + (key, locale))
            elif key == "description_localizations":
                _check_description(value, errors, path + (key, locale))


def _check_permissions_fields(command: dict[str, Any], errors: Errors, path: Path) -> None:
    perms = command.get("default_member_permissions")
    if perms is not None and (not isinstance(perms, (str, int)) or not str(perms).isdigit()):
        _error(
            errors,
            path + ("default_member_permissions",),
            "NUMBER_TYPE_COERCE",
            f'Value "{perms}" is not snowflake.',
        )
    for key, allowed in (("contexts", {0, 1, 2}), ("integration_types", {0, 1})):
        values = command.get(key)
        if values is None:
            continue
        for index, value in enumerate(values):
            if value not in allowed:
                _error(
                    errors,
                    path + (key, index),
                    "BASE_TYPE_CHOICES",
                    f"Value must be one of {sorted(allowed)}.",
                )


def _check_options(options: Any, errors: Errors, path: Path, depth: int) -> None:
    """Options of a command (depth 0), of a group (1) or of a subcommand (1 or 2)."""
    if not isinstance(options, list):
        _error(errors, path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        return
    if len(options) > MAX_OPTIONS:
        _error(errors, path, "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_OPTIONS} or fewer in length.")
    kinds = {o.get("type") for o in options if isinstance(o, dict)}
    if kinds & {SUB_COMMAND, SUB_COMMAND_GROUP} and kinds & VALUE_TYPES:
        _error(
            errors,
            path,
            "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
            "Sub-command and sub-command group option types are mutually exclusive to all "
            "other types",
        )
    for index, option in enumerate(options):
        if isinstance(option, dict):
            _check_option(option, errors, path + (index,), depth)
        else:
            _error(
                errors,
                path + (index,),
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            )
    _check_siblings(options, errors, path)


def _check_siblings(options: list[Any], errors: Errors, path: Path) -> None:
    """Names unique among siblings; required value options before optional ones."""
    seen: set[str] = set()
    optional_seen = False
    for index, option in enumerate(options):
        if not isinstance(option, dict):
            continue
        here = path + (index,)
        name = option.get("name")
        if isinstance(name, str):
            if name in seen:
                _error(
                    errors,
                    here + ("name",),
                    "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                    f"Option name {name} is already used in these options",
                )
            seen.add(name)
        if option.get("type") not in VALUE_TYPES:
            continue
        if not option.get("required"):
            optional_seen = True
        elif optional_seen:
            _error(
                errors,
                here + ("required",),
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options",
            )


def _check_option(option: dict[str, Any], errors: Errors, path: Path, depth: int) -> None:
    kind = option.get("type")
    valid_types = VALUE_TYPES | {SUB_COMMAND, SUB_COMMAND_GROUP}
    if kind not in valid_types:
        _error(
            errors,
            path + ("type",),
            "BASE_TYPE_CHOICES",
            f"Value must be one of {sorted(valid_types)}.",
        )
        return
    _check_chat_name(option.get("name"), errors, path + ("name",))
    _check_description(option.get("description"), errors, path + ("description",))
    _check_localizations(option, CHAT_INPUT, errors, path)
    if kind == SUB_COMMAND_GROUP:
        _check_group(option, errors, path, depth)
    elif kind == SUB_COMMAND:
        _check_subcommand(option, errors, path, depth)
    else:
        _check_value_option(option, kind, errors, path)


def _check_group(option: dict[str, Any], errors: Errors, path: Path, depth: int) -> None:
    """A group sits at the top level and holds only subcommands."""
    if depth != 0:
        _error(
            errors,
            path + ("type",),
            "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
            "Sub-command groups can only be nested at the top level",
        )
        return
    children = option.get("options") or []
    for index, child in enumerate(children):
        if isinstance(child, dict) and child.get("type") != SUB_COMMAND:
            _error(
                errors,
                path + ("options", index, "type"),
                "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
                "Sub-command groups can only contain sub-commands",
            )
    _check_options(children, errors, path + ("options",), depth + 1)


def _check_subcommand(option: dict[str, Any], errors: Errors, path: Path, depth: int) -> None:
    """A subcommand sits at the top or in a group and holds only value options."""
    if depth > 1:
        _error(
            errors,
            path + ("type",),
            "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
            "Sub-commands cannot be nested this deep",
        )
        return
    children = option.get("options") or []
    for index, child in enumerate(children):
        if isinstance(child, dict) and child.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP):
            _error(
                errors,
                path + ("options", index, "type"),
                "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
                "Sub-commands can only contain value options",
            )
    _check_options(children, errors, path + ("options",), depth + 1)


def _check_value_option(option: dict[str, Any], kind: int, errors: Errors, path: Path) -> None:
    if option.get("options"):
        _error(
            errors,
            path + ("options",),
            "APPLICATION_COMMAND_OPTIONS_NOT_ALLOWED",
            "Only sub-commands and groups can have options",
        )
    _check_choices(option, kind, errors, path)
    _check_ranges(option, kind, errors, path)
    if option.get("channel_types") is not None and kind != CHANNEL:
        _error(
            errors,
            path + ("channel_types",),
            "APPLICATION_COMMAND_OPTION_CHANNEL_TYPES",
            "Only channel options can have channel types",
        )
    if option.get("autocomplete"):
        if kind not in CHOICE_TYPES:
            _error(
                errors,
                path + ("autocomplete",),
                "APPLICATION_COMMAND_AUTOCOMPLETE_INVALID",
                "Autocomplete is only allowed on string, integer and number options",
            )
        if option.get("choices"):
            _error(
                errors,
                path + ("autocomplete",),
                "APPLICATION_COMMAND_AUTOCOMPLETE_AND_CHOICES",
                "Autocomplete cannot be set on options with choices",
            )


def _check_choices(option: dict[str, Any], kind: int, errors: Errors, path: Path) -> None:
    choices = option.get("choices")
    if choices is None:
        return
    if kind not in CHOICE_TYPES:
        _error(
            errors,
            path + ("choices",),
            "APPLICATION_COMMAND_OPTION_CHOICES_INVALID",
            "Choices are only allowed on string, integer and number options",
        )
        return
    if len(choices) > MAX_CHOICES:
        _error(
            errors,
            path + ("choices",),
            "BASE_TYPE_MAX_LENGTH",
            f"Must be {MAX_CHOICES} or fewer in length.",
        )
    for index, choice in enumerate(choices):
        here = path + ("choices", index)
        name = choice.get("name") if isinstance(choice, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            _error(
                errors,
                here + ("name",),
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )
        value = choice.get("value") if isinstance(choice, dict) else None
        if not _choice_value_ok(kind, value):
            _error(
                errors,
                here + ("value",),
                "APPLICATION_COMMAND_OPTION_CHOICE_VALUE_INVALID",
                "Choice value does not match the option type",
            )


def _choice_value_ok(kind: int, value: Any) -> bool:
    if kind == STRING:
        return isinstance(value, str) and 1 <= len(value) <= 100
    if kind == INTEGER:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and abs(value) <= MAX_SAFE_INTEGER
        )
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_ranges(option: dict[str, Any], kind: int, errors: Errors, path: Path) -> None:
    """min/max_value only on integer/number, min/max_length only on string, in Discord's bounds."""
    for key in ("min_value", "max_value"):
        value = option.get(key)
        if value is None:
            continue
        if kind not in (INTEGER, NUMBER):
            _error(
                errors,
                path + (key,),
                "APPLICATION_COMMAND_OPTION_RANGE_NOT_ALLOWED",
                "Only integer and number options can have a value range",
            )
        elif (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or abs(value) > MAX_SAFE_INTEGER
        ):
            _error(
                errors,
                path + (key,),
                "NUMBER_TYPE_MAX",
                f"int value should be between -{MAX_SAFE_INTEGER} and {MAX_SAFE_INTEGER}.",
            )
    for key, low in (("min_length", 0), ("max_length", 1)):
        value = option.get(key)
        if value is None:
            continue
        if kind != STRING:
            _error(
                errors,
                path + (key,),
                "APPLICATION_COMMAND_OPTION_LENGTH_NOT_ALLOWED",
                "Only string options can have a length range",
            )
        elif not isinstance(value, int) or not low <= value <= 6000:
            _error(
                errors,
                path + (key,),
                "NUMBER_TYPE_MAX",
                f"int value should be between {low} and 6000.",
            )
    _check_range_order(option, errors, path)


def _check_range_order(option: dict[str, Any], errors: Errors, path: Path) -> None:
    for low_key, high_key in (("min_value", "max_value"), ("min_length", "max_length")):
        low, high = option.get(low_key), option.get(high_key)
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
            _error(
                errors,
                path + (low_key,),
                "APPLICATION_COMMAND_OPTION_RANGE_INVALID",
                f"{low_key} cannot be greater than {high_key}",
            )


def _combined_length(item: dict[str, Any]) -> int:
    """Characters of names, descriptions and choice values, recursively (the 4000 limit)."""
    total = len(str(item.get("name") or "")) + len(str(item.get("description") or ""))
    for choice in item.get("choices") or []:
        if isinstance(choice, dict):
            total += len(str(choice.get("name", ""))) + len(str(choice.get("value", "")))
    for option in item.get("options") or []:
        if isinstance(option, dict):
            total += _combined_length(option)
    return total


def _check_duplicates(commands: list[Any], errors: Errors) -> None:
    seen: set[tuple[int, str]] = set()
    for index, command in enumerate(commands):
        if not isinstance(command, dict):
            continue
        key = (command.get("type", CHAT_INPUT), str(command.get("name")))
        if key in seen:
            _error(
                errors,
                (index, "name"),
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Application command names must be unique: {key[1]}",
            )
        seen.add(key)


def _check_counts(commands: list[Any], errors: Errors) -> None:
    for kind, limit in MAX_COMMANDS.items():
        count = sum(
            1 for c in commands if isinstance(c, dict) and c.get("type", CHAT_INPUT) == kind
        )
        if count > limit:
            _error(
                errors,
                (),
                "APPLICATION_COMMANDS_TOO_MANY",
                f"Maximum number of application commands of type {kind} reached ({limit})",
            )
