"""The run search grammar: filters and order-by items parsed into an AST, then compiled to
SQLAlchemy expressions with bound parameters (user text never reaches SQL as text).

Filter grammar (keywords are case-insensitive)::

    filter     := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := field op value | field ["not"] "in" "(" value ("," value)* ")"
    field      := prefix "." (key | `any key` | "any key") | attribute
    prefix     := metrics | params | tags | attributes   (singular forms and attr work too)
    op         := = | != | > | >= | < | <= | like | ilike
    value      := 'text' | "text" | number               (a quote is escaped by doubling it)

Metrics and the ``start_time``/``end_time`` attributes compare as numbers; params, tags and
the other attributes compare as strings (like MLflow), with ``%`` and ``_`` as LIKE wildcards
and ``\\`` escaping them. A comparison on a key a run does not have is false, so
``not metrics.acc > 0.9`` also finds runs that never logged ``acc``. A NaN metric fails every
comparison except ``!=`` and ``not in``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from shipyard.errors import FilterSyntaxError, did_you_mean
from shipyard.tracking.schema import latest_metrics, params, run_tags, runs

FieldKind = Literal["metric", "param", "tag", "attribute"]

PREFIXES: dict[str, FieldKind] = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
    "attr": "attribute",
}
_CANONICAL_PREFIX: dict[FieldKind, str] = {
    "metric": "metrics",
    "param": "params",
    "tag": "tags",
    "attribute": "attributes",
}

#: Searchable run attributes: name -> True when it compares as a number.
ATTRIBUTES: dict[str, bool] = {
    "run_id": False,
    "run_name": False,
    "status": False,
    "user": False,
    "parent_run_id": False,
    "experiment_id": False,
    "start_time": True,
    "end_time": True,
}

NUMERIC_OPS = ("=", "!=", ">", ">=", "<", "<=", "IN", "NOT IN")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
ALL_OPS = ("=", "!=", ">", ">=", "<", "<=", "LIKE", "ILIKE", "IN", "NOT IN")

#: Bounds that keep a filter well inside every backend's limits (bound variables,
#: expression depth) and the parser's recursion.
MAX_FILTER_LENGTH = 20_000
MAX_COMPARISONS = 200
MAX_DEPTH = 50
MAX_ORDER_KEYS = 10

_KEYWORDS = {"and", "or", "not", "like", "ilike", "in", "asc", "desc"}
_BARE_KEY = re.compile(r"[A-Za-z0-9_\-./]+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_SYMBOLS = ("!=", ">=", "<=", "=", ">", "<", "(", ")", ",")


# --- AST ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """What a comparison or an ordering looks at, e.g. ``Field("metric", "acc")``."""

    kind: FieldKind
    key: str

    @property
    def numeric(self) -> bool:
        return self.kind == "metric" or (self.kind == "attribute" and ATTRIBUTES[self.key])

    def render(self) -> str:
        prefix = _CANONICAL_PREFIX[self.kind]
        if _BARE_KEY.fullmatch(self.key):
            return f"{prefix}.{self.key}"
        return f"{prefix}.`{self.key}`"


Value = float | str


@dataclass(frozen=True)
class Comparison:
    """``field op value``; for IN and NOT IN ``value`` is a tuple."""

    field: Field
    op: str
    value: Value | tuple[Value, ...]
    position: int = dataclasses.field(default=0, compare=False)


@dataclass(frozen=True)
class And:
    terms: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    terms: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    term: Node


Node = Comparison | And | Or | Not


@dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` item, e.g. ``OrderKey(Field("metric", "acc"), ascending=False)``."""

    field: Field
    ascending: bool = True


# --- tokenizer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # field, name (a bare attribute), string, number, symbol, keyword, end
    text: str  # the source text, for messages
    pos: int
    value: Any = None  # Field, str, float or the upper-cased keyword/symbol


def _error(source: str, pos: int, message: str, hint: str | None = None) -> FilterSyntaxError:
    caret = f"\n  {source}\n  {' ' * pos}^"
    return FilterSyntaxError(f"{message}{caret}", hint=hint)


def _described(token: _Token) -> str:
    return "the end of the filter" if token.kind == "end" else f"'{token.text}'"


def _quoted(source: str, start: int, quote: str, what: str) -> tuple[str, int]:
    """Read a literal opened at ``start``; a doubled quote stands for one quote."""
    chars: list[str] = []
    i = start + 1
    while i < len(source):
        if source[i] == quote:
            if source.startswith(quote * 2, i) and quote != "`":
                chars.append(quote)
                i += 2
                continue
            return "".join(chars), i + 1
        chars.append(source[i])
        i += 1
    raise _error(
        source,
        start,
        f"Unterminated {what} starting at position {start}.",
        hint=f"Close it with {quote}.",
    )


def _field_token(source: str, start: int, ident_end: int) -> _Token:
    ident = source[start:ident_end]
    if ident_end >= len(source) or source[ident_end] != ".":
        if ident.lower() in _KEYWORDS:
            return _Token("keyword", ident, start, ident.upper())
        return _Token("name", ident, start, ident)
    kind = PREFIXES.get(ident.lower())
    if kind is None:
        raise _error(
            source,
            start,
            f"Unknown prefix '{ident}' at position {start} (one of metrics, params, tags, "
            f"attributes).{did_you_mean(ident.lower(), _CANONICAL_PREFIX.values())}",
        )
    key_start = ident_end + 1
    char = source[key_start : key_start + 1]
    if char in ("`", '"'):
        key, end = _quoted(source, key_start, char, "key")
    else:
        match = _BARE_KEY.match(source, key_start)
        key, end = (match.group(), match.end()) if match else ("", key_start)
    if not key:
        raise _error(
            source,
            key_start,
            f"Expected a key after '{ident}.' at position {key_start}.",
            hint=f"Quote keys with spaces or other characters in backquotes: {ident}.`my key`.",
        )
    text = source[start:end]
    if kind == "attribute":
        return _Token("field", text, start, _attribute_field(source, start, key))
    return _Token("field", text, start, Field(kind, key))


def _attribute_field(source: str, pos: int, name: str) -> Field:
    if name not in ATTRIBUTES:
        raise _error(
            source,
            pos,
            f"Unknown attribute '{name}' at position {pos} (one of "
            f"{', '.join(ATTRIBUTES)}).{did_you_mean(name, ATTRIBUTES)}",
            hint=f"Use metrics.{name}, params.{name} or tags.{name} for logged values.",
        )
    return Field("attribute", name)


def tokenize(source: str) -> list[_Token]:
    """Split a filter or order-by item into tokens; the last one has kind ``end``."""
    tokens: list[_Token] = []
    i = 0
    while i < len(source):
        char = source[i]
        if char.isspace():
            i += 1
            continue
        if char in ("'", '"'):
            text, end = _quoted(source, i, char, "string")
            tokens.append(_Token("string", source[i:end], i, text))
            i = end
            continue
        number = _NUMBER.match(source, i)
        if number and (char.isdigit() or char in "+-."):
            tokens.append(_Token("number", number.group(), i, float(number.group())))
            i = number.end()
            continue
        ident = _IDENT.match(source, i)
        if ident:
            token = _field_token(source, i, ident.end())
            tokens.append(token)
            i = token.pos + len(token.text)
            continue
        symbol = next((s for s in _SYMBOLS if source.startswith(s, i)), None)
        if symbol is None:
            raise _error(source, i, f"Unexpected character '{char}' at position {i}.")
        tokens.append(_Token("symbol", symbol, i, symbol))
        i += len(symbol)
    tokens.append(_Token("end", "", len(source)))
    return tokens


# --- parser ---------------------------------------------------------------------------------


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.index = 0
        self.depth = 0
        self.comparisons = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, kind: str, value: str | None = None) -> bool:
        token = self.token
        return token.kind == kind and (value is None or token.value == value)

    def fail(self, message: str, hint: str | None = None) -> FilterSyntaxError:
        return _error(self.source, self.token.pos, message, hint)

    def parse_filter(self) -> Node:
        node = self.or_expr()
        if not self.at("end"):
            previous = self.tokens[self.index - 1]
            raise self.fail(
                f"Expected 'and', 'or' or the end of the filter after '{previous.text}' at "
                f"position {self.token.pos}, got {_described(self.token)}."
            )
        return node

    def or_expr(self) -> Node:
        terms = [self.and_expr()]
        while self.at("keyword", "OR"):
            self.advance()
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else Or(tuple(terms))

    def and_expr(self) -> Node:
        terms = [self.not_expr()]
        while self.at("keyword", "AND"):
            self.advance()
            terms.append(self.not_expr())
        return terms[0] if len(terms) == 1 else And(tuple(terms))

    def not_expr(self) -> Node:
        if not (self.at("keyword", "NOT") or self.at("symbol", "(")):
            return self.comparison()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(
                f"The filter nests 'not' and parentheses more than {MAX_DEPTH} levels deep at "
                f"position {self.token.pos}.",
                hint="Simplify the filter.",
            )
        if self.advance().value == "NOT":
            node: Node = Not(self.not_expr())
        else:
            node = self.or_expr()
            if not self.at("symbol", ")"):
                raise self.fail(
                    f"Expected ')' at position {self.token.pos}, got {_described(self.token)}."
                )
            self.advance()
        self.depth -= 1
        return node

    def field(self, expected: str) -> tuple[_Token, Field]:
        token = self.token
        if token.kind == "name":
            self.advance()
            return token, _attribute_field(self.source, token.pos, token.value)
        if token.kind != "field":
            raise self.fail(f"{expected} at position {token.pos}, got {_described(token)}.")
        self.advance()
        return token, token.value

    def comparison(self) -> Comparison:
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise self.fail(
                f"The filter has more than {MAX_COMPARISONS} comparisons at position "
                f"{self.token.pos}.",
                hint="Use IN (...) for many values of one field.",
            )
        field_token, target = self.field(
            "Expected a field (metrics.<key>, params.<key>, tags.<key> or an attribute "
            "such as status)"
        )
        op_token = self.token
        op = self.operator(field_token)
        allowed = NUMERIC_OPS if target.numeric else STRING_OPS
        if op not in allowed:
            kind = "a number" if target.numeric else "a string"
            raise _error(
                self.source,
                op_token.pos,
                f"Operator {op} at position {op_token.pos} does not apply to "
                f"'{field_token.text}', which compares as {kind} (use one of "
                f"{', '.join(allowed)}).",
            )
        if op in ("IN", "NOT IN"):
            values = self.value_list(target, field_token, op)
            return Comparison(target, op, values, field_token.pos)
        value = self.value(target, f"'{field_token.text} {op}'")
        if op in ("LIKE", "ILIKE") and isinstance(value, str):
            self.check_pattern(value)
        return Comparison(target, op, value, field_token.pos)

    def operator(self, field_token: _Token) -> str:
        token = self.token
        if token.kind == "symbol" and token.value in ALL_OPS:
            self.advance()
            return str(token.value)
        if token.kind == "keyword" and token.value in ("LIKE", "ILIKE", "IN"):
            self.advance()
            return str(token.value)
        if token.kind == "keyword" and token.value == "NOT":
            following = self.tokens[self.index + 1]
            if following.kind == "keyword" and following.value == "IN":
                self.index += 2
                return "NOT IN"
        raise self.fail(
            f"Expected an operator after '{field_token.text}' at position {token.pos} "
            f"(one of {', '.join(ALL_OPS)}), got {_described(token)}."
        )

    def value(self, target: Field, after: str) -> Value:
        token = self.token
        if target.numeric:
            if token.kind != "number":
                raise self.fail(
                    f"Expected a number after {after} at position {token.pos}, "
                    f"got {_described(token)}.",
                    hint=f"{target.render()} compares as a number; write it unquoted.",
                )
            self.advance()
            return float(token.value)
        if token.kind not in ("string", "number"):
            raise self.fail(
                f"Expected a quoted string after {after} at position {token.pos}, "
                f"got {_described(token)}.",
                hint="Quote strings with ' or \".",
            )
        self.advance()
        # An unquoted number compared with a string field means its text: params.lr = 0.10
        return str(token.value) if token.kind == "string" else token.text

    def value_list(self, target: Field, field_token: _Token, op: str) -> tuple[Value, ...]:
        if not self.at("symbol", "("):
            raise self.fail(
                f"Expected '(' after '{field_token.text} {op}' at position {self.token.pos}, "
                f"got {_described(self.token)}.",
                hint=f"Write a list: {field_token.text} {op} ('a', 'b').",
            )
        self.advance()
        values = [self.value(target, f"'{field_token.text} {op} ('")]
        while self.at("symbol", ","):
            self.advance()
            values.append(self.value(target, "','"))
        if not self.at("symbol", ")"):
            raise self.fail(
                f"Expected ',' or ')' at position {self.token.pos}, got {_described(self.token)}."
            )
        self.advance()
        return tuple(values)

    def check_pattern(self, pattern: str) -> None:
        escaped = False
        for char in pattern:
            escaped = not escaped and char == "\\"
        if escaped:
            previous = self.tokens[self.index - 1]
            raise _error(
                self.source,
                previous.pos,
                f"LIKE pattern {previous.text} at position {previous.pos} ends with an "
                "escape character.",
                hint="Write \\\\ for a literal backslash.",
            )

    def parse_order_key(self) -> OrderKey:
        field_token, target = self.field(
            "Expected a field to order by (e.g. metrics.acc, params.lr, start_time)"
        )
        ascending = True
        if self.at("keyword", "ASC") or self.at("keyword", "DESC"):
            ascending = self.advance().value == "ASC"
        if not self.at("end"):
            raise self.fail(
                f"Expected ASC, DESC or the end after '{field_token.text}' at position "
                f"{self.token.pos}, got {_described(self.token)}."
            )
        return OrderKey(target, ascending)


def parse_filter(source: str) -> Node | None:
    """Parse a filter string into an AST; ``None`` for an empty filter.

    Raises:
        FilterSyntaxError: naming the position and what was expected there.
    """
    if not source or not source.strip():
        return None
    if len(source) > MAX_FILTER_LENGTH:
        raise FilterSyntaxError(
            f"The filter has {len(source)} characters; the limit is {MAX_FILTER_LENGTH}.",
            hint="Use IN (...) for many values of one field, or split the search.",
        )
    return _Parser(source).parse_filter()


def parse_order_by(items: Sequence[str]) -> list[OrderKey]:
    """Parse ``order_by`` items such as ``"metrics.acc DESC"`` or ``"start_time"``."""
    if len(items) > MAX_ORDER_KEYS:
        raise FilterSyntaxError(
            f"order_by has {len(items)} items; the limit is {MAX_ORDER_KEYS}.",
        )
    keys = []
    for item in items:
        if isinstance(item, str) and item.strip():
            keys.append(_Parser(item).parse_order_key())
        else:
            raise FilterSyntaxError(
                f"Invalid order_by item {item!r}.",
                hint="Use items like 'metrics.acc DESC', 'params.lr' or 'start_time ASC'.",
            )
    return keys


# --- rendering (the inverse of parsing) -----------------------------------------------------


def _render_value(value: Value) -> str:
    if isinstance(value, float):
        if value == float("inf"):
            return "1e999"
        if value == float("-inf"):
            return "-1e999"
        return repr(value)
    return "'" + value.replace("'", "''") + "'"


def render_filter(node: Node | None) -> str:
    """The filter string of an AST; ``parse_filter(render_filter(ast)) == ast``."""
    if node is None:
        return ""
    if isinstance(node, Comparison):
        if isinstance(node.value, tuple):
            items = ", ".join(_render_value(v) for v in node.value)
            return f"{node.field.render()} {node.op} ({items})"
        return f"{node.field.render()} {node.op} {_render_value(node.value)}"
    if isinstance(node, Not):
        return f"not ({render_filter(node.term)})"
    joiner = " and " if isinstance(node, And) else " or "
    return joiner.join(f"({render_filter(term)})" for term in node.terms)


# --- compilation to SQL ---------------------------------------------------------------------


def nan_value(dialect: str) -> sa.BindParameter[Any]:
    """A bound NaN as stored by ``dialect``: SQLite cannot store a REAL NaN (it becomes NULL),
    so the SQL store keeps it as the text 'NaN', which sorts above every number, as a
    PostgreSQL NaN does."""
    if dialect == "sqlite":
        return sa.bindparam(None, "NaN", type_=sa.String())
    return sa.bindparam(None, float("nan"), type_=sa.Float())


def like_pattern(pattern: str, dialect: str) -> str:
    """SQLite's LIKE ignores case, so case-sensitive LIKE there becomes GLOB."""
    if dialect != "sqlite":
        return pattern
    out: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            out.append(f"[{char}]" if char in "*?[" else char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            out.append("*")
        elif char == "_":
            out.append("?")
        else:
            out.append(f"[{char}]" if char in "*?[" else char)
    return "".join(out)


def _attribute_column(name: str) -> sa.ColumnElement[Any]:
    if name == "parent_run_id":
        return sa.func.coalesce(runs.c.parent_run_id, "")
    column = {"run_name": runs.c.name}.get(name)
    return column if column is not None else runs.c[name]


def _compare(
    column: sa.ColumnElement[Any], op: str, value: Value | tuple[Value, ...], dialect: str
) -> sa.ColumnElement[bool]:
    if op == "IN":
        return column.in_(list(value))  # type: ignore[arg-type]
    if op == "NOT IN":
        return column.not_in(list(value))  # type: ignore[arg-type]
    if op == "LIKE":
        if dialect == "sqlite":
            return column.op("GLOB")(like_pattern(str(value), dialect))
        return column.like(str(value), escape="\\")
    if op == "ILIKE":
        return column.ilike(str(value), escape="\\")
    operators = {
        "=": column.__eq__,
        "!=": column.__ne__,
        ">": column.__gt__,
        ">=": column.__ge__,
        "<": column.__lt__,
        "<=": column.__le__,
    }
    return operators[op](value)


def _compile_comparison(node: Comparison, dialect: str) -> sa.ColumnElement[bool]:
    target = node.field
    if target.kind == "attribute":
        column = _attribute_column(target.key)
        condition = _compare(column, node.op, node.value, dialect)
        if target.key == "end_time":
            # Running runs have no end_time; keep the comparison two-valued under NOT.
            return sa.and_(column.is_not(None), condition)
        return condition
    table = {"metric": latest_metrics, "param": params, "tag": run_tags}[target.kind]
    condition = _compare(table.c.value, node.op, node.value, dialect)
    if target.kind == "metric" and node.op not in ("!=", "NOT IN"):
        condition = sa.and_(condition, table.c.value != nan_value(dialect))
        if dialect == "sqlite":
            # SQLite runs EXISTS once per candidate run; IN reads the (key, value) index
            # range once, which is far faster for selective filters such as acc > 0.95.
            # (PostgreSQL plans both forms as the same semi-join.)
            matching = sa.select(table.c.run_id).where(table.c.key == target.key, condition)
            return runs.c.run_id.in_(matching)
    return sa.exists().where(table.c.run_id == runs.c.run_id, table.c.key == target.key, condition)


def compile_filter(node: Node, dialect: str) -> sa.ColumnElement[bool]:
    """The WHERE clause for ``node`` over the ``runs`` table; values are bound parameters."""
    if isinstance(node, Comparison):
        return _compile_comparison(node, dialect)
    if isinstance(node, Not):
        return sa.not_(compile_filter(node.term, dialect))
    terms = [compile_filter(term, dialect) for term in node.terms]
    return sa.and_(*terms) if isinstance(node, And) else sa.or_(*terms)


def compile_order_by(
    keys: Sequence[OrderKey], dialect: str
) -> tuple[sa.FromClause, list[sa.ColumnElement[Any]]]:
    """The FROM clause (runs outer-joined to each ordering key) and ORDER BY columns.

    Runs missing a key sort last in either direction; NaN metrics sort just before them,
    as in MLflow. Ties are broken by ``start_time DESC`` (also the default order), then by
    ``run_id``, so pages are stable.
    """
    source: sa.FromClause = runs
    clauses: list[sa.ColumnElement[Any]] = []
    start_time = Field("attribute", "start_time")
    if all(key.field != start_time for key in keys):
        keys = [*keys, OrderKey(start_time, ascending=False)]
    for index, key in enumerate(keys):
        target = key.field
        if target.kind == "attribute":
            column = _attribute_column(target.key)
            if target.key == "end_time":
                clauses.append(sa.case((column.is_(None), 1), else_=0))
        else:
            table = {"metric": latest_metrics, "param": params, "tag": run_tags}[target.kind]
            joined = table.alias(f"order_{index}")
            source = source.outerjoin(
                joined, sa.and_(joined.c.run_id == runs.c.run_id, joined.c.key == target.key)
            )
            column = joined.c.value
            missing = joined.c.run_id.is_(None)
            if target.kind == "metric":
                nan = column == nan_value(dialect)
                clauses.append(sa.case((missing, 2), (nan, 1), else_=0))
            else:
                clauses.append(sa.case((missing, 1), else_=0))
        clauses.append(column.asc() if key.ascending else column.desc())
    clauses.append(runs.c.run_id.asc())
    return source, clauses
