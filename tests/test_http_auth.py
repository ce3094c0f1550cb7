"""The SDK's bearer token: sent on every request, refreshed once, transparently, when the
server says it expired; shared safely by threads and by processes using one login."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from shipyard._http import HttpSession
from shipyard.client import Client
from shipyard.config import Settings, load_settings
from shipyard.credentials import Credentials, CredentialStore, login
from shipyard.errors import AuthError, InvalidTokenError
from shipyard.security import Principal, SecurityConfig, SecurityService
from shipyard.store.db import engine_for
from shipyard.testing import ServerProcess

URL = "http://shipyard.test"


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


class FakeAuthServer:
    """A server whose access tokens expire on demand and whose refresh tokens are
    single-use, like Shipyard's."""

    def __init__(self) -> None:
        self.valid = {"jwt-1"}
        self.refresh_tokens = {"shyr_1": "live"}
        self.grants: list[dict[str, list[str]]] = []
        self.api_calls: list[str | None] = []
        self._lock = threading.Lock()
        self._n = 1

    def expire_all(self) -> None:
        self.valid.clear()

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        if request.url.path == "/api/v1/auth/token":
            return self._token(parse_qs(request.content.decode()))
        auth = request.headers.get("Authorization")
        self.api_calls.append(auth)
        if auth is None:
            return _error(401, "unauthenticated", "Authentication required.")
        if auth.removeprefix("Bearer ") not in self.valid:
            return _error(401, "invalid_token", "Access token has expired.")
        return httpx.Response(200, json={"ok": True, "path": request.url.path})

    def _token(self, form: dict[str, list[str]]) -> httpx.Response:
        time.sleep(0.01)  # widen the window for racing refreshes
        with self._lock:
            self.grants.append(form)
            old = form["refresh_token"][0]
            if self.refresh_tokens.get(old) != "live":
                return _error(401, "refresh_token_reused", "Refresh token was already used.")
            self.refresh_tokens[old] = "used"
            self._n += 1
            access, refresh = f"jwt-{self._n}", f"shyr_{self._n}"
            self.valid.add(access)
            self.refresh_tokens[refresh] = "live"
        body = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": 900,
            "refresh_token": refresh,
        }
        return httpx.Response(200, json=body)


@pytest.fixture
def server() -> FakeAuthServer:
    return FakeAuthServer()


@pytest.fixture
def store(tmp_path: Path) -> CredentialStore:
    store = CredentialStore(tmp_path)
    store.save(
        Credentials(URL, "jwt-1", "shyr_1", expires_at=time.time() + 900, principal="user:ann")
    )
    return store


def _session(server: FakeAuthServer, store: CredentialStore | None, **kwargs: Any) -> HttpSession:
    return HttpSession(
        URL,
        transport=httpx.MockTransport(server.handler),
        credential_store=store,
        backoff=0.001,
        **kwargs,
    )


def test_sends_the_saved_access_token(server: FakeAuthServer, store: CredentialStore) -> None:
    assert _session(server, store).get("/experiments")["ok"]
    assert server.api_calls == ["Bearer jwt-1"]
    assert server.grants == []


def test_expired_token_is_refreshed_once_and_the_request_resent(
    server: FakeAuthServer, store: CredentialStore
) -> None:
    http = _session(server, store)
    server.expire_all()

    assert http.post("/runs/search", json={"q": 1})["ok"]
    assert server.api_calls == ["Bearer jwt-1", "Bearer jwt-2"]
    assert server.grants == [{"grant_type": ["refresh_token"], "refresh_token": ["shyr_1"]}]
    saved = store.get(URL)
    assert saved is not None
    assert (saved.access_token, saved.refresh_token, saved.principal) == (
        "jwt-2",
        "shyr_2",
        "user:ann",
    )
    # Later requests use the new token straight away.
    http.get("/experiments")
    assert server.api_calls[-1] == "Bearer jwt-2"


def test_refresh_happens_at_most_once_per_request(
    server: FakeAuthServer, store: CredentialStore
) -> None:
    def always_expired(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/token"):
            return server.handler(request)
        return _error(401, "invalid_token", "Access token has expired.")

    http = HttpSession(URL, transport=httpx.MockTransport(always_expired), credential_store=store)
    with pytest.raises(InvalidTokenError, match="expired"):
        http.get("/experiments")
    assert len(server.grants) == 1


def test_failed_refresh_tells_the_user_to_log_in_again(
    server: FakeAuthServer, store: CredentialStore
) -> None:
    server.refresh_tokens["shyr_1"] = "used"  # revoked by a logout elsewhere
    server.expire_all()
    with pytest.raises(InvalidTokenError, match="Refreshing it failed too") as caught:
        _session(server, store).get("/experiments")
    assert caught.value.hint == "Log in again with `shipyard login`."


def test_without_a_refresh_token_the_expiry_error_is_raised(
    server: FakeAuthServer, tmp_path: Path
) -> None:
    store = CredentialStore(tmp_path)
    store.save(Credentials(URL, "jwt-1", None, principal="sa:predictor"))
    server.expire_all()
    with pytest.raises(InvalidTokenError, match="Access token has expired"):
        _session(server, store).get("/experiments")
    assert server.grants == []


def test_a_fixed_token_is_never_refreshed(server: FakeAuthServer, store: CredentialStore) -> None:
    http = _session(server, store, token="shy_0123456789ab_apikey")
    with pytest.raises(InvalidTokenError):
        http.get("/experiments")
    assert server.api_calls == ["Bearer shy_0123456789ab_apikey"]
    assert server.grants == []


def test_other_401s_are_not_refreshed(server: FakeAuthServer, tmp_path: Path) -> None:
    http = _session(server, CredentialStore(tmp_path))  # nobody logged in
    with pytest.raises(AuthError, match="Authentication required"):
        http.get("/experiments")
    assert server.grants == []


def test_in_memory_credentials_refresh_without_a_store(server: FakeAuthServer) -> None:
    http = HttpSession(
        URL,
        transport=httpx.MockTransport(server.handler),
        credentials=Credentials(URL, "jwt-1", "shyr_1"),
    )
    server.expire_all()
    assert http.get("/experiments")["ok"]
    assert http.credentials is not None
    assert http.credentials.refresh_token == "shyr_2"


def test_streamed_download_is_refreshed_too(server: FakeAuthServer, store: CredentialStore) -> None:
    server.expire_all()
    with _session(server, store).stream("GET", "/runs/r/artifacts/model.pkl") as response:
        assert response.json()["ok"]


def test_a_body_that_cannot_be_resent_is_not_retried(
    server: FakeAuthServer, store: CredentialStore
) -> None:
    server.expire_all()

    def chunks() -> Iterator[bytes]:
        yield b"data"

    with pytest.raises(InvalidTokenError):
        _session(server, store).request("PUT", "/runs/r/artifacts/a", content=chunks())
    assert server.grants == []


def test_threads_sharing_a_session_refresh_once(
    server: FakeAuthServer, store: CredentialStore
) -> None:
    http = _session(server, store)
    server.expire_all()
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def call() -> None:
        try:
            barrier.wait()
            http.get("/experiments")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(server.grants) == 1


def test_sessions_sharing_a_login_reuse_each_others_refresh(
    server: FakeAuthServer, store: CredentialStore
) -> None:
    """Two processes with the same credentials file: the second one must not present the
    already-used refresh token (the server would revoke the whole session)."""
    first = _session(server, store)
    second = _session(server, CredentialStore(store.path.parent))
    server.expire_all()

    first.get("/experiments")
    second.get("/experiments")

    assert len(server.grants) == 1
    assert server.api_calls[-1] == "Bearer jwt-2"
    assert server.refresh_tokens == {"shyr_1": "used", "shyr_2": "live"}


# -- against a real server with auth on ------------------------------------------------------

PASSWORD = "violet tractor moonlight"
SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A platform server subprocess with auth on, 30 s access tokens (the minimum) and a
    known HS256 secret, so tests can mint tokens it accepts; yields its settings."""
    home = tmp_path_factory.mktemp("secure-server")
    env = {
        "SHIPYARD_HOME": str(home),
        "SHIPYARD_AUTH": "on",
        "SHIPYARD_ADMIN_PASSWORD": PASSWORD,
        "SHIPYARD_JWT_SECRET": SECRET,
        "SHIPYARD_ACCESS_TOKEN_TTL": "30",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = load_settings()
        server = ServerProcess(settings)
        server.start()
    try:
        yield load_settings(url=server.base_url, db=settings.db, home=home)
    finally:
        server.close()


def _service(settings: Settings) -> SecurityService:
    """The server's security library on its database, from the test process."""
    return SecurityService(
        engine_for(settings.db), settings.home, SecurityConfig(jwt_secret=SECRET)
    )


def _expired_token(settings: Settings, kind: str, name: str) -> str:
    token, _ = _service(settings).tokens.issue(Principal(kind, name), now=time.time() - 3600)
    return token


@contextmanager
def _client(url: str) -> Iterator[Client]:
    """A remote Client as the SDK builds it (HttpSession.from_settings), closed after."""
    settings = load_settings(url=url)
    with HttpSession.from_settings(settings) as http:
        yield Client(settings, http=http)


def test_real_server_refreshes_an_expired_login_transparently(
    secure_server: Settings, _isolated_home: Path
) -> None:
    url = secure_server.url
    store = CredentialStore(_isolated_home)
    first = login(url, username="admin", password=PASSWORD, store=store)
    # The saved access token expired an hour ago (as if the laptop slept through it).
    store.save(replace(first, access_token=_expired_token(secure_server, "user", "admin")))

    with _client(url) as client:
        experiment_id = client.create_experiment(f"refresh-{uuid.uuid4().hex[:8]}")
        assert client.get_experiment(experiment_id).experiment_id == experiment_id

    saved = store.get(url)
    assert saved is not None
    assert saved.refresh_token not in (None, first.refresh_token)
    assert saved.expires_at == pytest.approx(time.time() + 30, abs=10)
    assert _service(secure_server).verify_access_token(saved.access_token).id == "user:admin"
    # The old refresh token was used up by the refresh: presenting it again is refused.
    with (
        HttpSession(url) as http,
        pytest.raises(InvalidTokenError, match="already used") as reused,
    ):
        http.token_grant({"grant_type": "refresh_token", "refresh_token": first.refresh_token})
    assert reused.value.code == "refresh_token_reused"


def test_real_server_threads_refresh_once(secure_server: Settings, _isolated_home: Path) -> None:
    url = secure_server.url
    store = CredentialStore(_isolated_home)
    first = login(url, username="admin", password=PASSWORD, store=store)
    store.save(replace(first, access_token=_expired_token(secure_server, "user", "admin")))
    results: list[Any] = []
    barrier = threading.Barrier(4)
    with _client(url) as client:

        def call() -> None:
            barrier.wait()
            try:
                results.append(client.tracking.list_experiments())
            except Exception as exc:  # pragma: no cover - shown by the assert
                results.append(exc)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # A second use of the same refresh token would have revoked the whole session.
        assert [type(r).__name__ for r in results if isinstance(r, Exception)] == []
        client.tracking.list_experiments()


def test_real_server_processes_sharing_a_login_refresh_once(
    secure_server: Settings, _isolated_home: Path
) -> None:
    url = secure_server.url
    store = CredentialStore(_isolated_home)
    first = login(url, username="admin", password=PASSWORD, store=store)
    store.save(replace(first, access_token=_expired_token(secure_server, "user", "admin")))
    # Each process loads the expired token, then all of them send at the same instant.
    code = (
        "import sys, time, shipyard\n"
        "client = shipyard.Client()\n"
        "client.tracking\n"
        "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
        "print(len(client.tracking.list_experiments()))\n"
    )
    env = {**os.environ, "SHIPYARD_URL": url, "SHIPYARD_HOME": str(_isolated_home)}
    start_at = str(time.time() + 5)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, start_at],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outcomes]
    saved = store.get(url)
    assert saved is not None
    assert _service(secure_server).verify_access_token(saved.access_token).name == "admin"


def test_service_account_token_is_not_refreshed_but_reported(
    secure_server: Settings, _isolated_home: Path
) -> None:
    name = f"bot-{uuid.uuid4().hex[:8]}"
    _, secret = _service(secure_server).create_service_account(name, role="viewer")
    store = CredentialStore(_isolated_home)
    creds = login(secure_server.url, client_id=name, client_secret=secret, store=store)
    assert creds.refresh_token is None
    with _client(secure_server.url) as client:
        assert client.tracking.list_experiments() is not None

    store.save(replace(creds, access_token=_expired_token(secure_server, "service_account", name)))
    with (
        _client(secure_server.url) as client,
        pytest.raises(InvalidTokenError, match="Access token has expired") as caught,
    ):
        client.tracking.list_experiments()
    assert caught.value.http_status == 401


def test_shipyard_token_api_key_is_sent_instead_of_the_login(
    secure_server: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _service(secure_server)
    name = f"key-owner-{uuid.uuid4().hex[:8]}"
    service.create_service_account(name, role="viewer")
    info, key = service.create_api_key("service_account", name, name="ci")
    monkeypatch.setenv("SHIPYARD_TOKEN", key)
    with HttpSession.from_settings(load_settings(url=secure_server.url)) as http:
        assert http.get("/auth/me")["id"] == f"sa:{name}"
    service.revoke_api_key(info.key_id)
    # The server caches keys for a few seconds (SecurityConfig.cache_ttl).
    deadline = time.monotonic() + 15
    with HttpSession.from_settings(load_settings(url=secure_server.url)) as http:
        while time.monotonic() < deadline:
            try:
                http.get("/auth/me")
            except InvalidTokenError as exc:
                assert "revoked" in exc.message
                break
            time.sleep(0.5)
        else:
            pytest.fail("the revoked API key kept working")


def test_no_login_is_a_401_that_says_how_to_log_in(secure_server: Settings) -> None:
    with (
        _client(secure_server.url) as client,
        pytest.raises(AuthError, match="Authentication required") as caught,
    ):
        client.tracking.list_experiments()
    assert "shipyard login" in str(caught.value)


def test_wrong_password_then_lockout(secure_server: Settings) -> None:
    name = f"mallory-{uuid.uuid4().hex[:6]}"
    for _ in range(5):
        with pytest.raises(AuthError, match="Invalid user name or password"):
            login(secure_server.url, username=name, password="not the password at all")
    with pytest.raises(AuthError, match=r"try again in \d+ s") as caught:
        login(secure_server.url, username=name, password="not the password at all")
    assert caught.value.headline == "Too many failed logins"
