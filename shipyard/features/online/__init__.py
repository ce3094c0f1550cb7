"""Online feature stores: the latest row per entity of each view, read by key at serving
time. SQLite is the embedded default; Redis scales out. Both pass the same test suite.

    store = open_online_store("sqlite:////srv/shipyard/online.db")
    store = open_online_store("redis://cache:6379/0")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from shipyard.errors import ConfigError, did_you_mean
from shipyard.features.online.base import (
    FieldStatus,
    OnlineStore,
    ReadResult,
    entity_key,
)

if TYPE_CHECKING:
    from shipyard.features.online.redis import RedisOnlineStore
    from shipyard.features.online.sqlite import SqliteOnlineStore

__all__ = [
    "BACKENDS",
    "FieldStatus",
    "OnlineStore",
    "ReadResult",
    "RedisOnlineStore",
    "SqliteOnlineStore",
    "entity_key",
    "open_online_store",
]

#: URL scheme -> "module:Class" of the store, imported on first use.
BACKENDS = {
    "sqlite": "shipyard.features.online.sqlite:SqliteOnlineStore",
    "redis": "shipyard.features.online.redis:RedisOnlineStore",
    "rediss": "shipyard.features.online.redis:RedisOnlineStore",
    "unix": "shipyard.features.online.redis:RedisOnlineStore",
}


def open_online_store(url: str) -> OnlineStore:
    """The online store a URL names: ``sqlite:///path`` or ``redis://host:port/db``.

    Raises:
        ConfigError: unknown scheme, or the backend's driver is not installed.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    target = BACKENDS.get(scheme)
    if target is None:
        raise ConfigError(
            f"Unknown online store scheme '{scheme}' in '{url}'. "
            f"Supported: {', '.join(sorted(BACKENDS))}.{did_you_mean(scheme, BACKENDS)}",
            hint="Use sqlite:////path/online.db or redis://host:6379/0.",
        )
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    return cls.from_url(url)  # type: ignore[no-any-return]


def __getattr__(name: str) -> type:
    if name in ("SqliteOnlineStore", "RedisOnlineStore"):
        backend = "sqlite" if name.startswith("Sqlite") else "redis"
        module = importlib.import_module(f"shipyard.features.online.{backend}")
        return getattr(module, name)  # type: ignore[no-any-return]
    raise AttributeError(name)
