"""A hand-written Pratt parser: tokens to a syntax tree, with precise positions and hard size limits.

Recursion is bounded by ``Limits.max_depth`` (checked before every nested sub-expression), so no input,
however deeply nested, can reach Python's recursion limit.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TypeVar

from ordercore.errors import InvalidExpression, InvalidMoney, InvalidValue, RuleProblem
from ordercore.money import Money, minor_units

from .lexer import LexError, Token, tokenize
from .limits import Limits
from .nodes import (
    BINARY_PRECEDENCE,
    COMPARISONS,
    NEGATE_PRECEDENCE,
    NOT_PRECEDENCE,
    Attribute,
    Binary,
    Call,
    ListLiteral,
    Literal,
    Name,
    Node,
    Quantifier,
    Unary,
)
from .types import KEYWORDS

__all__ = ["QUANTIFIERS", "parse"]

QUANTIFIERS = frozenset({"any", "all", "count", "sum", "max_of", "min_of"})
_POSTFIX = 8
N = TypeVar("N", bound=Node)


class _Stop(Exception):
    def __init__(self, problem: RuleProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _describe(token: Token) -> str:
    if token.kind == "eof":
        return "end of expression"
    return f"{token.text!r}"


def _is_currency_code(text: str) -> bool:
    return len(text) == 3 and text.isascii() and text.isalpha() and text.isupper()


class _Parser:
    def __init__(self, tokens: list[Token], problems: list[RuleProblem], limits: Limits) -> None:
        self.limits = limits
        self.problems = problems
        self.tokens = tokens
        self.pos = 0
        self.nesting = 0
        self.count = 0
        self.depth: dict[int, int] = {}

    # -- tokens -------------------------------------------------------------------------------------------
    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "eof":
            self.pos += 1
        return token

    def is_op(self, text: str, token: Token | None = None) -> bool:
        token = token or self.token
        return token.kind == "op" and token.text == text

    def is_word(self, word: str, token: Token | None = None) -> bool:
        token = token or self.token
        return token.kind == "name" and token.text == word

    def fail(self, code: str, message: str, token: Token) -> _Stop:
        return _Stop(RuleProblem("", code, message, token.line, token.column))

    def expect_op(self, text: str, context: str) -> Token:
        if not self.is_op(text):
            code = "syntax_error" if self.token.kind == "eof" else "unexpected_token"
            raise self.fail(code, f"expected {text!r} {context}, found {_describe(self.token)}", self.token)
        return self.advance()

    def check_name(self, token: Token) -> None:
        name = token.text
        if name.startswith("_") or "__" in name:
            self.problems.append(
                RuleProblem(
                    "",
                    "forbidden_name",
                    f"{name!r} is not allowed: names may not start with '_' or contain '__'",
                    token.line,
                    token.column,
                )
            )

    # -- nodes --------------------------------------------------------------------------------------------
    def node(self, node: N, *children: Node) -> N:
        depth = 1 + max((self.depth[id(c)] for c in children), default=0)
        if depth > self.limits.max_depth:
            raise _Stop(
                RuleProblem(
                    "",
                    "too_deep",
                    f"expression nested deeper than {self.limits.max_depth}",
                    node.line,
                    node.column,
                )
            )
        self.count += 1
        if self.count > self.limits.max_nodes:
            raise _Stop(
                RuleProblem(
                    "",
                    "too_many_nodes",
                    f"expression has more than {self.limits.max_nodes} parts",
                    node.line,
                    node.column,
                )
            )
        self.depth[id(node)] = depth
        return node

    # -- grammar ------------------------------------------------------------------------------------------
    def parse(self) -> Node:
        tree = self.expression(0)
        if self.token.kind != "eof":
            raise self.fail("unexpected_token", f"unexpected {_describe(self.token)}", self.token)
        return tree

    def expression(self, min_bp: int) -> Node:
        self.nesting += 1
        if self.nesting > self.limits.max_depth:
            raise self.fail("too_deep", f"expression nested deeper than {self.limits.max_depth}", self.token)
        try:
            left = self.prefix(min_bp)
            after_comparison = False
            while True:
                token = self.token
                op = self.binary_operator()
                if op is not None:
                    bp = BINARY_PRECEDENCE[op]
                    if bp <= min_bp:
                        if after_comparison and op in COMPARISONS:
                            raise self.chained(token)
                        break
                    if after_comparison and op in COMPARISONS:
                        raise self.chained(token)
                    self.advance()
                    if op == "not in":
                        self.advance()
                    right = self.expression(bp)
                    if op in ("and", "or"):
                        left = self.logical_chain(op, bp, left, token, right)
                    else:
                        left = self.node(
                            Binary(op, left, right, line=token.line, column=token.column), left, right
                        )
                    after_comparison = op in COMPARISONS
                    continue
                if self.is_op(".") and min_bp < _POSTFIX:
                    self.advance()
                    name = self.token
                    if name.kind != "name" or name.text in KEYWORDS:
                        raise self.fail(
                            "unexpected_token",
                            f"expected a field name after '.', found {_describe(name)}",
                            name,
                        )
                    self.advance()
                    self.check_name(name)
                    if self.is_op("("):
                        raise self.fail(
                            "method_call",
                            f"method calls such as .{name.text}(...) are not allowed; use a function, e.g. "
                            f"lower(x) instead of x.lower()",
                            name,
                        )
                    left = self.node(Attribute(left, name.text, line=name.line, column=name.column), left)
                    after_comparison = False
                    continue
                if self.is_op("(") and min_bp < _POSTFIX:
                    raise self.fail("syntax_error", "only functions can be called, by name: f(x)", token)
                if self.is_op("[") and min_bp < _POSTFIX:
                    raise self.fail(
                        "syntax_error", "indexing with [...] is not supported; use a quantifier", token
                    )
                break
            return left
        finally:
            self.nesting -= 1

    def logical_chain(self, op: str, bp: int, first: Node, token: Token, second: Node) -> Node:
        """``a or b or c ...``: every operand of a run of one logical operator, built into a balanced tree
        (the same value and the same left-to-right short-circuit order as a left-nested one), so a long
        chain costs depth log2(n), not n."""
        operands, tokens = [first, second], [token]
        while self.binary_operator() == op:
            tokens.append(self.token)
            self.advance()
            operands.append(self.expression(bp))

        def build(lo: int, hi: int) -> Node:
            if hi - lo == 1:
                return operands[lo]
            mid = (lo + hi) // 2
            left, right = build(lo, mid), build(mid, hi)
            at = tokens[mid - 1]  # the operator between the two halves
            return self.node(Binary(op, left, right, line=at.line, column=at.column), left, right)

        return build(0, len(operands))

    def chained(self, token: Token) -> _Stop:
        return self.fail(
            "chained_comparison",
            "comparisons cannot be chained (a < b < c); write a < b and b < c",
            token,
        )

    def binary_operator(self) -> str | None:
        token = self.token
        if token.kind == "op" and token.text in BINARY_PRECEDENCE:
            return token.text
        if token.kind == "name":
            if token.text in ("and", "or", "in"):
                return token.text
            if token.text == "not" and self.is_word("in", self.peek()):
                return "not in"
        return None

    def prefix(self, min_bp: int) -> Node:
        token = self.token
        if self.is_op("-"):
            self.advance()
            operand = self.expression(NEGATE_PRECEDENCE)
            return self.node(Unary("-", operand, line=token.line, column=token.column), operand)
        if self.is_word("not"):
            if min_bp > NOT_PRECEDENCE:
                raise self.fail("syntax_error", "put 'not ...' in parentheses here", token)
            self.advance()
            operand = self.expression(NOT_PRECEDENCE)
            return self.node(Unary("not", operand, line=token.line, column=token.column), operand)
        if self.is_op("("):
            self.advance()
            inner = self.expression(0)
            self.expect_op(")", f"to close the '(' at line {token.line}, column {token.column}")
            return inner
        if self.is_op("["):
            return self.list_literal()
        if token.kind == "number":
            return self.number()
        if token.kind == "duration":
            self.advance()
            return self.node(Literal(token.value, "duration", line=token.line, column=token.column))
        if token.kind == "string":
            self.advance()
            return self.node(Literal(token.value, "string", line=token.line, column=token.column))
        if token.kind == "name":
            return self.name()
        if token.kind == "eof":
            raise self.fail("syntax_error", "unexpected end of expression", token)
        raise self.fail("unexpected_token", f"unexpected {_describe(token)}", token)

    def number(self) -> Node:
        token = self.advance()
        value = token.value
        assert isinstance(value, int | Decimal)
        where = {"line": token.line, "column": token.column}
        following = self.token
        if following.kind == "name" and _is_currency_code(following.text):
            self.advance()
            try:
                minor_units(following.text)
            except InvalidMoney:
                self.problems.append(
                    RuleProblem(
                        "",
                        "unknown_currency",
                        f"{following.text} is not an ISO 4217 currency code",
                        following.line,
                        following.column,
                    )
                )
                return self.node(Literal(Money.zero("EUR"), "money", **where))
            try:
                money = Money.of(value, following.text)
            except InvalidMoney as e:
                self.problems.append(
                    RuleProblem(
                        "", "bad_literal", f"{token.text} {following.text}: amount {e.reason}", **where
                    )
                )
                money = Money.zero(following.text)
            return self.node(Literal(money, "money", **where))
        kind = "decimal" if isinstance(value, Decimal) else "int"
        return self.node(Literal(value, kind, **where))

    def list_literal(self) -> Node:
        opening = self.advance()
        items: list[Node] = []
        while not self.is_op("]"):
            items.append(self.expression(0))
            if len(items) > self.limits.max_list:
                raise self.fail(
                    "too_many_items", f"list literal has more than {self.limits.max_list} items", opening
                )
            if not self.is_op(","):
                break
            self.advance()
        self.expect_op("]", f"to close the '[' at line {opening.line}, column {opening.column}")
        return self.node(ListLiteral(tuple(items), line=opening.line, column=opening.column), *items)

    def name(self) -> Node:
        token = self.advance()
        where = {"line": token.line, "column": token.column}
        word = token.text
        if word in ("true", "false"):
            return self.node(Literal(word == "true", "bool", **where))
        if word == "null":
            return self.node(Literal(None, "null", **where))
        if word in KEYWORDS:
            raise self.fail("unexpected_token", f"unexpected {word!r}", token)
        self.check_name(token)
        if not self.is_op("("):
            return self.node(Name(word, **where))
        self.advance()
        if word in ("date", "datetime"):
            return self.temporal(token)
        if word in QUANTIFIERS:
            return self.quantifier(token)
        args: list[Node] = []
        while not self.is_op(")"):
            args.append(self.expression(0))
            if not self.is_op(","):
                break
            self.advance()
        self.expect_op(")", f"to close the call of {word}()")
        return self.node(Call(word, tuple(args), **where), *args)

    def temporal(self, token: Token) -> Node:
        where = {"line": token.line, "column": token.column}
        word = token.text
        argument = self.token
        if argument.kind != "string":
            raise self.fail(
                "bad_literal", f'{word}() takes one string literal, e.g. {word}("2026-12-24")', argument
            )
        self.advance()
        self.expect_op(")", f"after the {word}() literal")
        text = argument.value
        assert isinstance(text, str)
        value: date
        try:
            value = date.fromisoformat(text) if word == "date" else datetime.fromisoformat(text)
        except ValueError:
            self.problems.append(
                RuleProblem(
                    "", "bad_literal", f"{text!r} is not an ISO 8601 {word}", argument.line, argument.column
                )
            )
            value = date(2000, 1, 1)
            return self.node(Literal(value, "date", **where))
        if isinstance(value, datetime) and value.utcoffset() is None:
            self.problems.append(
                RuleProblem(
                    "",
                    "bad_literal",
                    f"datetime {text!r} has no time zone; add one, e.g. {text}+00:00",
                    argument.line,
                    argument.column,
                )
            )
        return self.node(Literal(value, word, **where))

    def quantifier(self, token: Token) -> Node:
        where = {"line": token.line, "column": token.column}
        var = self.token
        if var.kind != "name" or var.text in KEYWORDS or not self.is_word("in", self.peek()):
            raise self.fail(
                "syntax_error", f"{token.text}() is written {token.text}(x in list: expression)", var
            )
        self.advance()
        self.check_name(var)
        self.advance()  # in
        source = self.expression(0)
        self.expect_op(":", f"after the list of {token.text}(x in list: ...)")
        body = self.expression(0)
        self.expect_op(")", f"to close {token.text}(...)")
        return self.node(Quantifier(token.text, var.text, source, body, **where), source, body)


def parse_collecting(text: str, limits: Limits) -> tuple[Node | None, list[RuleProblem]]:
    """The tree (None when the text does not parse) and every problem found on the way."""
    if not isinstance(text, str):
        raise InvalidValue(f"must be a string, not {type(text).__name__}", field="expression", value=text)
    if len(text) > limits.max_length:
        return None, [
            RuleProblem("", "too_long", f"expression longer than {limits.max_length} characters", 1, 1)
        ]
    problems: list[RuleProblem] = []
    try:
        tokens = tokenize(text, limits, problems)
    except LexError as e:
        return None, [*problems, e.problem]
    parser = _Parser(tokens, problems, limits)
    try:
        tree = parser.parse()
    except _Stop as e:
        return None, [*parser.problems, e.problem]
    return tree, parser.problems


def parse(text: str, *, limits: Limits | None = None) -> Node:
    """The syntax tree of ``text``; raises ``InvalidExpression`` for malformed text or a broken limit."""
    tree, problems = parse_collecting(text, limits or Limits())
    if problems or tree is None:
        raise InvalidExpression(problems)
    return tree
