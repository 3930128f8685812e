"""Rule files and conditions that must be refused at load, never failing or stalling at order intake."""

from __future__ import annotations

import json
import re
import sys
from types import SimpleNamespace
from typing import Any

import attrs
import pytest

from ordercore.errors import InvalidExpression, InvalidRuleSet, InvalidValue, RuleEvaluationFailed
from ordercore.rules import builtin_rule, load_rules
from ordercore.rules import loader as loader_module
from ordercore.rules.context import ORDER_SCHEMA
from ordercore.rules.language import STRING, Limits, Record, Schema, compile_expression
from ordercore.rules.language.checker import check_collecting
from ordercore.rules.language.compiler import compile_checked
from ordercore.rules.language.parser import parse_collecting
from ordercore.rules.language.regex import MAX_SUBJECT

HEADER = 'name = "acme"\nversion = "1"\n'
TEXT = Schema(Record("context", {"s": STRING}))


def codes(text: str, fmt: str = "toml") -> list[tuple[str, str]]:
    with pytest.raises(InvalidRuleSet) as info:
        load_rules(text, format=fmt)
    return [(p.code, p.message) for p in info.value.problems]


def condition(expression: str) -> str:
    return HEADER + f'[[rules]]\nid = "r"\nwhen = \'{expression}\'\noutcome = "accept"\n'


def matching(pattern: str) -> str:
    """A rule file whose condition matches the e-mail against ``pattern`` (escaped for the language)."""
    escaped = pattern.replace("\\", "\\\\")
    return condition(f'matches(customer.email, "{escaped}")')


# -- matches(): patterns that backtrack without bound are refused at load --------------------------------------
@pytest.mark.parametrize(
    "pattern",
    [
        "^([a-z0-9]+)+@example[.]com$",
        "(a+)+",
        "(a*)*",
        "(a|aa)+",
        r"(\w+\s?)*",
        "(a+){2}",
        "(ab|[a-z]b)+",
        "(?i)(ab|Ab)+",
        r"(a)\1",
        r"(?P<x>a)(?P=x)",
        r"(a)?(?(1)b|c)",
    ],
)
def test_a_pattern_that_can_backtrack_exponentially_is_refused_at_load(pattern: str) -> None:
    [(code, message)] = codes(matching(pattern))
    assert code == "bad_regex"
    assert "backtrack" in message or "backreference" in message


@pytest.mark.parametrize(
    "pattern", ["a*a*a*b", ".*x.*y", r"\w+\w+!", "^[a-z]+x[a-z]+$", "(?i)^[a-z]+X[a-z]+$", r"(\d+)\d+"]
)
def test_unbounded_repeats_that_can_share_characters_are_refused_at_load(pattern: str) -> None:
    # each way of sharing a run between them is tried on a string that almost matches: n**k ways
    [(code, message)] = codes(matching(pattern))
    assert code == "bad_regex" and "backtrack polynomially" in message


@pytest.mark.parametrize(
    "pattern",
    [r"^\w+@\w+$", r"[^@]+@[^@]+", r"\d+\.\d+", r"\s+\S+", "gift.*wrap", "x*y*", "^.*$", r"^[A-Z]+-[0-9]+$"],
)
def test_repeats_kept_apart_by_a_character_only_one_takes_load(pattern: str) -> None:
    rules = load_rules(matching(pattern))
    assert [r.id for r in rules.rules] == ["r"]


@pytest.mark.parametrize(
    "pattern",
    [
        "^(DE|AT)$",
        "^[A-Z]+-[0-9]$",
        "^1[0-9]{4}$",
        "[0-9]+",
        "(ab){2,5}",
        "(a|b)+",
        "(DE|AT)+",
        r"^\d{5}(-\d{4})?$",
        r"(?:[a-z]{2})+",
        r"\bfoo\b",
        "a+b*c?",
        "(?i)^(de|at)$",
    ],
)
def test_ordinary_patterns_load_and_run(pattern: str) -> None:
    rules = load_rules(matching(pattern))
    assert [r.id for r in rules.rules] == ["r"]


def test_matches_looks_at_strings_up_to_a_bounded_length() -> None:
    expression = compile_expression('matches(s, "b$")', TEXT)
    assert expression.evaluate(SimpleNamespace(s="a" * (MAX_SUBJECT - 1) + "b")) is True
    with pytest.raises(RuleEvaluationFailed, match="at most 10,000 characters"):
        expression.evaluate(SimpleNamespace(s="a" * MAX_SUBJECT + "b"))


# -- the parsers' own failures are problems of the file ------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "fmt", "code"),
    [
        (HEADER + "x = " + "[" * 3000 + "]" * 3000, "toml", "bad_toml"),
        (HEADER + "x = " + "{a=" * 3000 + "1" + "}" * 3000, "toml", "bad_toml"),
        (
            HEADER + "[[rules]]\nid='r'\nwhen='true'\noutcome='accept'\npriority=" + "9" * 5000,
            "toml",
            "bad_toml",
        ),
        ('{"name":"a","version":' + "9" * 5000 + "}", "json", "bad_json"),
        ('{"name":"a","version":"1","x":' + "[" * 100_000 + "]" * 100_000 + "}", "json", "bad_json"),
    ],
)
def test_unreadable_files_are_refused_as_bad_toml_or_json(text: str, fmt: str, code: str) -> None:
    assert [c for c, _ in codes(text, fmt)] == [code]


# -- free text that no store could keep is refused at load ---------------------------------------------------
RULE = {"id": "r", "when": "true", "outcome": "hold", "reason": "review"}


@pytest.mark.parametrize("bad", ["bad \x00 text", "bad \ud800 text"])
@pytest.mark.parametrize("key", ["description", "message", "reason", "stage"])
def test_a_rule_text_with_a_nul_or_a_lone_surrogate_is_refused(key: str, bad: str) -> None:
    text = json.dumps({"name": "acme", "version": "1", "rules": [{**RULE, key: bad}]})
    with pytest.raises(InvalidRuleSet) as info:
        load_rules(text, format="json")
    [problem] = [p for p in info.value.problems if p.code == "bad_value"]
    assert problem.rule_id == "r" and problem.message.startswith(f"{key} must not contain")


@pytest.mark.parametrize("key", ["name", "version", "description", "stages", "channels"])
def test_a_set_text_with_a_nul_is_refused(key: str) -> None:
    data: dict[str, Any] = {"name": "acme", "version": "1", "rules": [dict(RULE)]}
    if key == "stages":
        data["stages"] = ["intake", "fra\x00ud"]
    elif key == "channels":
        data["rules"][0]["channels"] = ["web\x00"]
    else:
        data[key] = "acme\x00"
    with pytest.raises(InvalidRuleSet) as info:
        load_rules(json.dumps(data), format="json")
    assert [p.message for p in info.value.problems if p.code == "bad_value"] == [
        f"{key} must not contain a NUL character"
    ]


# -- locating rules: one pass over the file, whatever the ids look like -----------------------------------------
def escaped_rules(count: int, bad: int) -> str:
    rules = [
        f'{{"id": "\\u0072{i}", "when": "true", "outcome": "{"nope" if i == bad else "accept"}"}}'
        for i in range(count)
    ]
    return '{"name": "a", "version": "1", "rules": [\n' + ",\n".join(rules) + "\n]}"


def test_rules_with_escaped_ids_are_located_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    text = escaped_rules(2_000, bad=1_500)
    compiled: list[str] = []
    real = re.compile

    def counting(pattern: Any, flags: int = 0) -> Any:
        compiled.append(pattern)
        return real(pattern, flags)

    positions = loader_module._Positions(text)
    monkeypatch.setattr(loader_module.re, "compile", counting)
    spans = positions.rule_spans([f"r{i}" for i in range(2_000)])
    monkeypatch.undo()
    assert len(compiled) < 5  # not one pattern (and one search of the file) per rule
    for i in (0, 1, 999, 1_999):
        assert f'"\\u0072{i}"' in text[spans[i][0] : spans[i][1]]
    with pytest.raises(InvalidRuleSet) as info:
        load_rules(text, format="json")
    [problem] = info.value.problems
    assert (problem.rule_id, problem.code, problem.line) == ("r1500", "bad_outcome", 1_502)


# -- Limits: no depth Python itself cannot compile -------------------------------------------------------------
@pytest.mark.parametrize("depth", [0, 101, 250, 2_000, True, "50"])
def test_max_depth_beyond_the_documented_maximum_is_refused(depth: object) -> None:
    with pytest.raises(InvalidValue) as info:
        Limits(max_depth=depth)  # type: ignore[arg-type]
    assert info.value.field == "max_depth"


def test_the_deepest_allowed_condition_compiles() -> None:
    limits = Limits(max_depth=100)
    for text in ("-" * 97 + "1 == 1", "not " * 98 + "true", "(" * 97 + "true" + ")" * 97):
        assert compile_expression(text, ORDER_SCHEMA, limits=limits).evaluate(SimpleNamespace()) is not None


def test_code_too_deep_for_python_is_an_invalid_expression_not_a_syntax_error() -> None:
    # past the parser's limits (only a hand-made limits object gets there): the compiler still refuses
    # with the language's own error
    deep = SimpleNamespace(**{**attrs.asdict(Limits()), "max_depth": 300})
    depth = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # for the parser and checker, not for Python's compiler
    try:
        tree, problems = parse_collecting("not " * 250 + "true", deep)  # type: ignore[arg-type]
        assert tree is not None and not problems
        checked, problems = check_collecting(tree, ORDER_SCHEMA, limits=deep)  # type: ignore[arg-type]
        assert checked is not None
    finally:
        sys.setrecursionlimit(depth)
    with pytest.raises(InvalidExpression) as info:
        compile_checked(checked, "deep")
    assert [p.code for p in info.value.problems] == ["too_deep"]


# -- duplicate_order: a window the clock can subtract --------------------------------------------------------
def test_a_duplicate_window_over_a_year_is_refused_at_load() -> None:
    text = HEADER + '[[rules]]\nid = "dup"\nbuiltin = "duplicate_order"\nparams = { window = "999999w" }\n'
    [(code, message)] = codes(text)
    assert code == "bad_param" and message.startswith("params.window: must be at most 366 days")
    with pytest.raises(InvalidRuleSet):
        builtin_rule("duplicate_order", window="53w")
    assert builtin_rule("duplicate_order", window="366d").id
