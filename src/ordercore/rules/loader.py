"""Loading rule sets from TOML or JSON text, checked in full before anything runs.

A rule file names the set and its version and lists rules::

    name = "acme"
    version = "7"

    [[rules]]
    id = "big-first-order"
    stage = "fraud"
    when = "order.total > 5000 EUR and customer.is_new"
    outcome = "hold"
    reason = "review_large_new_customer"
    message = "first order of {order.total}"

    [[rules]]
    id = "embargo"
    builtin = "embargoed_destination"
    params = { countries = ["KP", "IR", "SY", "CU"] }

A rule has exactly one of ``when`` (an expression of the condition language), ``builtin`` (a built-in rule,
with ``params``) and ``python`` (the name of a Python condition registered with the loader). Every problem
in the file is reported at once in :class:`ordercore.InvalidRuleSet`, each with the rule id and the line
and column in the file.
"""

from __future__ import annotations

import bisect
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ordercore.errors import InvalidExpression, InvalidRuleSet, InvalidValue, RuleProblem
from ordercore.rules.builtin import make_builtin
from ordercore.rules.context import ORDER_SCHEMA
from ordercore.rules.language import BOOL, Limits, Schema, compile_expression
from ordercore.rules.model import (
    DEFAULT_STAGES,
    Condition,
    MessageTemplate,
    Outcome,
    PythonCondition,
    Rule,
    RuleSet,
)
from ordercore.values import text_fault

__all__ = ["MAX_RULES", "MAX_TEXT", "compile_condition", "compile_message", "load_rules"]

#: A rule file larger than this (in characters) is refused unread.
MAX_TEXT = 1_000_000
#: At most this many rules in one set.
MAX_RULES = 2_000

_RULE_KEYS = frozenset(
    {
        "id",
        "description",
        "stage",
        "priority",
        "channels",
        "segments",
        "when",
        "builtin",
        "params",
        "python",
        "outcome",
        "reason",
        "message",
        "enabled",
    }
)
_TOP_KEYS = frozenset({"name", "version", "description", "stages", "on_error", "rules"})
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_RULES_HEADER = re.compile(r"\[\[rules\]\]")
#: a rule's ``id`` key and its value, as written: in double quotes (escapes kept) or in single quotes
_ID_KEY = re.compile(r"""["']?\bid["']?\s*[=:]\s*(?:"(?P<double>(?:[^"\\\n]|\\.)*)"|'(?P<single>[^'\n]*)')""")


def _first_fault(texts: Iterable[str]) -> str | None:
    """What :func:`~ordercore.values.text_fault` finds in the first of ``texts`` it finds something in."""
    return next((f for f in map(text_fault, texts) if f is not None), None)


def compile_condition(text: str, *, schema: Schema = ORDER_SCHEMA, limits: Limits | None = None) -> Condition:
    """A condition from an expression (raises :class:`ordercore.InvalidExpression` with every problem)."""
    compiled: Condition = compile_expression(text, schema, limits=limits or Limits(), expect=BOOL)
    return compiled


def compile_message(text: str, *, schema: Schema = ORDER_SCHEMA) -> MessageTemplate:
    """A message template: ``{expression}`` placeholders, ``{{``/``}}`` for literal braces."""
    if not isinstance(text, str):
        raise InvalidValue(f"must be a string, not {type(text).__name__}", field="text", value=text)
    parts: list[str | Condition] = []
    problems: list[RuleProblem] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        parts.append(text[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif m.group(1) is None:
            problems.append(
                RuleProblem(
                    "", "bad_message", f"unbalanced {token!r} at offset {m.start()}", 1, m.start() + 1
                )
            )
        else:
            try:
                parts.append(compile_expression(m.group(1), schema, limits=Limits(), expect=None))
            except InvalidExpression as e:
                problems.extend(
                    RuleProblem(
                        "",
                        p.code,
                        f"in message placeholder {{{m.group(1)}}}: {p.message}",
                        1,
                        m.start() + 1 + p.column,
                    )
                    for p in e.problems
                )
    parts.append(text[pos:])
    if problems:
        raise InvalidExpression(problems, "invalid message template")
    return MessageTemplate(text, tuple(p for p in parts if p != ""))


class _Positions:
    """Finds where a rule's keys are in the file text (tomllib and json give values, not positions)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]

    def line_col(self, offset: int) -> tuple[int, int]:
        lo, hi = 0, len(self.line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, offset - self.line_starts[lo] + 1

    def rule_spans(self, ids: list[str]) -> list[tuple[int, int]]:
        """For each rule (by position in the list), the stretch of text that holds it, best effort: every
        ``id = "..."`` in the text is found in one pass, by its value as written and as decoded (a JSON
        or TOML escape), and each rule takes the first one after the previous rule's."""
        found: dict[str, list[tuple[int, int]]] = {}
        for m in _ID_KEY.finditer(self.text):
            raw = m["double"] if m["double"] is not None else m["single"]
            where = (m.start(), m.end())
            found.setdefault(raw, []).append(where)
            if m["double"] is not None and "\\" in raw:
                try:
                    decoded = json.loads(f'"{raw}"')
                except ValueError:
                    continue
                if decoded != raw:
                    found.setdefault(decoded, []).append(where)
        starts: list[int] = []
        at = 0
        for rule_id in ids:
            places = found.get(rule_id, [])
            i = bisect.bisect_left(places, (at, 0))
            if i < len(places):
                starts.append(places[i][0])
                at = places[i][1]
            else:
                starts.append(at)
        headers = [m.end() for m in _RULES_HEADER.finditer(self.text)]
        blocks = [self._block_start(start, headers) for start in starts]
        return list(zip(blocks, [*blocks[1:], len(self.text)][: len(blocks)], strict=True))

    def _block_start(self, offset: int, headers: list[int]) -> int:
        """The ``[[rules]]`` header before ``offset`` (``headers`` are where they end)."""
        i = bisect.bisect_right(headers, offset)
        if i:
            return headers[i - 1] - len("[[rules]]")
        # JSON, or TOML written as an array of inline tables: the brace that opens the rule
        header = self.text.rfind("{", 0, offset)
        return header if header >= 0 else offset

    def key(self, span: tuple[int, int], key: str) -> tuple[int, int, int] | None:
        """Line and column of ``key``'s value within the span, and the offset of its first character."""
        m = re.compile(r"""["']?\b""" + re.escape(key) + r"""["']?\s*[=:]\s*("{3}|'{3}|["']?)""").search(
            self.text, span[0], span[1]
        )
        if m is None:
            return None
        line, col = self.line_col(m.end())
        if m.group(1) in ('"""', "'''") and self.text.startswith("\n", m.end()):
            line, col = line + 1, 1  # TOML trims the newline right after the opening quotes
        return line, col, m.end()


def _parse(text: str, fmt: str) -> tuple[dict[str, Any] | None, list[RuleProblem]]:
    if fmt == "toml":
        try:
            return tomllib.loads(text), []
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
            line, col = (int(m[1]), int(m[2])) if m else (0, 0)
            return None, [RuleProblem("", "bad_toml", str(e), line, col)]
        except RecursionError:
            return None, [RuleProblem("", "bad_toml", "nested too deeply")]
        except ValueError as e:  # a number Python will not convert (an integer of over 4,300 digits)
            return None, [RuleProblem("", "bad_toml", f"unreadable value: {e}")]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return None, [RuleProblem("", "bad_json", e.msg, e.lineno, e.colno)]
    except RecursionError:
        return None, [RuleProblem("", "bad_json", "nested too deeply")]
    except ValueError as e:  # a number Python will not convert (an integer of over 4,300 digits)
        return None, [RuleProblem("", "bad_json", f"unreadable value: {e}")]
    if not isinstance(data, dict):
        return None, [
            RuleProblem("", "bad_json", "a rule file is an object with name, version and rules", 1, 1)
        ]
    return data, []


def load_rules(
    text: str | bytes,
    *,
    format: str = "toml",
    python: Mapping[str, PythonCondition | Callable[[Any], bool]] | None = None,
    schema: Schema = ORDER_SCHEMA,
    limits: Limits | None = None,
) -> RuleSet:
    """A :class:`RuleSet` from TOML (``format="toml"``) or JSON (``"json"``) text.

    ``python`` maps the names rules may use with ``python = "..."`` to Python conditions (a
    :class:`PythonCondition`, or a callable taking the context and returning a bool). Raises
    :class:`ordercore.InvalidRuleSet` with every problem found."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidRuleSet(
                [RuleProblem("", "bad_encoding", f"not UTF-8: {e.reason} at byte {e.start}")]
            ) from None
    if not isinstance(text, str):
        raise InvalidRuleSet([RuleProblem("", "bad_rule_set", f"expected text, not {type(text).__name__}")])
    if format not in ("toml", "json"):
        raise InvalidRuleSet(
            [RuleProblem("", "bad_format", f"format must be 'toml' or 'json', not {format!r}")]
        )
    if len(text) > MAX_TEXT:
        raise InvalidRuleSet(
            [RuleProblem("", "too_long", f"a rule file has at most {MAX_TEXT:,} characters")]
        )
    data, problems = _parse(text, format)
    if data is None:
        raise InvalidRuleSet(problems)
    return _build(data, _Positions(text), python or {}, schema, limits or Limits())


def _build(
    data: dict[str, Any],
    pos: _Positions,
    python: Mapping[str, PythonCondition | Callable[[Any], bool]],
    schema: Schema,
    limits: Limits,
) -> RuleSet:
    problems: list[RuleProblem] = []

    def top(key: str, code: str, message: str) -> None:
        found = pos.key((0, len(pos.text)), key)
        line, col = (found[0], found[1]) if found else (0, 0)
        problems.append(RuleProblem("", code, message, line, col))

    for key in sorted(set(data) - _TOP_KEYS):
        top(key, "unknown_key", f"unknown key {key!r}; a rule set has {sorted(_TOP_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        top("name", "bad_rule_set", "name must be a non-empty string")
    version = data.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version.strip():
        top("version", "bad_rule_set", "version must be a non-empty string or a whole number")
    stages = data.get("stages", list(DEFAULT_STAGES))
    if not isinstance(stages, list) or not stages or not all(isinstance(s, str) and s for s in stages):
        top("stages", "bad_rule_set", "stages must be a non-empty list of names")
        stages = list(DEFAULT_STAGES)
    for key, value in (("name", name), ("version", version), ("description", data.get("description"))):
        fault = text_fault(value) if isinstance(value, str) else None
        if fault is not None:
            top(key, "bad_value", f"{key} {fault}")
    fault = _first_fault(stages)
    if fault is not None:
        top("stages", "bad_value", f"stages {fault}")
    on_error = data.get("on_error", "hold")
    if on_error not in ("hold", "ignore"):
        top("on_error", "bad_rule_set", "on_error must be 'hold' or 'ignore'")
        on_error = "hold"
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        top("rules", "bad_rule_set", "rules must be a list of tables")
        raw_rules = []
    if len(raw_rules) > MAX_RULES:
        top("rules", "too_many_rules", f"at most {MAX_RULES} rules in one set")
        raw_rules = []
    ids = [str(r.get("id", "")) for r in raw_rules]
    spans = pos.rule_spans(ids)
    rules: list[Rule] = []
    for index, (raw, span) in enumerate(zip(raw_rules, spans, strict=True)):
        rule, found = _rule(raw, index, span, pos, python, schema, limits)
        problems.extend(found)
        if rule is not None:
            rules.append(rule)
    if not problems:
        try:
            return RuleSet(str(name), str(version), tuple(rules), tuple(stages), on_error)
        except InvalidRuleSet as e:
            problems.extend(
                _locate(p, spans[ids.index(p.rule_id)] if p.rule_id in ids else None, pos, "id")
                for p in e.problems
            )
    raise InvalidRuleSet(problems)


def _locate(p: RuleProblem, span: tuple[int, int] | None, pos: _Positions, key: str) -> RuleProblem:
    if span is None or p.line:
        return p
    found = pos.key(span, key) or pos.key(span, "id")
    if found is None:
        return p
    return RuleProblem(p.rule_id, p.code, p.message, found[0], found[1])


def _rule(
    raw: dict[str, Any],
    index: int,
    span: tuple[int, int],
    pos: _Positions,
    python: Mapping[str, PythonCondition | Callable[[Any], bool]],
    schema: Schema,
    limits: Limits,
) -> tuple[Rule | None, list[RuleProblem]]:
    rule_id = raw.get("id")
    label = rule_id if isinstance(rule_id, str) and rule_id else f"rules[{index}]"
    problems: list[RuleProblem] = []

    def where(key: str) -> tuple[int, int]:
        found = pos.key(span, key) or pos.key(span, "id")
        return (found[0], found[1]) if found else (0, 0)

    def bad(key: str, code: str, message: str) -> None:
        problems.append(RuleProblem(label, code, message, *where(key)))

    def text(key: str, default: str | None, *, required: bool = False) -> str | None:
        v = raw.get(key, default)
        if v is None:
            if required:
                bad(key, "missing_key", f"{key} is required")
            return None
        if not isinstance(v, str):
            bad(key, "bad_value", f"{key} must be a string, not {type(v).__name__}")
            return None
        fault = text_fault(v)
        if fault is not None:
            bad(key, "bad_value", f"{key} {fault}")
            return None
        return v

    def strings(key: str) -> frozenset[str]:
        v = raw.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            bad(key, "bad_value", f"{key} must be a list of non-empty strings")
            return frozenset()
        fault = _first_fault(v)
        if fault is not None:
            bad(key, "bad_value", f"{key} {fault}")
            return frozenset()
        return frozenset(v)

    for key in sorted(set(raw) - _RULE_KEYS):
        bad(key, "unknown_key", f"unknown key {key!r}; a rule has {sorted(_RULE_KEYS)}")
    if not isinstance(rule_id, str) or not rule_id:
        bad("id", "missing_key", "id is required (a non-empty string)")
    description = text("description", "") or ""
    priority = raw.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        bad("priority", "bad_value", "priority must be a whole number")
        priority = 0
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        bad("enabled", "bad_value", "enabled must be true or false")
        enabled = True
    channels, segments = strings("channels"), strings("segments")
    kinds = [k for k in ("when", "builtin", "python") if k in raw]
    if len(kinds) != 1:
        bad(
            kinds[1] if len(kinds) > 1 else "id",
            "bad_condition",
            "a rule needs exactly one of 'when' (an expression), 'builtin' or 'python'"
            + (f"; it has {kinds}" if kinds else ""),
        )
    if "params" in raw and "builtin" not in raw:
        bad("params", "bad_value", "params belong to built-in rules only")
    condition: Condition | None = None
    defaults: dict[str, Any] = {"outcome": None, "reason": None, "stage": "intake", "message": None}
    if kinds == ["when"]:
        source = text("when", None, required=True)
        if source is not None:
            try:
                condition = compile_expression(source, schema, limits=limits, expect=BOOL)
            except InvalidExpression as e:
                found = pos.key(span, "when")
                for p in e.problems:
                    if found is not None and p.line:
                        line = found[0] + p.line - 1
                        col = (found[1] + p.column - 1) if p.line == 1 else p.column
                    else:
                        line, col = where("when")
                    problems.append(RuleProblem(label, p.code, p.message, line, col))
    elif kinds == ["builtin"]:
        name = text("builtin", None, required=True)
        params = raw.get("params", {})
        if not isinstance(params, dict):
            bad("params", "bad_value", "params must be a table")
            params = {}
        if name is not None:
            builtin, cond, found_problems = make_builtin(name, params, rule_id=label)
            for p in found_problems:
                problems.append(
                    RuleProblem(
                        label, p.code, p.message, *where("params" if "param" in p.code else "builtin")
                    )
                )
            condition = cond
            if builtin is not None:
                defaults = {
                    "outcome": builtin.outcome.value,
                    "reason": builtin.reason_code,
                    "stage": builtin.stage,
                    "message": builtin.message,
                    "description": builtin.description,
                }
                description = description or builtin.description
    elif kinds == ["python"]:
        name = text("python", None, required=True)
        if name is not None:
            registered = python.get(name)
            if registered is None:
                bad(
                    "python",
                    "unknown_python_rule",
                    f"no Python condition registered as {name!r}; known: {sorted(python)}",
                )
            elif isinstance(registered, PythonCondition):
                condition = registered
            elif callable(registered):
                condition = PythonCondition(registered, name)
            else:
                bad(
                    "python", "bad_condition", f"{name!r} is registered as neither a condition nor a callable"
                )
    stage = text("stage", defaults["stage"]) or defaults["stage"]
    outcome_text = text("outcome", defaults["outcome"], required=defaults["outcome"] is None)
    outcome = None
    if outcome_text is not None:
        try:
            outcome = Outcome(outcome_text)
        except ValueError:
            bad(
                "outcome",
                "bad_outcome",
                f"outcome must be one of {[o.value for o in Outcome]}, not {outcome_text!r}",
            )
    reason = text("reason", defaults["reason"]) or ""
    message_text = text("message", defaults["message"])
    message: MessageTemplate | None = None
    if message_text:
        try:
            message = compile_message(message_text, schema=schema)
        except InvalidExpression as e:
            line, col = where("message")
            problems.extend(
                RuleProblem(label, p.code, p.message, line, col + max(p.column - 1, 0)) for p in e.problems
            )
    if problems or condition is None or outcome is None:
        return None, problems
    rule = Rule(
        id=label,
        condition=condition,
        outcome=outcome,
        reason_code=reason,
        stage=stage,
        priority=priority,
        description=description,
        message=message,
        channels=channels,
        segments=segments,
        enabled=enabled,
    )
    for p in rule.problems():
        problems.append(
            RuleProblem(
                label,
                p.code,
                p.message,
                *where({"missing_reason": "reason", "bad_rule_id": "id"}.get(p.code, "id")),
            )
        )
    return (None if problems else rule), problems
