"""Shared fixtures: stores on every backend, and the real services tests need.

A test that needs a service that is not reachable skips with the reason on a developer's
machine and fails under ``CI=true``, so CI always exercises the real thing.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get(
    "SHIPYARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SHIPYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def service_unavailable(name: str, reason: str) -> None:
    """Skip locally, fail under CI, when a service a test needs is not there."""
    message = f"{name} is not reachable: {reason}"
    if CI:
        pytest.fail(message)
    pytest.skip(message)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own SHIPYARD_HOME and no remote server."""
    home = tmp_path / "shipyard-home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    for var in ("SHIPYARD_DB", "SHIPYARD_ARTIFACTS", "SHIPYARD_URL", "SHIPYARD_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    import sqlalchemy as sa

    admin_url = sa.make_url(POSTGRES_URL)
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        service_unavailable("PostgreSQL", f"{admin_url.render_as_string()}: {exc}")
    name = f"shipyard_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield admin_url.set(database=name).render_as_string(hide_password=False)
    from shipyard.store.db import dispose_all

    dispose_all()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata store URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return request.getfixturevalue("postgres_database")


@pytest.fixture
def workspace(db_url: str) -> str:
    """A workspace of its own for each test, so tests sharing a database never collide."""
    from shipyard.store.db import engine_for
    from shipyard.store.workspaces import ensure_workspace

    name = f"ws-{uuid.uuid4().hex[:10]}"
    ensure_workspace(engine_for(db_url), name)
    return name


@pytest.fixture
def artifacts_url(tmp_path: Path) -> str:
    root = tmp_path / "artifacts"
    root.mkdir()
    return root.as_uri()
