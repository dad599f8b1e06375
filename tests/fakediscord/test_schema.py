"""Command schema validation follows Discord's documented rules, error paths included."""

from __future__ import annotations

from typing import Any

from tests.fakediscord.schema import validate_commands


def command(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": 1, "name": "video", "description": "Make a video"}
    base.update(overrides)
    return base


def option(name: str, kind: int = 3, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": kind, "name": name, "description": name}
    base.update(overrides)
    return base


def codes(errors: dict[str, Any]) -> list[str]:
    """Every error code in a Discord error tree."""
    found = [e["code"] for e in errors.get("_errors", [])]
    for key, value in errors.items():
        if key != "_errors" and isinstance(value, dict):
            found += codes(value)
    return found


def test_a_valid_command_with_subcommand_groups_passes():
    limit = command(
        name="videolimit",
        options=[
            option(
                "set",
                1,
                options=[
                    option("user", 6, required=True),
                    option("count", 4, required=True, min_value=0),
                    option("period", 3, required=True, max_length=3),
                ],
            ),
            option(
                "per", 2, options=[option("role", 1, options=[option("role", 8, required=True)])]
            ),
        ],
    )
    assert validate_commands([limit, command()]) == {}


def test_names_must_be_lowercase_and_at_most_32_word_characters():
    errors = validate_commands(
        [command(name="Video"), command(name="x" * 33), command(name="with space")]
    )
    assert set(errors) == {"0", "1", "2"}
    assert codes(errors) == ["APPLICATION_COMMAND_INVALID_NAME"] * 3


def test_context_menu_names_may_have_spaces_and_capitals_but_no_description():
    assert validate_commands([{"type": 3, "name": "Re-roll This", "description": ""}]) == {}
    errors = validate_commands([{"type": 2, "name": "Limit", "description": "no"}])
    assert "description" in errors["0"]


def test_descriptions_are_1_to_100_characters():
    errors = validate_commands([command(description=""), command(description="x" * 101)])
    assert errors["0"]["description"]["_errors"][0]["code"] == "BASE_TYPE_BAD_LENGTH"
    assert "description" in errors["1"]


def test_at_most_25_options_and_25_choices():
    too_many = command(options=[option(f"o{i}") for i in range(26)])
    choices = command(
        options=[option("style", choices=[{"name": str(i), "value": str(i)} for i in range(26)])]
    )
    errors = validate_commands([too_many, choices])
    assert errors["0"]["options"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    assert errors["1"]["options"]["0"]["choices"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"


def test_required_options_come_before_optional_ones():
    errors = validate_commands(
        [command(options=[option("seed", 4), option("prompt", required=True)])]
    )
    assert (
        errors["0"]["options"]["1"]["required"]["_errors"][0]["code"]
        == "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID"
    )


def test_ranges_only_on_the_types_that_have_them():
    errors = validate_commands(
        [
            command(
                options=[
                    option("prompt", 3, min_value=1),
                    option("steps", 4, max_length=5),
                    option("scale", 10, min_value=10, max_value=5),
                ]
            )
        ]
    )
    options = errors["0"]["options"]
    assert "min_value" in options["0"] and "max_length" in options["1"]
    assert "min_value" in options["2"]


def test_subcommands_cannot_be_mixed_with_values_or_nested_too_deep():
    mixed = command(options=[option("set", 1), option("user", 6)])
    deep = command(options=[option("set", 1, options=[option("inner", 1)])])
    group_in_group = command(options=[option("a", 2, options=[option("b", 2)])])
    errors = validate_commands([mixed, deep, group_in_group])
    assert "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID" in codes(errors["0"])
    assert "APPLICATION_COMMAND_OPTION_TYPE_INVALID" in codes(errors["1"])
    assert "APPLICATION_COMMAND_OPTION_TYPE_INVALID" in codes(errors["2"])


def test_duplicate_names_and_choice_value_types():
    errors = validate_commands(
        [
            command(
                options=[
                    option("seed", 4, choices=[{"name": "one", "value": "1"}]),
                    option("seed", 4),
                ]
            ),
            command(),
        ]
    )
    assert "APPLICATION_COMMAND_OPTION_CHOICE_VALUE_INVALID" in codes(errors["0"])
    assert "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS" in codes(errors["0"])
    assert "APPLICATION_COMMANDS_DUPLICATE_NAME" in codes(errors["1"])


def test_combined_length_over_4000_is_too_large():
    big = command(
        options=[
            option(
                f"o{i}",
                description="d" * 100,
                choices=[{"name": "n" * 100, "value": "v" * 100} for _ in range(2)],
            )
            for i in range(10)
        ]
    )
    assert "APPLICATION_COMMAND_TOO_LARGE" in codes(validate_commands([big]))
