"""What a registry name may look like: model names, aliases, versions and tag keys.

Shared by every registry backend and by ``models:/name@alias`` parsing, so a name accepted
in one place is accepted everywhere.
"""

from __future__ import annotations

import re

from shipyard.errors import InvalidArgumentError

__all__ = ["LATEST", "check_alias", "check_model_name", "check_tag_key", "check_version"]

#: The reserved alias that always resolves to a model's highest live version.
LATEST = "latest"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]*$")


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise InvalidArgumentError.

    A model name has 1-256 characters, none of them '/', '@' or a control character.
    """
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= 256
        or "/" in name
        or "@" in name
        or _CONTROL.search(name)
    ):
        raise InvalidArgumentError(
            f"Invalid model name {name!r}.",
            hint="Use 1-256 characters without '/', '@' or control characters, "
            "e.g. 'churn-classifier'.",
        )
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if it can be set, else raise InvalidArgumentError.

    Aliases are lowercase letters, digits, '_' and '-', starting with a letter, at most 128
    characters; ``latest`` is reserved.
    """
    if alias == LATEST:
        raise InvalidArgumentError(
            "Alias 'latest' is reserved: it always resolves to the highest version.",
            hint="Pick another name, e.g. champion, challenger or staging.",
        )
    if not isinstance(alias, str) or len(alias) > 128 or not _ALIAS.match(alias):
        raise InvalidArgumentError(
            f"Invalid alias {alias!r}.",
            hint="Use up to 128 lowercase letters, digits, '_' or '-', starting with a letter "
            "(e.g. champion, challenger, staging).",
        )
    return alias


def check_version(version: int) -> int:
    """Return ``version`` if it is an integer >= 1, else raise InvalidArgumentError."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidArgumentError(f"Invalid model version {version!r}: use an integer >= 1.")
    return version


def check_tag_key(key: str) -> str:
    """Return ``key`` if it is a valid tag key (1-250 characters)."""
    if not isinstance(key, str) or not 1 <= len(key) <= 250:
        raise InvalidArgumentError(f"Invalid tag key {key!r}: use 1-250 characters.")
    return key
