"""Checks shared by every feature definition; errors name the object and the field."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from shipyard.errors import InvalidArgumentError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,127}$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def invalid(kind: str, name: str, field: str, problem: str, hint: str | None = None) -> Exception:
    """An InvalidArgumentError saying which object and which of its fields is wrong."""
    return InvalidArgumentError(f"{kind} '{name}': field '{field}' {problem}", hint=hint)


def check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise invalid(
            kind,
            str(name),
            "name",
            f"must be 1-128 letters, digits, '_' or '-', starting with a letter; got {name!r}.",
        )
    return name


def check_column(kind: str, owner: str, field: str, column: Any) -> str:
    if not isinstance(column, str) or not _COLUMN.match(column):
        raise invalid(
            kind,
            owner,
            field,
            f"must be a column name (letters, digits, '_', starting with a letter); "
            f"got {column!r}.",
        )
    return column


def check_str(kind: str, owner: str, field: str, value: Any, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise invalid(
            kind, owner, field, f"must be a {'' if empty else 'non-empty '}string; got {value!r}."
        )
    return value


def check_tags(kind: str, owner: str, tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise invalid(kind, owner, "tags", f"must map strings to strings; got {tags!r}.")
    return dict(sorted(tags.items()))


def check_ttl(kind: str, owner: str, ttl: Any) -> timedelta | None:
    if ttl is None:
        return None
    if not isinstance(ttl, timedelta):
        raise invalid(kind, owner, "ttl", f"must be a datetime.timedelta or None; got {ttl!r}.")
    if ttl < timedelta(0):
        raise invalid(kind, owner, "ttl", f"must not be negative; got {ttl}.")
    return None if ttl == timedelta(0) else ttl
