"""Promotion gates: a tiny boolean language over a version's run metrics.

``accuracy >= 0.85 and (latency_p99_ms < 20 or not batch_mode == 1)`` is parsed once, when the
gate is set, and evaluated each time an alias moves. Pure functions, no I/O.

A missing (or NaN) metric makes its comparison *unknown* rather than false, and unknown
propagates through ``and``/``or``/``not`` as in SQL's three-valued logic; a gate passes only
when it is true. So ``not drift > 0.1`` does not pass just because ``drift`` was never logged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from shipyard.errors import InvalidArgumentError

__all__ = [
    "And",
    "Comparison",
    "GateExpr",
    "GateResult",
    "Not",
    "Or",
    "evaluate_gate",
    "parse_gate",
    "render_gate",
]

Op = Literal["<", "<=", ">", ">=", "==", "!="]

MAX_LENGTH = 4096
MAX_DEPTH = 64


@dataclass(frozen=True)
class Comparison:
    """``metric op number``; ``text`` keeps the number as written, for messages."""

    metric: str
    op: Op
    value: float
    text: str


@dataclass(frozen=True)
class And:
    left: GateExpr
    right: GateExpr


@dataclass(frozen=True)
class Or:
    left: GateExpr
    right: GateExpr


@dataclass(frozen=True)
class Not:
    operand: GateExpr


GateExpr = Comparison | And | Or | Not


@dataclass(frozen=True)
class GateResult:
    """Whether a gate passed and, when it did not, the terms that held it back."""

    passed: bool
    failing: list[str]


# --- parsing ------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.\-]*)
  | (?P<op><=|>=|==|!=|<|>|=)
  | (?P<lparen>\()
  | (?P<rparen>\))
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not"}
_SYNTAX_HINT = (
    "Write terms as `metric >= number`, joined with and/or/not and parentheses, "
    "e.g. `accuracy >= 0.85 and latency_p99_ms < 20`."
)


@dataclass(frozen=True)
class _Token:
    kind: str  # number | ident | keyword | op | lparen | rparen | end
    text: str
    pos: int


def _error(expr: str, pos: int, what: str) -> InvalidArgumentError:
    pointer = f"\n  {expr}\n  {' ' * pos}^"
    return InvalidArgumentError(
        f"Invalid gate expression at position {pos}: {what}.{pointer}", hint=_SYNTAX_HINT
    )


def _tokenize(expr: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise _error(expr, pos, f"unexpected character {expr[pos]!r}")
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "ident" and text.lower() in _KEYWORDS:
            tokens.append(_Token("keyword", text.lower(), pos))
        elif kind != "ws":
            tokens.append(_Token(kind, text, pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(expr)))
    return tokens


def _describe(token: _Token) -> str:
    return "end of expression" if token.kind == "end" else repr(token.text)


class _Parser:
    """Recursive descent: or_expr := and_expr ('or' and_expr)*, and so on down to terms."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.tokens = _tokenize(expr)
        self.i = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.i]

    def _take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def _keyword(self, word: str) -> bool:
        if self.token.kind == "keyword" and self.token.text == word:
            self.i += 1
            return True
        return False

    def parse(self) -> GateExpr:
        if self.token.kind == "end":
            raise _error(self.expr, 0, "the expression is empty")
        node = self._or()
        if self.token.kind != "end":
            raise _error(
                self.expr,
                self.token.pos,
                f"expected 'and' or 'or', found {_describe(self.token)}",
            )
        return node

    def _or(self) -> GateExpr:
        node = self._and()
        while self._keyword("or"):
            node = Or(node, self._and())
        return node

    def _and(self) -> GateExpr:
        node = self._not()
        while self._keyword("and"):
            node = And(node, self._not())
        return node

    def _not(self) -> GateExpr:
        start = self.token
        if self._keyword("not"):
            self._enter(start)
            node: GateExpr = Not(self._not())
            self.depth -= 1
            return node
        return self._atom()

    def _enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(self.expr, token.pos, f"nested deeper than {MAX_DEPTH} levels")

    def _atom(self) -> GateExpr:
        token = self.token
        if token.kind == "lparen":
            self._take()
            self._enter(token)
            node = self._or()
            self.depth -= 1
            if self.token.kind != "rparen":
                raise _error(
                    self.expr,
                    self.token.pos,
                    f"expected ')' to close the '(' at position {token.pos}, "
                    f"found {_describe(self.token)}",
                )
            self._take()
            return node
        if token.kind != "ident":
            raise _error(self.expr, token.pos, f"expected a metric name, found {_describe(token)}")
        metric = self._take().text
        op_token = self.token
        if op_token.kind != "op":
            raise _error(
                self.expr,
                op_token.pos,
                f"expected a comparison (< <= > >= == !=) after '{metric}', "
                f"found {_describe(op_token)}",
            )
        self._take()
        number = self.token
        if number.kind != "number":
            raise _error(self.expr, number.pos, f"expected a number, found {_describe(number)}")
        self._take()
        op: Op = "==" if op_token.text == "=" else op_token.text  # type: ignore[assignment]
        return Comparison(metric, op, float(number.text), number.text)


def parse_gate(expr: str) -> GateExpr:
    """Parse a gate expression into its syntax tree.

    Args:
        expr: e.g. ``"accuracy >= 0.85 and latency_p99_ms < 20"``. Metric names are letters,
            digits, ``_``, ``.`` and ``-`` (starting with a letter or ``_``); numbers may be
            negative or scientific; ``=`` means ``==``; ``not`` binds tighter than ``and``,
            which binds tighter than ``or``.

    Returns:
        The tree of :class:`Comparison`, :class:`And`, :class:`Or` and :class:`Not` nodes.

    Raises:
        InvalidArgumentError: the expression is malformed; the message gives the position.
    """
    if not isinstance(expr, str):
        raise TypeError(f"gate expression must be a str, not {type(expr).__name__}")
    if len(expr) > MAX_LENGTH:
        raise InvalidArgumentError(
            f"Gate expression is {len(expr)} characters long; the limit is {MAX_LENGTH}."
        )
    return _Parser(expr).parse()


# --- rendering and evaluation -------------------------------------------------------------

_PRECEDENCE = {Or: 1, And: 2, Not: 3, Comparison: 4}


def render_gate(node: GateExpr) -> str:
    """Canonical text of a tree, with only the parentheses precedence requires."""

    def child(sub: GateExpr, minimum: int) -> str:
        text = render_gate(sub)
        return f"({text})" if _PRECEDENCE[type(sub)] < minimum else text

    if isinstance(node, Comparison):
        return f"{node.metric} {node.op} {node.text}"
    if isinstance(node, Not):
        return f"not {child(node.operand, 3)}"
    word = "and" if isinstance(node, And) else "or"
    level = _PRECEDENCE[type(node)]
    # Left-associative: an equal-precedence node on the right keeps its parentheses.
    return f"{child(node.left, level)} {word} {child(node.right, level + 1)}"


def _format_value(value: float) -> str:
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


_COMPARE = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _metric(metrics: Mapping[str, float], name: str) -> float | None:
    value = metrics.get(name)
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


# Three-valued results: True, False, or None for unknown (a metric is missing).
def _eval(node: GateExpr, metrics: Mapping[str, float]) -> tuple[bool | None, list[str]]:
    if isinstance(node, Comparison):
        value = _metric(metrics, node.metric)
        term = render_gate(node)
        if value is None:
            return None, [f"{term} (metric missing)"]
        if _COMPARE[node.op](value, node.value):
            return True, []
        return False, [f"{term} (was {_format_value(value)})"]
    if isinstance(node, Not):
        inner, failing = _eval(node.operand, metrics)
        if inner is None:
            return None, failing
        if inner is False:
            return True, []
        names = sorted(_metrics_of(node.operand))
        shown = {n: _metric(metrics, n) for n in names}
        values = ", ".join(f"{n}={_format_value(v)}" for n, v in shown.items() if v is not None)
        return False, [f"{render_gate(node)} (was {values})"]
    left, left_failing = _eval(node.left, metrics)
    right, right_failing = _eval(node.right, metrics)
    if isinstance(node, And):
        result = False if False in (left, right) else (True if left and right else None)
    else:
        result = (
            True if True in (left, right) else (False if (left, right) == (False, False) else None)
        )
    if result is True:
        return True, []
    failing = (left_failing if left is not True else []) + (
        right_failing if right is not True else []
    )
    return result, failing


def _metrics_of(node: GateExpr) -> set[str]:
    if isinstance(node, Comparison):
        return {node.metric}
    if isinstance(node, Not):
        return _metrics_of(node.operand)
    return _metrics_of(node.left) | _metrics_of(node.right)


def evaluate_gate(gate: GateExpr | str, metrics: Mapping[str, float]) -> GateResult:
    """Evaluate a gate over a version's metrics.

    Args:
        gate: a parsed tree, or the expression text (parsed first).
        metrics: the latest value of each metric of the version's run.

    Returns:
        ``GateResult(passed, failing)``; each failing term reads like
        ``"accuracy >= 0.85 (was 0.81)"`` or ``"latency_p99_ms < 20 (metric missing)"``.
        When an ``or`` fails, the failing terms of both sides are listed.

    Raises:
        InvalidArgumentError: ``gate`` is text that does not parse.
    """
    node = parse_gate(gate) if isinstance(gate, str) else gate
    result, failing = _eval(node, metrics)
    return GateResult(passed=result is True, failing=[] if result is True else failing)
