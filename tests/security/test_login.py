"""Identities and login: first-admin bootstrap, password and client-credentials flows,
lockout after repeated failures, and SQL injection strings as user names."""

from __future__ import annotations

from pathlib import Path

import argon2
import pytest
import sqlalchemy as sa
from security_helpers import PASSWORD, make_service
from sqlalchemy.engine import Engine

from shipyard.errors import AuthError, ConfigError, ConflictError, InvalidArgumentError
from shipyard.security import LockoutPolicy, LoginLockedError, SecurityService
from shipyard.security import users as users_module
from shipyard.security.schema import login_throttle, users

INJECTIONS = [
    "' OR '1'='1",
    "admin'--",
    "admin' #",
    "'; DROP TABLE users; --",
    '" OR ""="',
    "admin' /*",
    "1; SELECT pg_sleep(5)",
    "%' OR 1=1 --",
    "' UNION SELECT name, password_hash FROM users --",
    "admin\\'; --",
    "admin' OR 1=1 LIMIT 1 --",
]


class TestBootstrap:
    def test_first_admin_from_password(
        self, engine: Engine, tmp_path: Path, hasher: argon2.PasswordHasher
    ) -> None:
        svc = make_service(engine, tmp_path, hasher)
        user = svc.bootstrap_admin(PASSWORD, "root")
        assert user is not None and user.name == "root" and user.role == "admin"
        assert svc.login("root", PASSWORD).access_token

    def test_no_default_password(
        self, engine: Engine, tmp_path: Path, hasher: argon2.PasswordHasher
    ) -> None:
        svc = make_service(engine, tmp_path, hasher)
        for missing in (None, ""):
            with pytest.raises(ConfigError, match="SHIPYARD_ADMIN_PASSWORD is not set"):
                svc.bootstrap_admin(missing)
        assert users_module.list_users(engine) == []

    def test_bootstrap_is_a_no_op_once_an_admin_exists(self, service: SecurityService) -> None:
        assert service.bootstrap_admin("another passphrase entirely") is None
        assert service.bootstrap_admin(None) is None
        service.login("admin", PASSWORD)  # password unchanged

    def test_bootstrap_password_obeys_the_policy(
        self, engine: Engine, tmp_path: Path, hasher: argon2.PasswordHasher
    ) -> None:
        svc = make_service(engine, tmp_path, hasher)
        with pytest.raises(InvalidArgumentError, match="too short"):
            svc.bootstrap_admin("admin")

    def test_bootstrap_never_promotes_an_existing_user(
        self, engine: Engine, tmp_path: Path, hasher: argon2.PasswordHasher
    ) -> None:
        svc = make_service(engine, tmp_path, hasher)
        svc.create_user("admin", PASSWORD, role="viewer")
        with pytest.raises(ConflictError, match="exists but is not an admin"):
            svc.bootstrap_admin("another passphrase entirely")


class TestUsers:
    def test_create_list_disable_enable_set_role(
        self, service: SecurityService, engine: Engine
    ) -> None:
        service.create_user("bob", PASSWORD, role="viewer")
        with pytest.raises(ConflictError, match="User 'bob' already exists"):
            service.create_user("bob", PASSWORD)
        assert [u.name for u in users_module.list_users(engine)] == ["admin", "bob"]
        service.set_user_role("bob", "data-scientist")
        assert users_module.get_user(engine, "bob").role == "data-scientist"
        service.set_user_disabled("bob", True)
        assert users_module.get_user(engine, "bob").disabled
        with pytest.raises(AuthError, match="User 'bob' is disabled"):
            service.login("bob", PASSWORD)
        service.set_user_disabled("bob", False)
        service.login("bob", PASSWORD)
        actions = [r.action for r in service.audit.records()]
        assert {"user.create", "user.set_role", "user.disable", "user.enable"} <= set(actions)

    def test_passwords_are_stored_as_argon2id(
        self, service: SecurityService, engine: Engine
    ) -> None:
        with engine.connect() as conn:
            stored = conn.execute(sa.select(users.c.password_hash)).scalar_one()
        assert stored.startswith("$argon2id$") and PASSWORD not in stored

    def test_outdated_hash_is_upgraded_on_login(
        self, service: SecurityService, engine: Engine
    ) -> None:
        weak = argon2.PasswordHasher(time_cost=1, memory_cost=512, parallelism=1)
        with engine.begin() as conn:
            conn.execute(users.update().values(password_hash=weak.hash(PASSWORD)))
        service.login("admin", PASSWORD)
        with engine.connect() as conn:
            stored = conn.execute(sa.select(users.c.password_hash)).scalar_one()
        assert not service.hasher.check_needs_rehash(stored)  # type: ignore[union-attr]

    @pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 129, "bob\x00", *INJECTIONS])
    def test_invalid_names_are_refused(self, service: SecurityService, name: str) -> None:
        with pytest.raises(InvalidArgumentError, match="Invalid user name"):
            service.create_user(name, PASSWORD)

    def test_service_account_client_credentials(self, service: SecurityService) -> None:
        account, secret = service.create_service_account("ci-bot", role="predictor")
        assert secret.startswith("shys_") and account.role == "predictor"
        assert service.login_client("ci-bot", secret).access_token
        with pytest.raises(AuthError, match="Invalid client id or secret"):
            service.login_client("ci-bot", secret[:-1] + ("A" if secret[-1] != "A" else "B"))
        service.set_service_account_disabled("ci-bot", True)
        with pytest.raises(AuthError, match="Service account 'ci-bot' is disabled"):
            service.login_client("ci-bot", secret)

    def test_service_account_role_and_secret_rotation(self, service: SecurityService) -> None:
        _, old = service.create_service_account("etl")
        token = service.login_client("etl", old).access_token
        service.set_service_account_role("etl", "viewer", actor="user:admin")
        assert service.verify_access_token(token).role == "viewer"
        new = service.rotate_service_account_secret("etl")
        with pytest.raises(AuthError, match="Invalid client id or secret"):
            service.login_client("etl", old)
        service.login_client("etl", new)

    def test_config_repr_hides_the_secret(self, service: SecurityService) -> None:
        assert service.config.jwt_secret and service.config.jwt_secret not in repr(service.config)
        assert service.config.jwt_secret not in repr(service)


class TestLogin:
    def test_wrong_password_and_unknown_user_get_the_same_answer(
        self, service: SecurityService
    ) -> None:
        with pytest.raises(AuthError, match=r"^Invalid user name or password") as wrong:
            service.login("admin", "not the right passphrase")
        with pytest.raises(AuthError, match=r"^Invalid user name or password") as unknown:
            service.login("nobody", "not the right passphrase")
        assert str(wrong.value) == str(unknown.value)
        failures = [r for r in service.audit.records() if r.action == "login.failure"]
        assert [r.resource_id for r in failures] == ["admin", "nobody"]
        assert all("passphrase" not in str(r.details) for r in failures)

    @pytest.mark.parametrize("name", INJECTIONS)
    def test_sql_injection_as_user_name(
        self, service: SecurityService, engine: Engine, name: str
    ) -> None:
        with pytest.raises(AuthError, match="Invalid user name or password"):
            service.login(name, PASSWORD)
        with pytest.raises(AuthError, match="Invalid client id or secret"):
            service.login_client(name, "shys_whatever")
        assert (
            users_module.check_user_password(engine, name, PASSWORD, hasher=service.hasher) is None
        )
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(users)).scalar() == 1
        service.login("admin", PASSWORD)

    def test_brute_force_hits_the_lockout(self, service: SecurityService) -> None:
        for _ in range(3):  # policy in tests: 3 failures per user
            with pytest.raises(AuthError, match="Invalid user name or password"):
                service.login("admin", "guess guess guess", client_ip="10.0.0.1")
        with pytest.raises(LoginLockedError, match="Too many failed logins") as info:
            service.login("admin", PASSWORD, client_ip="10.0.0.2")  # right password, too late
        assert info.value.http_status == 429
        assert 0 < info.value.retry_after <= 15 * 60
        reasons = [
            r.details.get("reason") for r in service.audit.records() if r.action == "login.failure"
        ]
        assert reasons[-2:] == ["bad_credentials, now_locked", "locked"]

    def test_lockout_survives_a_restart_and_spans_workers(
        self,
        service: SecurityService,
        engine: Engine,
        tmp_path: Path,
        hasher: argon2.PasswordHasher,
    ) -> None:
        other_worker = make_service(engine, tmp_path, hasher)
        for svc in (service, other_worker, service):
            with pytest.raises(AuthError, match="Invalid"):
                svc.login("admin", "guess guess guess")
        restarted = make_service(engine, tmp_path, hasher)
        with pytest.raises(LoginLockedError):
            restarted.login("admin", PASSWORD)

    def test_lock_expires_and_unlock_lifts_it(
        self, service: SecurityService, engine: Engine
    ) -> None:
        for _ in range(3):
            with pytest.raises(AuthError):
                service.login("admin", "guess guess guess")
        with pytest.raises(LoginLockedError):
            service.login("admin", PASSWORD)
        with engine.begin() as conn:
            conn.execute(login_throttle.update().values(locked_until=1))
        service.login("admin", PASSWORD)
        for _ in range(3):
            with pytest.raises(AuthError):
                service.login("admin", "guess guess guess")
        service.unlock_login("admin", actor="user:admin")
        service.login("admin", PASSWORD)

    def test_failures_per_address_lock_the_address(self, service: SecurityService) -> None:
        service.create_user("bob", PASSWORD)
        for i in range(6):  # policy in tests: 6 failures per address
            with pytest.raises(AuthError):
                service.login(f"spray-{i}", "guess guess guess", client_ip="192.0.2.9")
        with pytest.raises(LoginLockedError):
            service.login("bob", PASSWORD, client_ip="192.0.2.9")
        service.login("bob", PASSWORD, client_ip="192.0.2.10")

    def test_success_resets_the_user_count(self, service: SecurityService) -> None:
        for _ in range(2):
            with pytest.raises(AuthError):
                service.login("admin", "guess guess guess")
        service.login("admin", PASSWORD)
        for _ in range(2):
            with pytest.raises(AuthError):
                service.login("admin", "guess guess guess")
        service.login("admin", PASSWORD)

    def test_failures_outside_the_window_do_not_count(
        self, engine: Engine, tmp_path: Path, hasher: argon2.PasswordHasher
    ) -> None:
        svc = make_service(
            engine, tmp_path, hasher, lockout=LockoutPolicy(max_user_failures=2, window=60)
        )
        svc.bootstrap_admin(PASSWORD)
        with pytest.raises(AuthError):
            svc.login("admin", "guess guess guess")
        with engine.begin() as conn:
            conn.execute(login_throttle.update().values(window_start=1))
        with pytest.raises(AuthError, match="Invalid"):
            svc.login("admin", "guess guess guess")
        svc.login("admin", PASSWORD)
