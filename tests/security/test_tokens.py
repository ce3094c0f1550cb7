"""Access-token attack suite and refresh-token rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from pathlib import Path
from typing import Any

import argon2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from security_helpers import PASSWORD, make_service
from sqlalchemy.engine import Engine

from shipyard.errors import AuthError, InvalidTokenError
from shipyard.security import RefreshTokenReusedError, SecurityService
from shipyard.security.keys import SqlKeyRing


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
        signature,
    )


def claims_for(
    service: SecurityService, sub: str = "user:admin", **overrides: Any
) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": service.tokens.policy.issuer,
        "aud": service.tokens.policy.audience,
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "j" * 32,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def signed(service: SecurityService, **overrides: Any) -> str:
    key = service.keys.signing_key()
    return jwt.encode(
        claims_for(service, **overrides), key.sign_key, algorithm=key.alg, headers={"kid": key.kid}
    )


def admin_token(service: SecurityService) -> str:
    return service.login("admin", PASSWORD).access_token


class TestAccessTokenAttacks:
    def test_valid_token_authenticates(self, service: SecurityService) -> None:
        principal = service.authenticate(f"Bearer {admin_token(service)}")
        assert principal.id == "user:admin"
        assert principal.role == "admin"
        assert principal.auth == "jwt"

    def test_issued_token_carries_every_required_claim(self, service: SecurityService) -> None:
        header, claims, _ = segments(admin_token(service))
        assert header["alg"] == "HS256" and header["kid"].startswith("hs256-")
        assert {"exp", "iat", "nbf", "iss", "aud", "sub", "jti", "role", "ws_roles"} <= set(claims)
        assert claims["exp"] - claims["iat"] == service.tokens.policy.access_ttl

    @pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
    def test_alg_none_is_rejected(self, service: SecurityService, alg: str) -> None:
        kid = service.keys.signing_key().kid
        header = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
        payload = b64(json.dumps(claims_for(service)).encode())
        for token in (f"{header}.{payload}.", f"{header}.{payload}.{b64(b'x')}"):
            with pytest.raises(InvalidTokenError, match="unsigned \\(alg 'none'\\)"):
                service.verify_access_token(token)

    def test_hs256_signed_with_the_rs256_public_key_is_rejected(
        self, engine: Engine, tmp_path: Path, hasher: argon2.PasswordHasher
    ) -> None:
        service = make_service(engine, tmp_path, hasher, algorithm="RS256")
        service.bootstrap_admin(PASSWORD)
        key = service.keys.signing_key()
        public_pem = key.verify_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # PyJWT refuses to do this itself, so forge it by hand as an attacker would.
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
        payload = b64(json.dumps(claims_for(service)).encode())
        signing_input = f"{header}.{payload}".encode()
        mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
        forged = f"{header}.{payload}.{b64(mac)}"
        with pytest.raises(
            InvalidTokenError, match=r"algorithm 'HS256' does not match key .* only signs RS256"
        ):
            service.verify_access_token(forged)
        # ...and the same with the JWKS form of the key as secret.
        jwk_secret = json.dumps(service.jwks()["keys"][0]).encode()
        mac = hmac.new(jwk_secret, signing_input, hashlib.sha256).digest()
        forged = f"{header}.{payload}.{b64(mac)}"
        with pytest.raises(InvalidTokenError, match="does not match key"):
            service.verify_access_token(forged)

    def test_expired_token_is_rejected(self, service: SecurityService) -> None:
        now = int(time.time())
        token = signed(service, iat=now - 3600, nbf=now - 3600, exp=now - 60)
        with pytest.raises(InvalidTokenError, match="has expired"):
            service.verify_access_token(token)

    def test_issued_long_ago_token_expires(self, service: SecurityService) -> None:
        state = service.directory.get("user", "admin")
        assert state is not None
        token, _ = service.tokens.issue(state.principal(auth="x"), now=time.time() - 3600)
        with pytest.raises(InvalidTokenError, match="has expired"):
            service.verify_access_token(token)

    def test_not_yet_valid_token_is_rejected(self, service: SecurityService) -> None:
        token = signed(service, nbf=int(time.time()) + 3600)
        with pytest.raises(InvalidTokenError, match="not valid yet"):
            service.verify_access_token(token)

    def test_token_issued_in_the_future_is_rejected(self, service: SecurityService) -> None:
        token = signed(service, iat=int(time.time()) + 3600)
        with pytest.raises(InvalidTokenError, match="not valid yet"):
            service.verify_access_token(token)

    def test_wrong_audience_is_rejected(self, service: SecurityService) -> None:
        with pytest.raises(InvalidTokenError, match="not for this service"):
            service.verify_access_token(signed(service, aud="another-api"))

    def test_wrong_issuer_is_rejected(self, service: SecurityService) -> None:
        with pytest.raises(InvalidTokenError, match="not issued here"):
            service.verify_access_token(signed(service, iss="https://evil.example"))

    @pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"])
    def test_missing_required_claim_is_rejected(self, service: SecurityService, claim: str) -> None:
        with pytest.raises(InvalidTokenError):
            service.verify_access_token(signed(service, **{claim: None}))

    def test_tampered_payload_is_rejected(self, service: SecurityService) -> None:
        service.create_user("mallory", PASSWORD)
        token = service.login("mallory", PASSWORD).access_token
        header, _, signature = token.split(".")
        _, payload, _ = segments(token)
        payload["sub"], payload["role"] = "user:admin", "admin"
        tampered = f"{header}.{b64(json.dumps(payload).encode())}.{signature}"
        with pytest.raises(InvalidTokenError, match="signature is invalid"):
            service.verify_access_token(tampered)

    def test_tampered_signature_is_rejected(self, service: SecurityService) -> None:
        header, payload, signature = admin_token(service).split(".")
        flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
        with pytest.raises(InvalidTokenError, match="signature is invalid"):
            service.verify_access_token(f"{header}.{payload}.{flipped}")

    def test_token_signed_with_another_secret_is_rejected(self, service: SecurityService) -> None:
        kid = service.keys.signing_key().kid
        token = jwt.encode(
            claims_for(service),
            "another-secret-" + "x" * 40,
            algorithm="HS256",
            headers={"kid": kid},
        )
        with pytest.raises(InvalidTokenError, match="signature is invalid"):
            service.verify_access_token(token)

    @pytest.mark.parametrize("kid", [None, "", "unknown-kid", "../../etc/passwd"])
    def test_missing_or_unknown_kid_is_rejected(
        self, service: SecurityService, kid: str | None
    ) -> None:
        key = service.keys.signing_key()
        headers = {} if kid is None else {"kid": kid}
        token = jwt.encode(claims_for(service), key.sign_key, algorithm="HS256", headers=headers)
        with pytest.raises(InvalidTokenError, match=r"key id|unknown or retired key"):
            service.verify_access_token(token)

    @pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer", "....", "e30.e30.e30"])
    def test_garbage_is_rejected(self, service: SecurityService, garbage: str) -> None:
        with pytest.raises(InvalidTokenError):
            service.verify_access_token(garbage)

    def test_disabled_users_token_is_rejected(self, service: SecurityService) -> None:
        service.create_user("bob", PASSWORD)
        token = service.login("bob", PASSWORD).access_token
        service.verify_access_token(token)
        service.set_user_disabled("bob", True, actor="user:admin")
        with pytest.raises(InvalidTokenError, match="user:bob is disabled"):
            service.verify_access_token(token)

    def test_disable_seen_by_another_worker(
        self,
        service: SecurityService,
        engine: Engine,
        tmp_path: Path,
        hasher: argon2.PasswordHasher,
    ) -> None:
        other = make_service(engine, tmp_path, hasher, cache_ttl=0.0)
        service.create_user("bob", PASSWORD)
        token = service.login("bob", PASSWORD).access_token
        assert other.verify_access_token(token).id == "user:bob"
        service.set_user_disabled("bob", True)
        with pytest.raises(InvalidTokenError, match="disabled"):
            other.verify_access_token(token)

    def test_token_of_a_deleted_principal_is_rejected(self, service: SecurityService) -> None:
        with pytest.raises(InvalidTokenError, match="user:ghost no longer exists"):
            service.verify_access_token(signed(service, sub="user:ghost"))
        with pytest.raises(InvalidTokenError, match="invalid subject"):
            service.verify_access_token(signed(service, sub="ghost"))

    def test_roles_come_from_the_database_not_the_token(self, service: SecurityService) -> None:
        service.create_user("bob", PASSWORD)
        token = service.login("bob", PASSWORD).access_token
        service.set_user_role("bob", "viewer")
        assert service.verify_access_token(token).role == "viewer"

    def test_password_change_revokes_earlier_tokens(
        self, service: SecurityService, engine: Engine
    ) -> None:
        service.create_user("bob", PASSWORD)
        old = signed(service, sub="user:bob", iat=int(time.time()) - 5)
        service.verify_access_token(old)
        service.set_password("bob", "a brand new passphrase here")
        with pytest.raises(InvalidTokenError, match="was revoked"):
            service.verify_access_token(old)

    def test_authenticate_requires_bearer(self, service: SecurityService) -> None:
        with pytest.raises(AuthError, match="Authentication required"):
            service.authenticate(None)
        with pytest.raises(AuthError, match="Only 'Authorization: Bearer"):
            service.authenticate("Basic YWRtaW46YWRtaW4=")


class TestAsymmetricKeys:
    def test_sign_verify_and_jwks(self, asym_service: SecurityService) -> None:
        token = admin_token(asym_service)
        header, _, _ = segments(token)
        jwks = asym_service.jwks()
        assert [k["kid"] for k in jwks["keys"]] == [header["kid"]]
        assert jwks["keys"][0]["alg"] == header["alg"] == asym_service.config.algorithm
        assert "d" not in jwks["keys"][0]  # never the private part
        # A third party verifies with the JWKS alone.
        public = jwt.PyJWK(jwks["keys"][0])
        claims = jwt.decode(token, public, algorithms=[header["alg"]], audience="shipyard")
        assert claims["sub"] == "user:admin"

    def test_rotation_keeps_old_tokens_valid_until_retirement(
        self, asym_service: SecurityService
    ) -> None:
        old_token = admin_token(asym_service)
        old_kid = segments(old_token)[0]["kid"]
        new_kid = asym_service.rotate_signing_key(actor="user:admin")
        assert new_kid != old_kid
        new_token = admin_token(asym_service)
        assert segments(new_token)[0]["kid"] == new_kid
        assert {k["kid"] for k in asym_service.jwks()["keys"]} == {old_kid, new_kid}
        asym_service.verify_access_token(old_token)
        asym_service.verify_access_token(new_token)
        assert isinstance(asym_service.keys, SqlKeyRing)
        asym_service.keys.retire(old_kid)
        with pytest.raises(InvalidTokenError, match="unknown or retired key"):
            asym_service.verify_access_token(old_token)
        assert [k["kid"] for k in asym_service.jwks()["keys"]] == [new_kid]
        asym_service.verify_access_token(new_token)

    def test_rotated_key_retires_after_grace(self, asym_service: SecurityService) -> None:
        old_token = admin_token(asym_service)
        asym_service.rotate_signing_key(grace=0)
        with pytest.raises(InvalidTokenError, match="unknown or retired key"):
            asym_service.verify_access_token(old_token)

    def test_workers_share_keys_and_see_rotation(
        self,
        asym_service: SecurityService,
        engine: Engine,
        tmp_path: Path,
        hasher: argon2.PasswordHasher,
    ) -> None:
        other = make_service(
            engine, tmp_path / "other-home", hasher, algorithm=asym_service.config.algorithm
        )
        assert other.verify_access_token(admin_token(asym_service)).id == "user:admin"
        asym_service.rotate_signing_key()
        time.sleep(0.25)  # unknown kids are re-read at most five times a second
        assert other.verify_access_token(admin_token(asym_service)).id == "user:admin"

    def test_private_keys_are_stored_encrypted(
        self,
        asym_service: SecurityService,
        engine: Engine,
        tmp_path: Path,
        hasher: argon2.PasswordHasher,
    ) -> None:
        import sqlalchemy as sa

        from shipyard.errors import ConfigError
        from shipyard.security.schema import signing_keys

        admin_token(asym_service)
        with engine.connect() as conn:
            pems = list(conn.execute(sa.select(signing_keys.c.private_key_pem)).scalars())
        assert pems and all("ENCRYPTED PRIVATE KEY" in p for p in pems)
        wrong = make_service(
            engine,
            tmp_path,
            hasher,
            algorithm=asym_service.config.algorithm,
            jwt_secret="a-different-secret-" + "y" * 32,
        )
        with pytest.raises(ConfigError, match="Cannot decrypt signing key"):
            wrong.login("admin", PASSWORD)

    def test_hs256_token_is_not_accepted_by_an_rs256_service(
        self, asym_service: SecurityService, service: SecurityService
    ) -> None:
        with pytest.raises(InvalidTokenError, match="unknown or retired key"):
            asym_service.verify_access_token(admin_token(service))


class TestRefreshTokens:
    def test_refresh_rotates(self, service: SecurityService) -> None:
        first = service.login("admin", PASSWORD)
        assert first.refresh_token and first.refresh_token.startswith("shyr_")
        second = service.refresh(first.refresh_token)
        assert second.refresh_token not in (None, first.refresh_token)
        assert service.verify_access_token(second.access_token).id == "user:admin"
        assert second.to_oauth2()["token_type"] == "bearer"

    def test_reused_refresh_token_revokes_the_family(self, service: SecurityService) -> None:
        first = service.login("admin", PASSWORD)
        other_session = service.login("admin", PASSWORD)
        assert first.refresh_token and other_session.refresh_token
        second = service.refresh(first.refresh_token)
        with pytest.raises(
            RefreshTokenReusedError, match="was already used; every token of that session"
        ):
            service.refresh(first.refresh_token)
        assert second.refresh_token
        with pytest.raises(
            RefreshTokenReusedError, match="revoked because a token of its session was reused"
        ):
            service.refresh(second.refresh_token)
        # Other sessions of the same user are untouched.
        service.refresh(other_session.refresh_token)
        actions = [r.action for r in service.audit.records()]
        assert "token.refresh_reused" in actions

    def test_concurrent_use_of_one_refresh_token_succeeds_once(
        self, service: SecurityService
    ) -> None:
        token = service.login("admin", PASSWORD).refresh_token
        assert token
        results: list[str] = []
        barrier = threading.Barrier(4)

        def use() -> None:
            barrier.wait()
            try:
                service.refresh(token)
                results.append("ok")
            except InvalidTokenError:
                results.append("refused")

        threads = [threading.Thread(target=use) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["ok", "refused", "refused", "refused"]

    def test_logout_revokes(self, service: SecurityService) -> None:
        pair = service.login("admin", PASSWORD)
        assert pair.refresh_token
        service.logout(pair.refresh_token)
        with pytest.raises(RefreshTokenReusedError, match="was revoked \\(logout\\)"):
            service.refresh(pair.refresh_token)

    def test_disable_revokes_refresh_tokens(self, service: SecurityService) -> None:
        service.create_user("bob", PASSWORD)
        pair = service.login("bob", PASSWORD)
        assert pair.refresh_token
        service.set_user_disabled("bob", True)
        with pytest.raises(InvalidTokenError, match="revoked \\(disabled\\)"):
            service.refresh(pair.refresh_token)

    @pytest.mark.parametrize("token", ["", "garbage", "shyr_unknown", "shyr_" + "A" * 43])
    def test_unknown_refresh_token_is_rejected(self, service: SecurityService, token: str) -> None:
        with pytest.raises(InvalidTokenError, match="Refresh token is invalid"):
            service.refresh(token)

    def test_expired_refresh_token_is_rejected(
        self, service: SecurityService, engine: Engine
    ) -> None:
        import sqlalchemy as sa

        from shipyard.security.schema import refresh_tokens

        pair = service.login("admin", PASSWORD)
        assert pair.refresh_token
        with engine.begin() as conn:
            conn.execute(refresh_tokens.update().values(expires_at=1))
        with pytest.raises(InvalidTokenError, match="Refresh token has expired"):
            service.refresh(pair.refresh_token)
        with engine.connect() as conn:
            stored = list(conn.execute(sa.select(refresh_tokens.c.token_hash)).scalars())
        assert pair.refresh_token not in stored  # only its sha256 is kept

    def test_service_accounts_get_no_refresh_token(self, service: SecurityService) -> None:
        _, secret = service.create_service_account("ci-bot", role="predictor")
        pair = service.login_client("ci-bot", secret)
        assert pair.refresh_token is None
        principal = service.verify_access_token(pair.access_token)
        assert principal.id == "sa:ci-bot" and principal.role == "predictor"
