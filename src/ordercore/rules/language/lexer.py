"""The tokenizer: condition text to tokens with 1-based line and column."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs

from ordercore.errors import RuleProblem

from .limits import Limits

__all__ = ["Token", "tokenize"]

OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "(", ")", "[", "]", ",", ".", ":")
DURATION_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r"}
_MAX_NUMBER = 100


@attrs.frozen
class Token:
    """``kind`` is number, duration, string, name, op or eof; ``value`` the parsed value."""

    kind: str
    text: str
    value: object
    line: int
    column: int


class LexError(Exception):
    """A token that cannot be read; tokenizing stops here."""

    def __init__(self, problem: RuleProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _problem(code: str, message: str, line: int, column: int) -> RuleProblem:
    return RuleProblem("", code, message, line, column)


def _is_name_start(ch: str) -> bool:
    return ch.isascii() and (ch.isalpha() or ch == "_")


def _is_name_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def tokenize(text: str, limits: Limits, problems: list[RuleProblem]) -> list[Token]:
    """Every token of ``text``, ending with an eof token. Problems that do not stop reading (a bad number,
    say) are appended to ``problems``; the first unreadable character raises :class:`LexError`."""
    tokens: list[Token] = []
    i, line, line_start, n = 0, 1, 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            if text[i] == "\n":
                line += 1
                line_start = i + 1
            i += 1
        column = i - line_start + 1
        if i >= n:
            tokens.append(Token("eof", "", None, line, column))
            return tokens
        ch = text[i]
        if ch.isascii() and ch.isdigit():
            start = i
            while i < n and text[i].isascii() and text[i].isdigit():
                i += 1
            if i + 1 < n and text[i] == "." and text[i + 1].isascii() and text[i + 1].isdigit():
                i += 1
                while i < n and text[i].isascii() and text[i].isdigit():
                    i += 1
            number = text[start:i]
            value: int | Decimal
            if len(number) > _MAX_NUMBER:
                problems.append(
                    _problem("bad_literal", f"number literal longer than {_MAX_NUMBER} digits", line, column)
                )
                value = 0
            else:
                value = Decimal(number) if "." in number else int(number)
            suffix_start = i
            while i < n and _is_name_char(text[i]):
                i += 1
            suffix = text[suffix_start:i]
            if not suffix:
                tokens.append(Token("number", number, value, line, column))
            elif suffix in DURATION_UNITS and isinstance(value, int):
                try:
                    duration = timedelta(**{DURATION_UNITS[suffix]: value})
                except OverflowError:
                    problems.append(
                        _problem("bad_literal", f"duration {number}{suffix} is too large", line, column)
                    )
                    duration = timedelta(0)
                tokens.append(Token("duration", number + suffix, duration, line, column))
            elif suffix in DURATION_UNITS:
                problems.append(
                    _problem(
                        "bad_literal",
                        f"durations are whole numbers: {number}{suffix} is not one",
                        line,
                        column,
                    )
                )
                tokens.append(Token("duration", number + suffix, timedelta(0), line, column))
            elif len(suffix) == 3 and suffix.isupper() and suffix.isalpha():
                # 19.99USD: read as 19.99 USD (the parser makes money of a number and a currency code)
                tokens.append(Token("number", number, value, line, column))
                tokens.append(Token("name", suffix, suffix, line, column + suffix_start - start))
            else:
                problems.append(
                    _problem(
                        "bad_literal",
                        f"{number}{suffix!s} is not a number, a duration (30d, 12h, 15m, 2w, 10s) or money "
                        "(19.99 EUR)",
                        line,
                        column,
                    )
                )
                tokens.append(Token("number", number, value, line, column))
            continue
        if _is_name_start(ch):
            start = i
            while i < n and _is_name_char(text[i]):
                i += 1
            word = text[start:i]
            tokens.append(Token("name", word, word, line, column))
            continue
        if ch in "\"'":
            quote, start = ch, i
            i += 1
            chars: list[str] = []
            while True:
                if i >= n or text[i] == "\n":
                    raise LexError(
                        _problem("unterminated_string", "string literal is never closed", line, column)
                    )
                c = text[i]
                if c == quote:
                    i += 1
                    break
                if c == "\\":
                    escaped = text[i + 1] if i + 1 < n else ""
                    if escaped not in _ESCAPES:
                        if not escaped or escaped == "\n":
                            raise LexError(
                                _problem(
                                    "unterminated_string", "string literal is never closed", line, column
                                )
                            )
                        problems.append(
                            _problem(
                                "bad_literal",
                                f"unknown escape \\{escaped} (use \\\\, \\\", \\', \\n, \\t or \\r)",
                                line,
                                i - line_start + 1,
                            )
                        )
                        chars.append(escaped)
                    else:
                        chars.append(_ESCAPES[escaped])
                    i += 2
                    continue
                chars.append(c)
                i += 1
            value_text = "".join(chars)
            if len(value_text) > limits.max_string:
                problems.append(
                    _problem(
                        "too_long", f"string literal longer than {limits.max_string} characters", line, column
                    )
                )
            tokens.append(Token("string", text[start:i], value_text, line, column))
            continue
        for op in OPERATORS:
            if text.startswith(op, i):
                tokens.append(Token("op", op, op, line, column))
                i += len(op)
                break
        else:
            hint = " (use == to compare)" if ch == "=" else ""
            raise LexError(_problem("syntax_error", f"unexpected character {ch!r}{hint}", line, column))
