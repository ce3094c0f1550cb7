"""The HTTP attack suite: forged, expired, misdirected and revoked credentials, brute
force, path traversal, SQL injection and oversized bodies, against a server with auth on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from test_security_support import (
    PASSWORD,
    add_user,
    bearer,
    client_for,
    login,
    secure_app,
    secure_settings,
    security_of,
)

from shipyard.security.entities import USER


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server for the module (each test uses its own user names): migrating a fresh
    database per test would cost a second each."""
    home = tmp_path_factory.mktemp("attacks")
    return secure_app(secure_settings(home, max_request_bytes=64 * 1024))


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[Any]:
    with client_for(app) as tc:
        yield tc


@pytest.fixture
def admin(app: Any) -> dict[str, str]:
    return bearer(security_of(app).login("admin", PASSWORD).access_token)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _claims(app: Any, sub: str = "user:admin", **overrides: Any) -> dict[str, Any]:
    policy = security_of(app).tokens.policy
    now = int(time.time())
    claims = {
        "iss": policy.issuer,
        "aud": policy.audience,
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(app: Any, claims: dict[str, Any]) -> str:
    """A token signed with the server's real key: only the claims are wrong."""
    key = security_of(app).keys.signing_key()
    return jwt.encode(claims, key.sign_key, algorithm=key.alg, headers={"kid": key.kid})


def _status(client: Any, token: str) -> tuple[int, str]:
    response = client.get("/api/v1/experiments", headers=bearer(token))
    body = response.json()
    return response.status_code, body["error"]["message"] if "error" in body else ""


def test_a_valid_token_works(client: Any, app: Any) -> None:
    assert _status(client, _signed(app, _claims(app))) == (200, "")


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic YWRtaW46cGFzcw==", "Token abc", "bearer not-a-jwt"],
)
def test_missing_or_malformed_credentials_are_401(client: Any, header: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/v1/experiments", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] in ("unauthenticated", "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_alg_none_is_rejected(client: Any, app: Any) -> None:
    kid = security_of(app).keys.signing_key().kid
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(_claims(app)).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        assert _status(client, token)[0] == 401
    assert "alg 'none'" in _status(client, f"{header}.{payload}.")[1]


def test_hs256_token_signed_with_the_rs256_public_key_is_rejected(tmp_path: Path) -> None:
    """Key confusion: the public key is public, so HS256 "signed" with it must not pass."""
    app = secure_app(secure_settings(tmp_path, jwt_algorithm="RS256"))
    key = security_of(app).keys.signing_key()
    assert key.alg == "RS256"
    public_pem = key.verify_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = _b64(json.dumps(_claims(app)).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{_b64(signature)}"
    with client_for(app) as client:
        status, message = _status(client, forged)
        assert status == 401
        assert "does not match key" in message
        assert _status(client, _signed(app, _claims(app)))[0] == 200


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"aud": "another-service"}, "not for this service"),
        ({"iss": "https://evil.example"}, "not issued here"),
        ({"exp": None}, "lacks the 'exp' claim"),
        ({"sub": "user:ghost"}, "no longer exists"),
        ({"sub": "nobody"}, "invalid subject"),
    ],
    ids=["expired", "nbf-future", "wrong-aud", "wrong-iss", "no-exp", "unknown-user", "bad-sub"],
)
def test_tokens_with_bad_claims_are_401(
    client: Any, app: Any, overrides: dict[str, Any], message: str
) -> None:
    status, text = _status(client, _signed(app, _claims(app, **overrides)))
    assert status == 401
    assert message in text


def test_tampered_payload_is_rejected(client: Any, app: Any) -> None:
    token = add_user(app, "mallory", workspace_role="viewer")
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    claims["sub"] = "user:admin"
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    status, message = _status(client, forged)
    assert status == 401
    assert "signature is invalid" in message
    # A signature of another secret with the server's kid fails the same way.
    kid = security_of(app).keys.signing_key().kid
    other = jwt.encode(_claims(app), "x" * 48, algorithm="HS256", headers={"kid": kid})
    assert _status(client, other)[0] == 401


def test_a_disabled_users_token_stops_working_at_once(
    client: Any, app: Any, admin: dict[str, str]
) -> None:
    token = add_user(app, "alice", workspace_role="viewer")
    assert _status(client, token)[0] == 200
    response = client.patch("/api/v1/users/alice", json={"disabled": True}, headers=admin)
    assert response.status_code == 200 and response.json()["disabled"] is True
    status, message = _status(client, token)
    assert status == 401
    assert "disabled" in message
    refused = client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORD},
    )
    assert refused.status_code == 401


def test_reusing_a_refresh_token_revokes_its_whole_session(client: Any) -> None:
    first = login(client, "admin")
    assert first["token_type"] == "bearer" and first["expires_in"] > 0

    def refresh(token: str) -> Any:
        return client.post(
            "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": token}
        )

    second = refresh(first["refresh_token"])
    assert second.status_code == 200
    assert _status(client, second.json()["access_token"])[0] == 200
    reused = refresh(first["refresh_token"])
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "refresh_token_reused"
    # The thief's reuse also ended the legitimate successor.
    assert refresh(second.json()["refresh_token"]).status_code == 401


def test_logout_revokes_the_refresh_token(client: Any) -> None:
    tokens = login(client, "admin")
    response = client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 204
    again = client.post(
        "/api/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert again.status_code == 401


def _flip(text: str, index: int) -> str:
    char = "A" if text[index] != "A" else "B"
    return text[:index] + char + text[index + 1 :]


def test_api_key_with_one_changed_character_is_rejected(client: Any, app: Any) -> None:
    token = add_user(app, "bot-owner", workspace_role="data-scientist")
    created = client.post("/api/v1/api-keys", json={"name": "ci"}, headers=bearer(token))
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("shy_")
    assert _status(client, key)[0] == 200
    for index in (len(key) - 1, len(key) // 2, 5):  # secret, middle, key id
        status, _message = _status(client, _flip(key, index))
        assert status == 401, index
    revoked = client.delete(f"/api/v1/api-keys/{created.json()['key_id']}", headers=bearer(token))
    assert revoked.status_code == 204
    assert _status(client, key)[0] == 401


def test_scoped_api_key_is_limited_to_its_scopes(client: Any, app: Any) -> None:
    token = add_user(app, "scoped", workspace_role="maintainer")
    created = client.post(
        "/api/v1/api-keys", json={"scopes": ["experiments:read"]}, headers=bearer(token)
    )
    key = created.json()["key"]
    assert client.get("/api/v1/experiments", headers=bearer(key)).status_code == 200
    denied = client.post("/api/v1/experiments", json={"name": "x"}, headers=bearer(key))
    assert denied.status_code == 403
    assert "scopes" in denied.json()["error"]["message"]
    # A scoped key cannot mint itself an unscoped one.
    assert client.post("/api/v1/api-keys", json={}, headers=bearer(key)).status_code == 403


def test_client_credentials_for_service_accounts(client: Any, admin: dict[str, str]) -> None:
    created = client.post(
        "/api/v1/service-accounts", json={"name": "scorer", "role": "predictor"}, headers=admin
    )
    assert created.status_code == 201
    account = created.json()
    assert account["client_secret"].startswith("shys_")
    listed = client.get("/api/v1/service-accounts", headers=admin).json()["service_accounts"]
    assert all(a["client_secret"] is None for a in listed)
    form = {
        "grant_type": "client_credentials",
        "client_id": account["client_id"],
        "client_secret": account["client_secret"],
    }
    token = client.post("/api/v1/auth/token", data=form)
    assert token.status_code == 200
    assert "refresh_token" not in token.json()
    basic = base64.b64encode(f"scorer:{account['client_secret']}".encode()).decode()
    via_basic = client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert via_basic.status_code == 200
    headers = bearer(via_basic.json()["access_token"])
    assert client.get("/api/v1/models", headers=headers).status_code == 200
    assert client.post("/api/v1/models", json={"name": "m"}, headers=headers).status_code == 403
    wrong = client.post("/api/v1/auth/token", data={**form, "client_secret": "shys_wrong"})
    assert wrong.status_code == 401


def test_token_endpoint_bad_requests_are_400(client: Any) -> None:
    missing = client.post("/api/v1/auth/token", data={"username": "admin"})
    assert missing.status_code == 400
    assert "grant_type" in missing.json()["error"]["message"]
    unsupported = client.post("/api/v1/auth/token", data={"grant_type": "implicit"})
    assert unsupported.status_code == 400
    assert unsupported.json()["error"]["code"] == "unsupported_grant_type"
    no_password = client.post(
        "/api/v1/auth/token", data={"grant_type": "password", "username": "admin"}
    )
    assert no_password.status_code == 400


def test_brute_force_login_hits_the_lockout(client: Any, app: Any) -> None:
    security_of(app).create_user("victim", PASSWORD)
    form = {"grant_type": "password", "username": "victim", "password": "wrong guess 123"}
    statuses = [client.post("/api/v1/auth/token", data=form).status_code for _ in range(5)]
    assert statuses == [401] * 5
    locked = client.post("/api/v1/auth/token", data={**form, "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "login_locked"
    assert int(locked.headers["Retry-After"]) > 0
    failures = [
        r
        for r in security_of(app).audit.records()
        if r.action == "login.failure" and r.resource_id == "victim"
    ]
    assert len(failures) == 6
    assert all("wrong guess" not in json.dumps(r.details) for r in failures)


def test_path_traversal_in_artifact_keys_is_400(
    client: Any, app: Any, admin: dict[str, str]
) -> None:
    experiment = client.post("/api/v1/experiments", json={"name": "trav"}, headers=admin).json()
    run = client.post(
        "/api/v1/runs", json={"experiment_id": experiment["experiment_id"]}, headers=admin
    ).json()["info"]["run_id"]
    for path in (
        "%2E%2E/%2E%2E/escape.txt",
        "..%2F..%2F..%2Fescape.txt",
        "a/%2e%2e/%2e%2e/%2e%2e/%2e%2e/escape.txt",
        "%2Fetc%2Fpasswd",
        "a%5C..%5C..%5Cescape.txt",
    ):
        url = f"/api/v1/runs/{run}/artifacts/{path}"
        assert client.put(url, content=b"x", headers=admin).status_code == 400, path
        assert client.get(url, headers=admin).status_code == 400, path
    listing = client.get(f"/api/v1/runs/{run}/artifacts", params={"path": "../.."}, headers=admin)
    assert listing.status_code == 400
    home = app.state.platform.settings.home
    assert list(home.parent.rglob("escape*")) == []


def test_sql_injection_in_search_filters_is_400_and_tables_survive(
    client: Any, app: Any, admin: dict[str, str]
) -> None:
    experiment = client.post("/api/v1/experiments", json={"name": "sql"}, headers=admin).json()
    run = client.post(
        "/api/v1/runs", json={"experiment_id": experiment["experiment_id"]}, headers=admin
    ).json()["info"]["run_id"]
    for attack in (
        "params.lr = 'x' OR 1=1",
        "metrics.acc > 0; DROP TABLE runs",
        "attributes.run_id = '1' UNION SELECT * FROM users",
        "tags.t = 'x' --",
    ):
        response = client.post("/api/v1/runs/search", json={"filter": attack}, headers=admin)
        assert response.status_code == 400, attack
        assert response.json()["error"]["code"] == "invalid_filter"
    # Quotes inside a string literal are data, never SQL.
    literal = client.post(
        "/api/v1/runs/search",
        json={"filter": "tags.t = 'x''; DROP TABLE runs; --'"},
        headers=admin,
    )
    assert literal.status_code == 200 and literal.json()["runs"] == []
    order = client.post(
        "/api/v1/runs/search", json={"order_by": ["metrics.acc; DROP TABLE runs"]}, headers=admin
    )
    assert order.status_code == 400
    name = client.get("/api/v1/experiments/by-name/x' OR '1'='1", headers=admin)
    assert name.status_code == 404
    tables = set(sa.inspect(security_of(app).engine).get_table_names())
    assert {"runs", "experiments", "users", "audit_log"} <= tables
    assert client.get(f"/api/v1/runs/{run}", headers=admin).status_code == 200


def test_oversized_bodies_are_413(client: Any, admin: dict[str, str]) -> None:
    big = json.dumps({"name": "x" * (100 * 1024)}).encode()
    declared = client.post(
        "/api/v1/experiments",
        content=big,
        headers={**admin, "Content-Type": "application/json"},
    )
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    streamed = client.post(
        "/api/v1/experiments",
        content=chunks(),
        headers={**admin, "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    # Before authentication too: nobody gets to make the server read a huge body.
    anonymous = client.post(
        "/api/v1/users", content=big, headers={"Content-Type": "application/json"}
    )
    assert anonymous.status_code == 413


def test_jwks_exposes_only_public_key_material(tmp_path: Path) -> None:
    app = secure_app(secure_settings(tmp_path, jwt_algorithm="RS256"))
    with client_for(app) as client:
        admin = bearer(login(client, "admin")["access_token"])
        rotated = client.post("/api/v1/auth/keys/rotate", headers=admin)
        assert rotated.status_code == 200
        for path in ("/.well-known/jwks.json", "/api/v1/auth/jwks"):
            keys = client.get(path).json()["keys"]
            assert len(keys) == 2  # the old key verifies until its tokens expire
            assert rotated.json()["kid"] in {k["kid"] for k in keys}
            for key in keys:
                assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
                assert {"n", "e", "kid"} <= set(key)
                assert not {"d", "p", "q", "dp", "dq", "qi", "k", "oth"} & set(key)
        # A token signed before the rotation still verifies.
        assert client.get("/api/v1/auth/me", headers=admin).status_code == 200


def test_hs256_jwks_is_empty_and_rotation_is_refused(client: Any, admin: dict[str, str]) -> None:
    assert client.get("/.well-known/jwks.json").json() == {"keys": []}
    refused = client.post("/api/v1/auth/keys/rotate", headers=admin)
    assert refused.status_code == 409
    assert "HS256" in refused.json()["error"]["message"]


def test_me_reports_the_principal_and_its_roles(client: Any, app: Any) -> None:
    token = add_user(app, "carol", workspace_role="data-scientist", workspace="team-a")
    me = client.get("/api/v1/auth/me", headers=bearer(token)).json()
    assert me["id"] == "user:carol" and me["kind"] == "user" and me["role"] is None
    assert me["roles"] == {"team-a": ["data-scientist"]}
    assert me["auth"] == "jwt"


def test_the_last_admin_cannot_be_disabled_or_demoted(client: Any, admin: dict[str, str]) -> None:
    for body in ({"disabled": True}, {"role": None}, {"role": "viewer"}):
        response = client.patch("/api/v1/users/admin", json=body, headers=admin)
        assert response.status_code == 409, body
        assert "last enabled admin" in response.json()["error"]["message"]


def test_granting_roles_needs_users_admin(client: Any, app: Any) -> None:
    # A site-wide maintainer may read users but not create them or hand out roles.
    token = add_user(app, "mona", role="maintainer")
    headers = bearer(token)
    assert client.get("/api/v1/users", headers=headers).status_code == 200
    body = {"name": "eve", "password": PASSWORD, "role": "admin"}
    assert client.post("/api/v1/users", json=body, headers=headers).status_code == 403
    assert security_of(app).directory.get(USER, "eve") is None


def test_a_remembered_token_still_expires(
    client: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = add_user(app, "clocked", workspace_role="viewer")
    assert _status(client, token)[0] == 200  # verified once, then remembered
    later = time.time() + security_of(app).tokens.policy.access_ttl + 60
    monkeypatch.setattr(time, "time", lambda: later)
    status, message = _status(client, token)
    assert status == 401
    assert "expired" in message


def test_a_remembered_token_fails_once_its_key_is_retired(tmp_path: Path) -> None:
    app = secure_app(secure_settings(tmp_path, jwt_algorithm="ES256"))
    with client_for(app) as client:
        token = login(client, "admin")["access_token"]
        assert _status(client, token)[0] == 200
        keys = security_of(app).keys
        keys.retire(keys.signing_key().kid)  # type: ignore[attr-defined]
        status, message = _status(client, token)
        assert status == 401
        assert "unknown or retired key" in message
