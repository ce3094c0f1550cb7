"""Saved logins: the credentials file, login/logout, and which token the SDK sends."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from shipyard._http import HttpSession
from shipyard.config import load_settings
from shipyard.credentials import Credentials, CredentialStore, login, logout, normalize_url
from shipyard.errors import AuthError, ConfigError, InvalidArgumentError

URL = "http://shipyard.test:5005"


def _creds(url: str = URL, token: str = "access-1", refresh: str | None = "shyr_1") -> Credentials:
    return Credentials(
        url=url, access_token=token, refresh_token=refresh, expires_at=time.time() + 900
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestCredentialStore:
    def test_saves_and_reads_back_per_server(self, tmp_path: Path) -> None:
        store = CredentialStore(tmp_path)
        store.save(_creds(URL, "a"))
        store.save(_creds("https://other.example", "b", None))

        assert store.get(URL).access_token == "a"  # type: ignore[union-attr]
        assert store.get("https://other.example").refresh_token is None  # type: ignore[union-attr]
        assert store.get("http://unknown:1") is None
        assert store.urls() == ["http://shipyard.test:5005", "https://other.example"]

    def test_file_is_private_and_left_without_temporary_files(self, tmp_path: Path) -> None:
        store = CredentialStore(tmp_path)
        for i in range(3):
            store.save(_creds(token=f"t{i}"))
        assert _mode(store.path) == 0o600
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "credentials.json",
            "credentials.json.lock",
        ]
        assert json.loads(store.path.read_text())["version"] == 1

    def test_widened_permissions_are_restricted_again(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        store = CredentialStore(tmp_path)
        store.save(_creds())
        os.chmod(store.path, 0o644)
        assert store.get(URL) is not None
        assert _mode(store.path) == 0o600
        assert "readable by others" in caplog.text

    def test_urls_are_matched_whatever_their_case_and_trailing_slash(self, tmp_path: Path) -> None:
        store = CredentialStore(tmp_path)
        store.save(_creds("HTTP://Shipyard.TEST:5005/"))
        assert store.get("http://shipyard.test:5005").access_token == "access-1"  # type: ignore[union-attr]
        assert normalize_url("http://H:1/base/") == "http://h:1/base"
        with pytest.raises(InvalidArgumentError, match="Invalid server URL 'localhost:5005'"):
            normalize_url("localhost:5005")

    def test_delete_forgets_one_server(self, tmp_path: Path) -> None:
        store = CredentialStore(tmp_path)
        store.save(_creds())
        store.save(_creds("http://b:1"))
        assert store.delete(URL) is True
        assert store.delete(URL) is False
        assert store.urls() == ["http://b:1"]

    def test_corrupt_file_says_how_to_recover(self, tmp_path: Path) -> None:
        store = CredentialStore(tmp_path)
        store.path.write_text("{not json")
        with pytest.raises(ConfigError, match=r"credentials file .* is corrupt") as caught:
            store.get(URL)
        assert "shipyard login" in str(caught.value)

    def test_secrets_stay_out_of_reprs(self, tmp_path: Path) -> None:
        text = repr(_creds(token="sekrit-access", refresh="shyr_sekrit"))
        assert "sekrit" not in text
        assert "shipyard.test" in text

    def test_concurrent_writers_in_several_processes_lose_nothing(self, tmp_path: Path) -> None:
        code = (
            "import sys, time\n"
            "from shipyard.credentials import CredentialStore, Credentials\n"
            "store = CredentialStore(sys.argv[1])\n"
            "for i in range(15):\n"
            "    store.save(Credentials(f'http://p{sys.argv[2]}-{i}:1', 'tok'))\n"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(n)]) for n in range(3)
        ]
        assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
        assert len(CredentialStore(tmp_path).urls()) == 45


def _token_server(answers: list[httpx.Response], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return answers.pop(0)

    return httpx.MockTransport(handler)


class TestLogin:
    def test_password_login_posts_the_oauth2_form_and_saves_the_tokens(
        self, tmp_path: Path
    ) -> None:
        seen: list[httpx.Request] = []
        body = {
            "access_token": "jwt-1",
            "token_type": "bearer",
            "expires_in": 900,
            "refresh_token": "shyr_r1",
        }
        store = CredentialStore(tmp_path)
        creds = login(
            URL,
            username="alice",
            password="correct horse battery",
            store=store,
            transport=_token_server([httpx.Response(200, json=body)], seen),
        )

        request = seen[0]
        assert (request.method, request.url.path) == ("POST", "/api/v1/auth/token")
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert "Authorization" not in request.headers
        assert parse_qs(request.content.decode()) == {
            "grant_type": ["password"],
            "username": ["alice"],
            "password": ["correct horse battery"],
        }
        assert (creds.access_token, creds.refresh_token, creds.principal) == (
            "jwt-1",
            "shyr_r1",
            "user:alice",
        )
        assert creds.expires_at == pytest.approx(time.time() + 900, abs=5)
        assert store.get(URL) == creds

    def test_client_credentials_login_for_a_service_account(self, tmp_path: Path) -> None:
        seen: list[httpx.Request] = []
        answer = httpx.Response(200, json={"access_token": "jwt-sa", "expires_in": 60})
        creds = login(
            URL,
            client_id="predictor",
            client_secret="shys_x",
            transport=_token_server([answer], seen),
        )
        assert parse_qs(seen[0].content.decode()) == {
            "grant_type": ["client_credentials"],
            "client_id": ["predictor"],
            "client_secret": ["shys_x"],
        }
        assert (creds.principal, creds.refresh_token) == ("sa:predictor", None)

    def test_wrong_password_is_an_auth_error_and_saves_nothing(self, tmp_path: Path) -> None:
        store = CredentialStore(tmp_path)
        answer = httpx.Response(
            401,
            json={
                "error": {"code": "unauthenticated", "message": "Invalid user name or password."}
            },
        )
        with pytest.raises(AuthError, match="Invalid user name or password"):
            login(
                URL, username="a", password="b", store=store, transport=_token_server([answer], [])
            )
        assert store.urls() == []

    def test_lockout_is_reported_as_too_many_failed_logins(self) -> None:
        answer = httpx.Response(
            429,
            headers={"Retry-After": "300"},
            json={
                "error": {
                    "code": "login_locked",
                    "message": "Too many failed logins for this user or from this address; "
                    "try again in 300 s.",
                }
            },
        )
        with pytest.raises(AuthError, match="try again in 300 s") as caught:
            login(URL, username="a", password="b", transport=_token_server([answer], []))
        assert caught.value.headline == "Too many failed logins"

    def test_user_or_client_but_not_both(self) -> None:
        with pytest.raises(InvalidArgumentError, match="either with a user name or"):
            login(URL, username="a", client_id="b")


class TestLogout:
    def test_revokes_the_session_and_forgets_it(self, tmp_path: Path) -> None:
        store = CredentialStore(tmp_path)
        store.save(_creds())
        seen: list[httpx.Request] = []
        assert logout(URL, store, transport=_token_server([httpx.Response(204)], seen))
        assert seen[0].url.path == "/api/v1/auth/logout"
        assert json.loads(seen[0].content) == {"refresh_token": "shyr_1"}
        assert "Authorization" not in seen[0].headers  # public: the refresh token suffices
        assert store.get(URL) is None
        assert logout(URL, store) is False

    def test_forgets_locally_even_when_the_server_is_gone(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        store = CredentialStore(tmp_path)
        store.save(_creds())

        attempts = 0

        def unreachable(request: httpx.Request) -> httpx.Response:
            nonlocal attempts
            attempts += 1
            raise httpx.ConnectError("refused", request=request)

        assert logout(URL, store, transport=httpx.MockTransport(unreachable))
        assert store.get(URL) is None
        assert "could not revoke the session" in caplog.text
        assert attempts == 1  # no retries: a dead server must not stall `shipyard logout`


class TestSdkToken:
    def _sent_authorization(self, **settings: str) -> str | None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={})

        http = HttpSession.from_settings(
            load_settings(url=URL, **settings), transport=httpx.MockTransport(handler)
        )
        http.get("/experiments")
        return seen[0].headers.get("Authorization")

    def test_saved_login_for_the_url_is_sent(self, _isolated_home: Path) -> None:
        CredentialStore(_isolated_home).save(_creds(token="saved-jwt"))
        CredentialStore(_isolated_home).save(_creds("http://elsewhere:1", token="other"))
        assert self._sent_authorization() == "Bearer saved-jwt"

    def test_shipyard_token_wins_over_the_saved_login(
        self, _isolated_home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        CredentialStore(_isolated_home).save(_creds(token="saved-jwt"))
        monkeypatch.setenv("SHIPYARD_TOKEN", "shy_0123456789ab_key")
        assert self._sent_authorization() == "Bearer shy_0123456789ab_key"

    def test_nothing_is_sent_without_a_login(self) -> None:
        assert self._sent_authorization() is None

    def test_client_uses_the_saved_login(self, _isolated_home: Path) -> None:
        from shipyard.client import Client

        CredentialStore(_isolated_home).save(_creds(token="saved-jwt"))
        http = Client(load_settings(url=URL))._session()
        assert http.credentials is not None
        assert http.credentials.access_token == "saved-jwt"
