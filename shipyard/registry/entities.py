"""Registry entities: registered models, versions, alias moves, gates, events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    workspace: str
    source: str  # artifact URI of the saved model folder
    run_id: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    flavor: str = ""
    manifest_sha256: str = ""
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    workspace: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    latest_version: int | None = None
    aliases: dict[str, int] = field(default_factory=dict)
    gates: dict[str, str] = field(default_factory=dict)  # alias -> gate expression
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AliasChange:
    """One move of an alias: who moved it, when, from which version to which."""

    name: str
    alias: str
    from_version: int | None
    to_version: int | None  # None when the alias was removed
    actor: str
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class RegistryEvent:
    """What subscribers and webhooks receive."""

    type: (
        str  # "model_version_created" | "alias_moved" | "alias_deleted" | "promotion_refused" | ...
    )
    workspace: str
    model: str
    payload: dict[str, Any]
    at: datetime


@dataclass(frozen=True)
class Webhook:
    webhook_id: str
    workspace: str
    url: str
    events: list[str]
    created_at: datetime
