"""Identities: users (argon2 password hashes) and service accounts (a random secret for the
OAuth2 client-credentials flow), plus the first-admin bootstrap.

Identities are disabled, never deleted, so audit records and grants keep pointing at
someone. Disabling, enabling or changing a password moves ``tokens_valid_after`` forward,
which invalidates every access token issued before.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from typing import Any

import argon2
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.errors import ConfigError, ConflictError, InvalidArgumentError, NotFoundError
from shipyard.security import passwords
from shipyard.security._db import sha256_hex
from shipyard.security.entities import ServiceAccount, User
from shipyard.security.rbac import ADMIN, check_role
from shipyard.security.schema import service_accounts, users
from shipyard.store.db import now_ms

DEFAULT_ADMIN_USER = "admin"
SERVICE_ACCOUNT_SECRET_PREFIX = "shys_"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_dummy_hashes: dict[int, str] = {}


def check_principal_name(name: str, what: str = "user") -> str:
    """Return ``name`` if it is a valid user or service-account name, else raise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgumentError(
            f"Invalid {what} name {name!r}.",
            hint="Use 1-128 letters, digits, '.', '_', '@' or '-', starting with a letter "
            "or digit.",
        )
    return name


def _now_s() -> int:
    return int(time.time())


def _user(row: Any) -> User:
    return User(row.name, row.role, bool(row.disabled), row.created_at, row.updated_at)


def _service_account(row: Any) -> ServiceAccount:
    return ServiceAccount(
        row.name, row.role, row.description, bool(row.disabled), row.created_at, row.updated_at
    )


def create_user(
    engine: Engine,
    name: str,
    password: str,
    *,
    role: str | None = None,
    hasher: argon2.PasswordHasher | None = None,
) -> User:
    """Create a user after checking the password policy.

    Args:
        name: The login name.
        password: The initial password; checked by :func:`passwords.check_password_policy`.
        role: A site-wide role (all workspaces), or None to rely on workspace memberships.
        hasher: The argon2 hasher; the library default when None.

    Raises:
        InvalidArgumentError: Bad name, role or weak password.
        ConflictError: The user exists.
    """
    check_principal_name(name)
    if role is not None:
        check_role(role)
    passwords.check_password_policy(password, name)
    password_hash = passwords.hash_password(password, hasher)
    now = now_ms()
    with engine.begin() as conn:
        if conn.execute(sa.select(users.c.name).where(users.c.name == name)).first():
            raise ConflictError(f"User '{name}' already exists.")
        conn.execute(
            users.insert().values(
                name=name,
                password_hash=password_hash,
                role=role,
                disabled=False,
                tokens_valid_after=0,
                created_at=now,
                updated_at=now,
            )
        )
    return User(name, role, False, now, now)


def get_user(engine: Engine, name: str) -> User:
    """The user called ``name``; NotFoundError if there is none."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.name == name)).first()
    if row is None:
        raise NotFoundError(
            f"User '{name}' does not exist.", hint="List users with `shipyard users list`."
        )
    return _user(row)


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        return [_user(r) for r in conn.execute(sa.select(users).order_by(users.c.name))]


def _update(engine: Engine, table: sa.Table, name: str, what: str, **values: Any) -> None:
    values["updated_at"] = now_ms()
    with engine.begin() as conn:
        result = conn.execute(table.update().where(table.c.name == name).values(**values))
    if result.rowcount == 0:
        raise NotFoundError(f"{what.capitalize()} '{name}' does not exist.")


def set_user_disabled(engine: Engine, name: str, disabled: bool) -> None:
    """Disable (or enable) a user; its access tokens issued so far stop working either way."""
    _update(engine, users, name, "user", disabled=disabled, tokens_valid_after=_now_s())


def set_user_role(engine: Engine, name: str, role: str | None) -> None:
    """Set the user's site-wide role; None removes it."""
    if role is not None:
        check_role(role)
    _update(engine, users, name, "user", role=role)


def set_password(
    engine: Engine, name: str, password: str, *, hasher: argon2.PasswordHasher | None = None
) -> None:
    """Replace the password (policy-checked); earlier access tokens stop working."""
    passwords.check_password_policy(password, name)
    _update(
        engine,
        users,
        name,
        "user",
        password_hash=passwords.hash_password(password, hasher),
        tokens_valid_after=_now_s(),
    )


def check_user_password(
    engine: Engine, name: str, password: str, *, hasher: argon2.PasswordHasher | None = None
) -> User | None:
    """The user when ``password`` is right, else None (unknown users take as long).

    A hash made with outdated argon2 parameters is replaced on success.
    """
    row = None
    if isinstance(name, str) and _NAME.match(name):  # other names cannot exist
        with engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.name == name)).first()
    if row is None:
        # Verify against a dummy hash so an unknown name costs the same time as a wrong
        # password, and timing does not reveal which names exist.
        key = id(hasher)
        if key not in _dummy_hashes:
            _dummy_hashes[key] = passwords.hash_password(secrets.token_hex(16), hasher)
        passwords.verify_password(_dummy_hashes[key], password, hasher)
        return None
    if not passwords.verify_password(row.password_hash, password, hasher):
        return None
    if passwords.needs_rehash(row.password_hash, hasher):
        with engine.begin() as conn:
            conn.execute(
                users.update()
                .where(users.c.name == name)
                .values(password_hash=passwords.hash_password(password, hasher))
            )
    return _user(row)


def bootstrap_admin(
    engine: Engine,
    password: str | None,
    username: str | None = None,
    *,
    hasher: argon2.PasswordHasher | None = None,
) -> User | None:
    """Create the first admin when no admin user exists yet; a no-op afterwards.

    The lead wires ``password`` from ``SHIPYARD_ADMIN_PASSWORD`` (or a CLI prompt) and
    ``username`` from ``SHIPYARD_ADMIN_USER``. There is never a default password.

    Returns:
        The new admin, or None when an admin already existed (its password is untouched).

    Raises:
        ConfigError: No admin exists and no password was given.
    """
    username = username or DEFAULT_ADMIN_USER
    with engine.connect() as conn:
        existing = conn.execute(sa.select(users.c.name).where(users.c.role == ADMIN)).first()
    if existing is not None:
        return None
    if not password:
        raise ConfigError(
            "No admin user exists and SHIPYARD_ADMIN_PASSWORD is not set.",
            hint=f"Set SHIPYARD_ADMIN_PASSWORD (and optionally SHIPYARD_ADMIN_USER), or run "
            f"`shipyard users create {username} --role admin`.",
        )
    try:
        return create_user(engine, username, password, role=ADMIN, hasher=hasher)
    except ConflictError:
        # The user exists without the admin role (or another process just created it).
        with engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.name == username)).first()
        if row is not None and row.role == ADMIN:
            return None
        raise ConflictError(
            f"User '{username}' exists but is not an admin; refusing to promote it from "
            "SHIPYARD_ADMIN_PASSWORD.",
            hint="Choose another SHIPYARD_ADMIN_USER, or promote it with "
            f"`shipyard users set-role {username} admin`.",
        ) from None


def _new_client_secret() -> str:
    return SERVICE_ACCOUNT_SECRET_PREFIX + secrets.token_urlsafe(32)


def create_service_account(
    engine: Engine, name: str, *, role: str | None = None, description: str = ""
) -> tuple[ServiceAccount, str]:
    """Create a service account; returns it and its client secret, which is not stored
    (only its sha256 is) and so can be shown only this once.

    Raises:
        InvalidArgumentError: Bad name or role.
        ConflictError: The service account exists.
    """
    check_principal_name(name, "service account")
    if role is not None:
        check_role(role)
    secret = _new_client_secret()
    now = now_ms()
    with engine.begin() as conn:
        exists = conn.execute(
            sa.select(service_accounts.c.name).where(service_accounts.c.name == name)
        ).first()
        if exists:
            raise ConflictError(f"Service account '{name}' already exists.")
        conn.execute(
            service_accounts.insert().values(
                name=name,
                secret_hash=sha256_hex(secret),
                role=role,
                description=description,
                disabled=False,
                tokens_valid_after=0,
                created_at=now,
                updated_at=now,
            )
        )
    return ServiceAccount(name, role, description, False, now, now), secret


def get_service_account(engine: Engine, name: str) -> ServiceAccount:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(service_accounts).where(service_accounts.c.name == name)
        ).first()
    if row is None:
        raise NotFoundError(
            f"Service account '{name}' does not exist.",
            hint="List them with `shipyard service-accounts list`.",
        )
    return _service_account(row)


def list_service_accounts(engine: Engine) -> list[ServiceAccount]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(service_accounts).order_by(service_accounts.c.name))
        return [_service_account(r) for r in rows]


def set_service_account_disabled(engine: Engine, name: str, disabled: bool) -> None:
    _update(
        engine,
        service_accounts,
        name,
        "service account",
        disabled=disabled,
        tokens_valid_after=_now_s(),
    )


def set_service_account_role(engine: Engine, name: str, role: str | None) -> None:
    if role is not None:
        check_role(role)
    _update(engine, service_accounts, name, "service account", role=role)


def rotate_service_account_secret(engine: Engine, name: str) -> str:
    """Replace the client secret; returns the new one (shown once)."""
    secret = _new_client_secret()
    _update(
        engine,
        service_accounts,
        name,
        "service account",
        secret_hash=sha256_hex(secret),
        tokens_valid_after=_now_s(),
    )
    return secret


def check_service_account_secret(engine: Engine, name: str, secret: str) -> ServiceAccount | None:
    """The service account when ``secret`` is its client secret, else None.

    The secret is high-entropy, so sha256 is enough; the digests are compared in constant
    time.
    """
    row = None
    if isinstance(name, str) and _NAME.match(name):
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(service_accounts).where(service_accounts.c.name == name)
            ).first()
    presented = sha256_hex(secret)
    stored = row.secret_hash if row is not None else "0" * 64
    if not hmac.compare_digest(presented, stored) or row is None:
        return None
    return _service_account(row)
