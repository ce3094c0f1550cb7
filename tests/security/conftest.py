"""Fixtures for the security tests: a private PostgreSQL database (these tests wipe the
security tables between tests), a cheap argon2 hasher, and ready SecurityServices."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import argon2
import pytest
import sqlalchemy as sa
from security_helpers import PASSWORD, make_service
from sqlalchemy.engine import Engine

from shipyard.security import SecurityService
from shipyard.security import schema as security_schema

CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get(
    "SHIPYARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_SECURITY_TABLES = [
    t.name
    for t in reversed(security_schema.audit_log.metadata.sorted_tables)
    if t.name
    in {
        "users",
        "service_accounts",
        "workspace_members",
        "team_members",
        "resource_grants",
        "refresh_tokens",
        "api_keys",
        "signing_keys",
        "login_throttle",
        "audit_log",
        "audit_head",
    }
]


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """Overrides the shared fixture: a database only the security tests use, because they
    wipe global tables (audit log, signing keys) that other tests may rely on."""
    admin_url = sa.make_url(POSTGRES_URL)
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        message = f"PostgreSQL is not reachable: {admin_url.render_as_string()}: {exc}"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    name = f"shipyard_sec_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield admin_url.set(database=name).render_as_string(hide_password=False)
    from shipyard.store.db import dispose_all

    dispose_all()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite file for the session: migrating a fresh one per test costs ~0.5 s."""
    return f"sqlite:///{tmp_path_factory.mktemp('security-db') / 'meta.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Overrides the shared fixture: the metadata store URL once per backend, reused across
    tests (the ``engine`` fixture empties the security tables instead)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_database")
    return request.getfixturevalue("postgres_database")


@pytest.fixture
def engine(db_url: str) -> Engine:
    """The migrated metadata DB with empty security tables."""
    from shipyard.store.db import engine_for

    eng = engine_for(db_url)
    with eng.begin() as conn:
        for name in _SECURITY_TABLES:
            conn.execute(sa.text(f"DELETE FROM {name}"))
    return eng


@pytest.fixture(scope="session")
def hasher() -> argon2.PasswordHasher:
    """argon2id at minimum cost: the tests check behaviour, not hashing strength."""
    return argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def service(engine: Engine, tmp_path: Path, hasher: argon2.PasswordHasher) -> SecurityService:
    """An HS256 SecurityService with an admin user 'admin'."""
    svc = make_service(engine, tmp_path, hasher)
    svc.bootstrap_admin(PASSWORD)
    return svc


@pytest.fixture(params=["RS256", "ES256"])
def asym_service(
    request: pytest.FixtureRequest, engine: Engine, tmp_path: Path, hasher: argon2.PasswordHasher
) -> SecurityService:
    """An RS256 / ES256 SecurityService with an admin user 'admin'."""
    svc = make_service(engine, tmp_path, hasher, algorithm=request.param)
    svc.bootstrap_admin(PASSWORD)
    return svc
