"""Tool arguments against their inputSchema: clear problems, unusable schemas passed through."""

from __future__ import annotations

import logging

import pytest

from gateway.argument_schema import ArgumentSchemas

SCHEMA = {
    "type": "object",
    "properties": {
        "dataset": {"type": "string"},
        "limits": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    },
    "required": ["dataset"],
    "additionalProperties": False,
}


def test_matching_arguments_have_no_problem() -> None:
    assert ArgumentSchemas().problem("up", "t", SCHEMA, {"dataset": "sales", "limits": [1, 2]}) is None


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, 'the arguments: "dataset" is a required property'),
        ({"dataset": 7}, "argument 'dataset': 7 is not of type \"string\""),
        ({"dataset": "s", "limits": [1, -2]}, "argument 'limits[1]': -2 is less than the minimum of 0"),
        (
            {"dataset": "s", "extra": 1},
            "'extra' is not an argument of this tool; it takes dataset, limits",
        ),
    ],
)
def test_a_problem_names_the_argument_and_what_is_wrong(arguments: dict[str, object], expected: str) -> None:
    assert ArgumentSchemas().problem("up", "t", SCHEMA, arguments) == expected


# What pydantic writes for `params: list[str | int] | None` and a nullable bounded integer.
OPTIONAL = {
    "type": "object",
    "properties": {
        "params": {
            "anyOf": [
                {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                {"type": "null"},
            ]
        },
        "top": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
        "by": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    },
}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        # the branch that takes the value's type says what is wrong inside it
        (
            {"params": ["a", 1, {"x": 1}]},
            'argument \'params[2]\': {"x":1} is not of type "string" or "integer"',
        ),
        ({"top": 0}, "argument 'top': 0 is less than the minimum of 1"),
        ({"by": ["a", 2]}, "argument 'by[1]': 2 is not of type \"string\""),
        # no branch takes it: the types that would
        ({"params": "a"}, 'argument \'params\': "a" is not of type "array" or "null"'),
        ({"by": 3}, 'argument \'by\': 3 is not of type "string" or "array"'),
    ],
)
def test_a_value_matching_no_alternative_is_explained_by_the_one_it_was_meant_for(
    arguments: dict[str, object], expected: str
) -> None:
    assert ArgumentSchemas().problem("up", "t", OPTIONAL, arguments) == expected


def test_a_short_enum_is_named_in_full_and_a_long_one_as_the_validator_says() -> None:
    kinds = ["text", "markdown", "html", "pdf", "docx", "inline"]
    schema = {"type": "object", "properties": {"type": {"type": "array", "items": {"enum": kinds}}}}
    assert ArgumentSchemas().problem("up", "t", schema, {"type": ["md"]}) == (
        'argument \'type[0]\': "md" is not one of "text", "markdown", "html", "pdf", "docx" or "inline"'
    )
    many = {"type": "object", "properties": {"n": {"enum": list(range(20))}}}
    assert ArgumentSchemas().problem("up", "t", many, {"n": 99}) == (
        "argument 'n': 99 is not one of 0, 1 or 18 other candidates"
    )


def test_a_long_offending_value_is_cut_short() -> None:
    problem = ArgumentSchemas().problem("up", "t", SCHEMA, {"dataset": ["x" * 5000]})
    assert problem is not None and problem.endswith("...") and len(problem) < 300


def test_several_problems_are_told_together() -> None:
    problem = ArgumentSchemas().problem("up", "t", SCHEMA, {"dataset": 1, "limits": [-1, "a"], "x": 0})
    assert problem is not None and problem.count("; ") == 2  # three of the four, one line


def test_the_2020_12_dialect_is_the_default() -> None:
    # `prefixItems` exists in 2020-12 only; an older dialect would ignore it.
    schema = {"type": "object", "properties": {"pair": {"prefixItems": [{"type": "string"}]}}}
    problem = ArgumentSchemas().problem("up", "t", schema, {"pair": [1]})
    assert problem == "argument 'pair[0]': 1 is not of type \"string\""


def test_a_changed_schema_is_compiled_again() -> None:
    schemas = ArgumentSchemas()
    assert schemas.problem("up", "t", SCHEMA, {"dataset": 1}) is not None
    relaxed = {**SCHEMA, "properties": {"dataset": {}}}
    assert schemas.problem("up", "t", relaxed, {"dataset": 1}) is None


def test_unusable_schemas_pass_the_call_to_the_upstream(caplog: pytest.LogCaptureFixture) -> None:
    schemas = ArgumentSchemas()
    with caplog.at_level(logging.WARNING, logger="gateway.argument_schema"):
        assert schemas.problem("up", "bad", {"type": 12}, {"a": 1}) is None
        remote = {"type": "object", "properties": {"a": {"$ref": "https://example.invalid/a.json"}}}
        assert schemas.problem("up", "remote", remote, {"a": 1}) is None  # nothing is fetched
        assert schemas.problem("up", "none", None, {"a": 1}) is None
    assert "tool 'bad' of upstream 'up': its inputSchema cannot be used" in caplog.text
    assert "tool 'remote' of upstream 'up'" in caplog.text and "Retrieval is disabled" in caplog.text
