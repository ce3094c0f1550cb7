"""The JWT secret file and signing-key configuration."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import argon2
import pytest
from security_helpers import PASSWORD
from sqlalchemy.engine import Engine

from shipyard.errors import ConfigError, InvalidTokenError
from shipyard.security import SecurityConfig, SecurityService
from shipyard.security.keys import HmacKeyRing, load_or_create_secret


def test_secret_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = load_or_create_secret(home)
    assert len(first) >= 48
    assert stat.S_IMODE((home / "jwt-secret").stat().st_mode) == 0o600
    assert load_or_create_secret(home) == first


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_or_create_secret(tmp_path)
    (tmp_path / "jwt-secret").chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users \\(mode 644\\)"):
        load_or_create_secret(tmp_path)


def test_service_without_configured_secret_uses_the_home_file(
    engine: Engine, tmp_path: Path, hasher: argon2.PasswordHasher
) -> None:
    svc = SecurityService(engine, tmp_path, hasher=hasher)
    svc.bootstrap_admin(PASSWORD)
    token = svc.login("admin", PASSWORD).access_token
    again = SecurityService(engine, tmp_path, hasher=hasher)  # a restart
    assert again.verify_access_token(token).id == "user:admin"
    elsewhere = SecurityService(engine, tmp_path / "other", hasher=hasher)
    with pytest.raises(InvalidTokenError, match="unknown or retired key"):
        elsewhere.verify_access_token(token)


def test_short_secret_is_refused(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="too short: at least 32 bytes"):
        SecurityService(engine, tmp_path, SecurityConfig(jwt_secret="short"))


def test_unknown_algorithm_is_refused(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Unsupported JWT algorithm 'RS512'.*Did you mean"):
        SecurityService(engine, tmp_path, SecurityConfig(algorithm="RS512"))


def test_hs256_has_no_rotation_and_an_empty_jwks(service: SecurityService) -> None:
    assert service.jwks() == {"keys": []}
    with pytest.raises(ConfigError, match="HS256 has a single secret"):
        service.rotate_signing_key()


def test_hmac_kid_does_not_reveal_the_secret() -> None:
    secret = "s" * 48
    ring = HmacKeyRing(secret)
    assert secret not in ring.signing_key().kid and secret not in repr(ring)
    assert ring.verification_key(ring.signing_key().kid) is not None
    assert HmacKeyRing("t" * 48).signing_key().kid != ring.signing_key().kid
