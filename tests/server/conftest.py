"""Server fixtures: the app on SQLite in-process, its TestClient, and HTTP store factories.

``http_tracking_store`` and ``http_registry_store`` return factories with the contract
suites' signature ``(db_url, workspace, artifacts_url) -> store``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.config import Settings, load_settings
from shipyard.registry.http import HttpRegistryStore
from shipyard.testing import http_registry_store as make_http_registry_store
from shipyard.testing import http_tracking_store as make_http_tracking_store
from shipyard.testing import test_client
from shipyard.tracking.http import HttpTrackingStore


@pytest.fixture
def server_settings(tmp_path: Path) -> Settings:
    """Settings of a server on a fresh SQLite file and artifact folder."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    return load_settings(db=f"sqlite:///{tmp_path / 'server.db'}", artifacts=artifacts.as_uri())


@pytest.fixture
def app(server_settings: Settings) -> Any:
    from shipyard.server.app import create_app

    return create_app(server_settings, deliver_webhooks=False)


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    """Starlette's TestClient on the app: raw HTTP with no network."""
    with test_client(app) as tc:
        yield tc


@pytest.fixture
def http_tracking_store() -> Callable[[str, str, str], HttpTrackingStore]:
    """Factory ``(db_url, workspace, artifacts_url) -> HttpTrackingStore`` (in-process)."""
    return make_http_tracking_store


@pytest.fixture
def http_registry_store() -> Callable[[str, str, str], HttpRegistryStore]:
    """Factory ``(db_url, workspace, artifacts_url) -> HttpRegistryStore`` (in-process)."""
    return make_http_registry_store
