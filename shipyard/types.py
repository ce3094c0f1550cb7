"""Type aliases and small generic containers shared across components."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

Params = Mapping[str, Any]
Tags = Mapping[str, str]
Uri = str


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_page_token`` back to get the next one."""

    items: list[T]
    next_page_token: str | None = None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class ArtifactInfo:
    """A stored file: its key relative to the root, size in bytes and sha256 hex digest."""

    path: str
    size: int
    sha256: str
    is_dir: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
