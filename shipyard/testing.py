"""Test helpers for code built on Shipyard: the platform server in-process or as a process.

``platform_client(settings)`` talks to the app in-process through Starlette's TestClient
(no network, no port); ``running_server(settings)`` starts the real server (uvicorn, as
``python -m shipyard.server.runner``) on a free port and stops it afterwards::

    with running_server(load_settings(home=tmp_path)) as url:
        client = Client(load_settings(url=url))
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shipyard._http import HttpSession
    from shipyard.client import Client
    from shipyard.config import Settings
    from shipyard.registry.events import EventBus
    from shipyard.registry.http import HttpRegistryStore
    from shipyard.tracking.http import HttpTrackingStore

__all__ = [
    "ServerProcess",
    "free_port",
    "http_registry_store",
    "http_tracking_store",
    "in_process_client",
    "platform_client",
    "running_server",
    "test_client",
]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def test_client(app: FastAPI, **kwargs: Any) -> Any:
    """Starlette's TestClient for ``app``.

    Starlette warns when its TestClient runs on ``httpx`` rather than ``httpx2``; the
    warning is about Starlette's own future, not this use, so it is silenced here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
        from starlette.testclient import TestClient

    return TestClient(app, **kwargs)


test_client.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def platform_client(
    settings: Settings | None = None, *, workspace: str | None = None, **app_options: Any
) -> HttpSession:
    """An HttpSession to a platform server app running in-process.

    Pass it to HttpTrackingStore / HttpRegistryStore / HttpRunArtifacts or to
    ``Client(http=...)``; ``session.client`` is the TestClient for raw requests.

    Args:
        settings: the app's settings (stores); loaded from the environment when None.
        workspace: workspace sent when a call names none.
        **app_options: passed to :func:`shipyard.server.app.create_app`.
    """
    from shipyard._http import HttpSession
    from shipyard.server.app import create_app

    app_options.setdefault("deliver_webhooks", False)
    app = create_app(settings, **app_options)
    return HttpSession(transport=test_client(app), workspace=workspace)


def in_process_client(settings: Settings, workspace: str | None = None) -> Client:
    """A Client that talks HTTP to a platform server running in-process on ``settings``'
    stores: the remote transport end to end, without a port."""
    from shipyard.client import Client

    return Client(settings, workspace=workspace, http=platform_client(settings))


@functools.lru_cache(maxsize=16)
def _cached_session(db_url: str, artifacts_url: str) -> HttpSession:
    from shipyard.config import load_settings

    return platform_client(load_settings(db=db_url, artifacts=artifacts_url))


def http_tracking_store(db_url: str, workspace: str, artifacts_url: str) -> HttpTrackingStore:
    """An HttpTrackingStore over an in-process server on ``db_url`` and ``artifacts_url``.

    The signature of the tracking contract suite's store factories, so the whole suite
    can run through the REST API. Apps are cached per (db_url, artifacts_url).
    """
    from shipyard.tracking.http import HttpTrackingStore

    return HttpTrackingStore(_cached_session(db_url, artifacts_url), workspace)


def http_registry_store(
    db_url: str,
    workspace: str,
    artifacts_url: str,
    *,
    version_metrics: Callable[[str], Mapping[str, float]] | None = None,
    events: EventBus | None = None,
) -> HttpRegistryStore:
    """An HttpRegistryStore over an in-process server on ``db_url``.

    ``version_metrics`` and ``events`` are handed to the server's SqlRegistryStore, so a
    test can feed gates and watch events exactly as with a local store.
    """
    from shipyard.config import load_settings
    from shipyard.registry.http import HttpRegistryStore

    if version_metrics is None and events is None:
        http = _cached_session(db_url, artifacts_url)
    else:
        settings = load_settings(db=db_url, artifacts=artifacts_url)
        http = platform_client(settings, version_metrics=version_metrics, events=events)
    return HttpRegistryStore(http, workspace)


class ServerProcess:
    """The platform server as a subprocess on a free loopback port.

    Example::

        with ServerProcess(settings, workers=2) as server:
            httpx.get(f"{server.base_url}/health")

    Args:
        settings: where the stores are (``db``, ``artifacts``, ``home``).
        workers: uvicorn worker processes.
        port: port to listen on (a free one when None).
        loop: "auto", "asyncio" or "uvloop".
        startup_timeout: seconds to wait for ``/health`` to answer.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int = 1,
        port: int | None = None,
        loop: str = "auto",
        startup_timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self.workers = workers
        self.port = port or free_port()
        self.loop = loop
        self.startup_timeout = startup_timeout
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    def __repr__(self) -> str:
        return f"ServerProcess({self.base_url!r}, workers={self.workers})"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def log_text(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        return self._log.read_text(errors="replace") if self._log and self._log.exists() else ""

    def start(self) -> str:
        """Start the server and wait until it answers; returns its base URL.

        Raises:
            RuntimeError: it exited or did not answer within ``startup_timeout``
                (the message holds the end of its log).
        """
        command = [
            sys.executable,
            "-m",
            "shipyard.server.runner",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--db",
            self.settings.db,
            "--artifacts",
            self.settings.artifacts,
            "--loop",
            self.loop,
            "--log-level",
            "warning",
        ]
        env = {
            **os.environ,
            "SHIPYARD_HOME": str(self.settings.home),
            "SHIPYARD_MAX_REQUEST_BYTES": str(self.settings.max_request_bytes),
        }
        env.pop("SHIPYARD_URL", None)
        fd, log = tempfile.mkstemp(prefix="shipyard-server-", suffix=".log")
        self._log = Path(log)
        with os.fdopen(fd, "wb") as out:
            # Its own session, so stop() and kill() reach the workers too.
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._wait_ready()
        return self.base_url

    def _wait_ready(self) -> None:
        import httpx

        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"The server exited with code {self.process.returncode} on start:\n"
                    f"{self.log_text()[-4000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"The server did not answer on {self.base_url} within {self.startup_timeout:g}s:\n"
            f"{self.log_text()[-4000:]}"
        )

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the server and its workers at once, as a crash would."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the server to shut down (SIGTERM); SIGKILL it after ``timeout`` seconds."""
        if self.process is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        # Workers left behind by a supervisor that died first.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def close(self) -> None:
        """Stop the server and delete its log."""
        self.stop()
        if self._log is not None:
            self._log.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def running_server(settings: Settings, workers: int = 1, **options: Any) -> Iterator[str]:
    """Run the platform server in a subprocess for the ``with`` block; yields its base URL.

    Args:
        settings: where the stores are; the server uses the same ``db`` and ``artifacts``.
        workers: uvicorn worker processes.
        **options: passed to :class:`ServerProcess` (``port``, ``loop``, ...).
    """
    with ServerProcess(settings, workers=workers, **options) as server:
        yield server.base_url
