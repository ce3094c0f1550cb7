"""API keys for automation: ``shy_<key id>_<secret>``, stored as the sha256 of the secret.

The key id (12 hex characters) finds the row; the secret (32 random bytes) is compared by
digest with :func:`hmac.compare_digest`. A plain sha256 is enough because the secret is
high-entropy, unlike a password. A key acts as its owner, optionally narrowed to
``scopes`` such as ``predictions:invoke`` or ``models:*``.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.errors import InvalidArgumentError, InvalidTokenError, NotFoundError
from shipyard.security._db import sha256_hex
from shipyard.security.entities import PRINCIPAL_KINDS, ApiKeyInfo
from shipyard.security.rbac import RESOURCE_ACTIONS
from shipyard.security.schema import api_keys
from shipyard.store.db import now_ms

API_KEY_PREFIX = "shy_"
_KEY = re.compile(r"^shy_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_ALL_ACTIONS = tuple({a for actions in RESOURCE_ACTIONS.values() for a in actions})
_HINT = "Create a new key with `shipyard api-keys create`."


def _check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    out = set()
    for scope in scopes:
        rtype, sep, action = scope.partition(":")
        known = RESOURCE_ACTIONS.get(rtype) if rtype != "*" else _ALL_ACTIONS
        if scope != "*" and not (sep and known and (action == "*" or action in known)):
            raise InvalidArgumentError(
                f"Invalid API key scope {scope!r}.",
                hint="Write scopes as '<resource>:<action>', e.g. 'predictions:invoke', "
                "'models:*' or '*:read'.",
            )
        out.add(scope)
    return frozenset(out)


def _scopes(text: str | None) -> frozenset[str] | None:
    return None if text is None else frozenset(text.split())


def _info(row: Any) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row.key_id,
        principal_type=row.principal_type,
        principal_name=row.principal_name,
        name=row.name,
        scopes=_scopes(row.scopes),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def create_api_key(
    engine: Engine,
    principal_type: str,
    principal_name: str,
    *,
    name: str = "",
    scopes: Iterable[str] | None = None,
    expires_in: float | None = None,
) -> tuple[ApiKeyInfo, str]:
    """Create a key for a user or service account.

    Args:
        principal_type: ``user`` or ``service_account``.
        principal_name: The owner.
        name: A label to recognise the key by.
        scopes: ``resource:action`` patterns the key is limited to; None = the owner's
            full permissions.
        expires_in: Seconds until the key stops working; None = until revoked.

    Returns:
        The key's info and the full key, which is not stored and shown only this once.
    """
    if principal_type not in PRINCIPAL_KINDS:
        raise InvalidArgumentError(
            f"API keys belong to a user or service account, not {principal_type!r}."
        )
    scope_set = None if scopes is None else _check_scopes(scopes)
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    now = now_ms()
    expires_at = None if expires_in is None else now + int(expires_in * 1000)
    with engine.begin() as conn:
        conn.execute(
            api_keys.insert().values(
                key_id=key_id,
                secret_hash=sha256_hex(secret),
                principal_type=principal_type,
                principal_name=principal_name,
                name=name,
                scopes=None if scope_set is None else " ".join(sorted(scope_set)),
                created_at=now,
                expires_at=expires_at,
            )
        )
    info = ApiKeyInfo(
        key_id, principal_type, principal_name, name, scope_set, now, expires_at, None, None
    )
    return info, f"{API_KEY_PREFIX}{key_id}_{secret}"


def list_api_keys(
    engine: Engine, principal_type: str | None = None, principal_name: str | None = None
) -> list[ApiKeyInfo]:
    query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if principal_type is not None:
        query = query.where(api_keys.c.principal_type == principal_type)
    if principal_name is not None:
        query = query.where(api_keys.c.principal_name == principal_name)
    with engine.connect() as conn:
        return [_info(r) for r in conn.execute(query)]


def get_api_key(engine: Engine, key_id: str) -> ApiKeyInfo:
    with engine.connect() as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
    if row is None:
        raise NotFoundError(
            f"API key '{key_id}' does not exist.", hint="List keys with `shipyard api-keys list`."
        )
    return _info(row)


def revoke_api_key(engine: Engine, key_id: str) -> None:
    """Revoke a key for good; NotFoundError if it does not exist."""
    with engine.begin() as conn:
        result = conn.execute(
            api_keys.update()
            .where(api_keys.c.key_id == key_id)
            .values(revoked_at=sa.func.coalesce(api_keys.c.revoked_at, now_ms()))
        )
    if result.rowcount == 0:
        raise NotFoundError(f"API key '{key_id}' does not exist.")


def key_id_of(key: str) -> str | None:
    """The key id of a well-formed API key, else None."""
    match = _KEY.match(key) if isinstance(key, str) else None
    return match.group(1) if match else None


class ApiKeyVerifier:
    """Checks presented API keys, caching rows for ``ttl`` seconds.

    A revocation through this process takes effect at once (:meth:`invalidate`); one made
    by another worker within ``ttl``. ``last_used_at`` is written at most once a minute.
    """

    def __init__(self, engine: Engine, ttl: float = 5.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Any]] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def invalidate(self, key_id: str | None = None) -> None:
        with self._lock:
            if key_id is None:
                self._cache.clear()
            else:
                self._cache.pop(key_id, None)

    def _row(self, key_id: str) -> Any:
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = (now, row)
        return row

    def is_warm(self, key: str) -> bool:
        """True when :meth:`verify` of ``key`` would touch no database (its row is cached
        and its ``last_used_at`` is not due), so a server may call it on its event loop."""
        key_id = key_id_of(key)
        if key_id is None:
            return True  # refused without a lookup
        now = time.monotonic()
        hit = self._cache.get(key_id)
        touched = self._touched.get(key_id)
        return (
            hit is not None
            and now - hit[0] < self._ttl
            and (hit[1] is None or (touched is not None and now - touched < 60))
        )

    def verify(self, key: str) -> ApiKeyInfo:
        """The info of a valid key.

        Raises:
            InvalidTokenError: Malformed, unknown, wrong secret, revoked or expired.
        """
        match = _KEY.match(key) if isinstance(key, str) else None
        if match is None:
            raise InvalidTokenError("API key is malformed.", hint=_HINT)
        key_id, secret = match.groups()
        row = self._row(key_id)
        stored = row.secret_hash if row is not None else "0" * 64
        if not hmac.compare_digest(sha256_hex(secret), stored) or row is None:
            raise InvalidTokenError("API key is invalid.", hint=_HINT)
        now = now_ms()
        if row.revoked_at is not None:
            raise InvalidTokenError(f"API key '{key_id}' has been revoked.", hint=_HINT)
        if row.expires_at is not None and row.expires_at <= now:
            raise InvalidTokenError(f"API key '{key_id}' has expired.", hint=_HINT)
        self._touch(key_id, now)
        return _info(row)

    def _touch(self, key_id: str, now: int) -> None:
        last = self._touched.get(key_id)
        if last is not None and time.monotonic() - last < 60:
            return
        self._touched[key_id] = time.monotonic()
        with self._engine.begin() as conn:
            conn.execute(
                api_keys.update().where(api_keys.c.key_id == key_id).values(last_used_at=now)
            )
