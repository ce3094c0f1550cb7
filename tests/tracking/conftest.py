"""Tracking fixtures: one TrackingStore per backend and database.

``STORE_FACTORIES`` maps a backend name to a factory ``(db_url, workspace, artifacts_url)
-> TrackingStore``; adding a backend to the contract suite is one more entry there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from shipyard.store.db import engine_for
from shipyard.store.workspaces import ensure_workspace
from shipyard.tracking.sql import SqlTrackingStore
from shipyard.tracking.store import TrackingStore

StoreFactory = Callable[[str, str, str], TrackingStore]


def make_sql_store(db_url: str, workspace: str, artifacts_url: str) -> TrackingStore:
    return SqlTrackingStore(engine_for(db_url), workspace, artifact_root=artifacts_url)


def make_http_store(db_url: str, workspace: str, artifacts_url: str) -> TrackingStore:
    """The same store through the platform server's REST API (in-process)."""
    from shipyard.testing import http_tracking_store

    return http_tracking_store(db_url, workspace, artifacts_url)


STORE_FACTORIES: dict[str, StoreFactory] = {
    "http": make_http_store,
    "sql": make_sql_store,
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def tracking_store(
    request: pytest.FixtureRequest, db_url: str, workspace: str, artifacts_url: str
) -> TrackingStore:
    """A store bound to a fresh workspace, once per backend and database."""
    return STORE_FACTORIES[request.param](db_url, workspace, artifacts_url)


@pytest.fixture
def other_workspace(db_url: str) -> str:
    """A second workspace in the same database, for isolation tests."""
    name = f"ws-{uuid.uuid4().hex[:10]}"
    ensure_workspace(engine_for(db_url), name)
    return name
