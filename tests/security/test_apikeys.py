"""API keys: format, hashing at rest, one-character changes, revocation, expiry, scopes."""

from __future__ import annotations

import string

import pytest
import sqlalchemy as sa
from security_helpers import PASSWORD
from sqlalchemy.engine import Engine

from shipyard.errors import (
    InvalidArgumentError,
    InvalidTokenError,
    NotFoundError,
    PermissionDeniedError,
)
from shipyard.security import SecurityService
from shipyard.security import apikeys as apikeys_module
from shipyard.security.schema import api_keys

URLSAFE = string.ascii_letters + string.digits + "-_"


def _other(ch: str, alphabet: str) -> str:
    return next(c for c in alphabet if c != ch)


def test_key_format_and_only_a_hash_is_stored(service: SecurityService, engine: Engine) -> None:
    info, key = service.create_api_key("user", "admin", name="laptop")
    assert key.startswith(f"shy_{info.key_id}_") and len(key) == 4 + 12 + 1 + 43
    with engine.connect() as conn:
        row = conn.execute(sa.select(api_keys)).one()
    assert key.split("_", 2)[2] not in str(tuple(row))
    assert service.authenticate(f"Bearer {key}").id == "user:admin"


def test_every_single_character_change_is_rejected(service: SecurityService) -> None:
    _, key = service.create_api_key("user", "admin")
    service.verify_api_key(key)
    for i, ch in enumerate(key):
        alphabet = "0123456789abcdef" if 4 <= i < 16 else URLSAFE
        changed = key[:i] + _other(ch, alphabet) + key[i + 1 :]
        with pytest.raises(InvalidTokenError, match=r"API key is (invalid|malformed)"):
            service.verify_api_key(changed)
    for broken in (key[:-1], key + "A", key.upper(), key.replace("shy_", "shx_"), ""):
        with pytest.raises(InvalidTokenError):
            service.verify_api_key(broken)
    service.verify_api_key(key)


def test_secrets_are_compared_in_constant_time(
    service: SecurityService, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = service.create_api_key("user", "admin")
    calls = []
    real = apikeys_module.hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(apikeys_module.hmac, "compare_digest", spy)
    service.verify_api_key(key)
    with pytest.raises(InvalidTokenError):
        service.verify_api_key(key[:-1] + _other(key[-1], URLSAFE))
    # Unknown key ids are compared too (against a dummy), so timing does not reveal them.
    with pytest.raises(InvalidTokenError):
        service.verify_api_key("shy_000000000000_" + key[-43:])
    assert len(calls) == 3


def test_revoked_key_is_rejected(service: SecurityService) -> None:
    info, key = service.create_api_key("user", "admin")
    service.revoke_api_key(info.key_id, actor="user:admin")
    with pytest.raises(InvalidTokenError, match=f"API key '{info.key_id}' has been revoked"):
        service.verify_api_key(key)
    with pytest.raises(NotFoundError):
        service.revoke_api_key("000000000000")


def test_expired_key_is_rejected(service: SecurityService, engine: Engine) -> None:
    info, key = service.create_api_key("user", "admin", expires_in=3600)
    service.verify_api_key(key)
    with engine.begin() as conn:
        conn.execute(api_keys.update().values(expires_at=1))
    service.api_keys.invalidate()
    with pytest.raises(InvalidTokenError, match=f"API key '{info.key_id}' has expired"):
        service.verify_api_key(key)


def test_key_of_a_disabled_owner_is_rejected(service: SecurityService) -> None:
    service.create_user("bob", PASSWORD)
    _, key = service.create_api_key("user", "bob")
    service.set_user_disabled("bob", True)
    with pytest.raises(InvalidTokenError, match="owner user:bob is disabled"):
        service.verify_api_key(key)


def test_scoped_key_acts_as_owner_narrowed_to_scopes(service: SecurityService) -> None:
    service.create_service_account("scorer")
    service.set_workspace_role("default", "service_account", "scorer", "maintainer")
    _, key = service.create_api_key("service_account", "scorer", scopes=["predictions:invoke"])
    principal = service.authenticate(f"Bearer {key}")
    assert principal.auth == "api_key" and principal.scopes == frozenset({"predictions:invoke"})
    service.authorize(principal, "default", "predictions", "invoke", "fraud")
    with pytest.raises(PermissionDeniedError, match="do not include 'models:write'"):
        service.authorize(principal, "default", "models", "write")


@pytest.mark.parametrize("scope", ["models", "models:fly", "nothing:read", "", "models:read:x"])
def test_invalid_scopes_are_refused(service: SecurityService, scope: str) -> None:
    with pytest.raises(InvalidArgumentError, match="Invalid API key scope"):
        service.create_api_key("user", "admin", scopes=[scope])


def test_key_for_unknown_owner_is_refused(service: SecurityService) -> None:
    with pytest.raises(NotFoundError, match="user:nobody does not exist"):
        service.create_api_key("user", "nobody")


def test_list_keys(service: SecurityService, engine: Engine) -> None:
    first, _ = service.create_api_key("user", "admin", name="a")
    second, _ = service.create_api_key("user", "admin", name="b", scopes=["*:read"])
    listed = apikeys_module.list_api_keys(engine, "user", "admin")
    assert {k.key_id for k in listed} == {first.key_id, second.key_id}
    assert apikeys_module.get_api_key(engine, second.key_id).scopes == frozenset({"*:read"})
