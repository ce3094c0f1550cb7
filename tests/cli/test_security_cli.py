"""`shipyard users|service-accounts|api-keys|keys|audit` on the local database (how an
operator bootstraps the first admin), and `login`/`whoami`/`logout` against a server."""

from __future__ import annotations

import json
import re
import stat
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from shipyard.cli.main import main
from shipyard.config import load_settings
from shipyard.errors import AuthError
from shipyard.security import LoginLockedError, SecurityService
from shipyard.security.schema import audit_log
from shipyard.store.db import engine_for
from shipyard.testing import ServerProcess

PASSWORD = "violet tractor moonlight"


def shipyard(*argv: str, input: str | None = None) -> tuple[int, str, str]:
    """Run the CLI in-process with ``input`` on stdin (prompts read it too);
    returns (exit code, stdout, stderr) with line wrapping undone."""
    code = 0
    with CliRunner().isolation(input=input) as (out, err, _):
        try:
            main(list(argv))
        except SystemExit as exc:
            code = int(exc.code or 0)
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return code, _flat(stdout), _flat(stderr)


def _flat(text: str) -> str:
    """Text on one line, table borders dropped: "a │ b" reads "a b"."""
    return " ".join(re.sub("[\u2500-\u257f]", " ", text).split())


def _twice(password: str = PASSWORD) -> str:
    return f"{password}\n{password}\n"


@pytest.fixture
def service() -> SecurityService:
    """The same database the CLI works on (the test's SHIPYARD_HOME)."""
    settings = load_settings()
    return SecurityService(engine_for(settings.db), settings.home)


@pytest.fixture
def admin() -> None:
    code, _, err = shipyard("users", "create", "admin", "--role", "admin", input=_twice())
    assert code == 0, err


def _secret_line(out: str, label: str) -> str:
    return out.split(f"{label}: ", 1)[1].split()[0]


class TestUsers:
    def test_first_admin_is_created_with_a_prompted_password(
        self, service: SecurityService
    ) -> None:
        code, out, err = shipyard("users", "create", "admin", "--role", "admin", input=_twice())
        assert code == 0, err
        assert "Created user admin with role admin in every workspace (local database" in out
        assert PASSWORD not in out  # hidden prompt
        assert service.login("admin", PASSWORD).access_token

        code, out, _ = shipyard("users", "list")
        assert "admin admin - active" in out

    def test_mismatched_confirmation_asks_again(self, service: SecurityService) -> None:
        typed = f"{PASSWORD}\nsomething else entirely\n" + _twice("second try passphrase")
        code, out, _ = shipyard("users", "create", "ann", "--role", "viewer", input=typed)
        assert code == 0
        assert "do not match" in out
        assert service.login("ann", "second try passphrase").access_token

    def test_password_from_stdin(self, service: SecurityService) -> None:
        code, _, _ = shipyard(
            "users", "create", "ci", "--role", "viewer", "--password-stdin", input=PASSWORD + "\n"
        )
        assert code == 0
        assert service.login("ci", PASSWORD).access_token

    def test_weak_password_is_refused_with_the_rule(self) -> None:
        code, _, err = shipyard("users", "create", "bob", "--role", "viewer", input=_twice("short"))
        assert code == 2
        assert "Password is too short" in err

    def test_unknown_role_is_refused_before_any_prompt(self) -> None:
        code, out, err = shipyard("users", "create", "bob", "--role", "superuser")
        assert code == 2
        assert "Unknown role 'superuser'" in err
        assert "Password" not in out

    def test_workspace_role(self, service: SecurityService) -> None:
        code, out, err = shipyard(
            "users", "create", "ann", "--role", "data-scientist", "-w", "default", input=_twice()
        )
        assert code == 0, err
        assert "in workspace 'default'" in out
        principal = service.authenticate_token(service.login("ann", PASSWORD).access_token)
        assert principal.role is None
        assert principal.roles_in("default") == ("data-scientist",)
        assert "ann - default=data-scientist active" in shipyard("users", "list")[1]

    def test_unknown_workspace_creates_nothing(self) -> None:
        code, _, err = shipyard(
            "users", "create", "ann", "--role", "viewer", "-w", "nope", input=_twice()
        )
        assert code == 3
        assert "nope" in err
        assert "ann" not in shipyard("users", "list")[1]

    def test_disable_and_enable(self, admin: None, service: SecurityService) -> None:
        token = service.login("admin", PASSWORD).access_token
        assert shipyard("users", "disable", "admin")[0] == 0
        service.directory.invalidate()  # another process changed it: drop the cache
        with pytest.raises(AuthError, match="disabled"):
            service.authenticate_token(token)
        with pytest.raises(AuthError, match="disabled"):
            service.login("admin", PASSWORD)
        assert "admin admin - disabled" in shipyard("users", "list")[1]

        assert shipyard("users", "enable", "admin")[0] == 0
        assert service.login("admin", PASSWORD).access_token

    def test_set_role_site_wide_and_per_workspace(
        self, admin: None, service: SecurityService
    ) -> None:
        code, out, _ = shipyard("users", "set-role", "admin", "maintainer")
        assert code == 0 and "admin now has role maintainer in every workspace" in out
        code, _, _ = shipyard("users", "set-role", "admin", "viewer", "--workspace", "default")
        assert code == 0
        principal = service.authenticate_token(service.login("admin", PASSWORD).access_token)
        assert principal.role == "maintainer"
        assert principal.roles_in("default") == ("maintainer", "viewer")

    def test_unknown_user_says_how_to_list_them(self) -> None:
        code, _, err = shipyard("users", "disable", "ghost")
        assert code == 3
        assert "'ghost' does not exist" in err

    def test_set_password_revokes_sessions(self, admin: None, service: SecurityService) -> None:
        pair = service.login("admin", PASSWORD)
        new = "a brand new passphrase"
        assert shipyard("users", "set-password", "admin", input=_twice(new))[0] == 0
        with pytest.raises(AuthError):
            service.refresh(pair.refresh_token or "")
        assert service.login("admin", new).access_token

    def test_unlock_lifts_a_login_lockout(self, admin: None, service: SecurityService) -> None:
        for _ in range(5):
            with pytest.raises(AuthError, match="Invalid user name or password"):
                service.login("admin", "certainly not the password")
        with pytest.raises(LoginLockedError):
            service.login("admin", PASSWORD)
        code, out, _ = shipyard("users", "unlock", "admin")
        assert code == 0 and "Logins for admin are unlocked" in out
        assert service.login("admin", PASSWORD).access_token

    def test_every_change_is_audited_with_the_local_actor(self, admin: None) -> None:
        shipyard("users", "disable", "admin")
        engine = engine_for(load_settings().db)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(audit_log.c.actor, audit_log.c.action)).all()
        assert [a for _, a in rows] == ["user.create", "user.disable"]
        assert all(actor.startswith("local:") for actor, _ in rows)


class TestServiceAccountsAndKeys:
    def test_service_account_secret_is_printed_once_with_a_warning(
        self, service: SecurityService
    ) -> None:
        code, out, err = shipyard("service-accounts", "create", "predictor", "--role", "predictor")
        assert code == 0, err
        assert "client_id: predictor" in out
        secret = _secret_line(out, "client_secret")
        assert secret.startswith("shys_")
        assert "only time the client secret is shown" in err
        assert service.login_client("predictor", secret).access_token

        code, out, _ = shipyard("service-accounts", "list")
        assert "predictor predictor active" in out
        assert secret not in out

        code, out, _ = shipyard("service-accounts", "rotate-secret", "predictor")
        assert code == 0
        new_secret = _secret_line(out, "client_secret")
        assert new_secret != secret
        with pytest.raises(AuthError):
            service.login_client("predictor", secret)
        assert service.login_client("predictor", new_secret).access_token

    def test_api_key_lifecycle(self, service: SecurityService) -> None:
        shipyard("service-accounts", "create", "bot", "--role", "viewer")
        code, out, err = shipyard(
            "api-keys",
            "create",
            "--owner",
            "sa:bot",
            "--name",
            "ci",
            "--scope",
            "models:read",
            "--expires-in",
            "30d",
        )
        assert code == 0, err
        key = _secret_line(out, "key")
        assert key.startswith("shy_")
        assert "only time the API key is shown" in err
        principal = service.authenticate_token(key)
        assert (principal.id, principal.scopes) == ("sa:bot", frozenset({"models:read"}))

        key_id = key.split("_")[1]
        code, out, _ = shipyard("api-keys", "list", "--owner", "sa:bot")
        assert f"{key_id} sa:bot ci models:read active" in out
        assert key not in out

        assert shipyard("api-keys", "revoke", key_id)[0] == 0
        assert "revoked" in shipyard("api-keys", "list")[1]
        service.api_keys.invalidate()
        with pytest.raises(AuthError):
            service.authenticate_token(key)

    def test_local_api_key_needs_an_owner(self) -> None:
        code, _, err = shipyard("api-keys", "create", "--name", "x")
        assert code == 2
        assert "--owner" in err

    def test_bad_duration(self) -> None:
        code, _, err = shipyard("api-keys", "create", "--owner", "sa:x", "--expires-in", "soon")
        assert code == 2
        assert "Invalid duration 'soon'" in err

    def test_hs256_has_no_rotation(self) -> None:
        code, _, err = shipyard("keys", "rotate")
        assert code == 78
        assert "HS256 has a single secret" in err

    def test_rotate_rs256_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SHIPYARD_JWT_ALGORITHM", "RS256")
        code, out, err = shipyard("keys", "rotate")
        assert code == 0, err
        assert "Now signing with key" in out


class TestAudit:
    def test_verify_reports_ok_with_count_and_head(self, admin: None) -> None:
        shipyard("users", "disable", "admin")
        code, out, _ = shipyard("audit", "verify")
        assert code == 0
        assert "OK: audit log intact, 2 records, head seq 2 hash " in out

    def test_verify_names_the_tampered_record_and_fails(self, admin: None) -> None:
        shipyard("users", "disable", "admin")
        shipyard("users", "enable", "admin")
        engine = engine_for(load_settings().db)
        with engine.begin() as conn:
            conn.execute(
                audit_log.update().where(audit_log.c.seq == 2).values(actor="user:mallory")
            )
            conn.execute(audit_log.delete().where(audit_log.c.seq == 3))
        code, out, err = shipyard("audit", "verify")
        assert code == 5
        assert "seq 2: modified" in out
        assert "seq 3: deleted" in out
        assert "Audit log tampered: 2 problem(s) in 2 records" in err

    def test_export_jsonl_and_csv(self, admin: None, tmp_path: Path) -> None:
        shipyard("users", "disable", "admin")
        code, out, err = shipyard("audit", "export", "--since", "2020-01-01")
        assert code == 0
        records = [json.loads(line) for line in out.replace("} {", "}\n{").splitlines()]
        assert [r["action"] for r in records] == ["user.create", "user.disable"]
        assert "Exported 2 audit records" in err

        target = tmp_path / "audit.csv"
        code, _, err = shipyard("audit", "export", "--format", "csv", "--out", str(target))
        assert code == 0
        lines = target.read_text().splitlines()
        assert lines[0].startswith("seq,at,actor,action")
        assert len(lines) == 3
        assert f"Exported 2 audit records to {target}" in err

        assert shipyard("audit", "export", "--until", "2020-01-01")[2].startswith(
            "Exported 0 audit records"
        )

    def test_export_rejects_bad_dates_and_formats(self) -> None:
        code, _, err = shipyard("audit", "export", "--since", "last tuesday")
        assert code == 2 and "Invalid --since 'last tuesday'" in err
        code, _, err = shipyard("audit", "export", "--format", "xml")
        assert code == 2 and "Unknown format 'xml'" in err


SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A platform server subprocess with auth on and its first admin."""
    home = tmp_path_factory.mktemp("cli-server")
    env = {
        "SHIPYARD_HOME": str(home),
        "SHIPYARD_AUTH": "on",
        "SHIPYARD_ADMIN_PASSWORD": PASSWORD,
        "SHIPYARD_JWT_SECRET": SECRET,
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        server = ServerProcess(load_settings())
        server.start()
    try:
        yield server.base_url
    finally:
        server.close()


def test_remote_administration_as_admin_then_as_a_service_account(
    server_url: str, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path
) -> None:
    monkeypatch.setenv("SHIPYARD_URL", server_url)
    code, _, err = shipyard("users", "list")
    assert code == 7
    assert "Authentication required" in err and "shipyard login" in err

    code, _, err = shipyard("login", "-u", "admin", input="not the right password\n")
    assert code == 7 and "Invalid user name or password" in err

    code, out, err = shipyard("login", "-u", "admin", input=PASSWORD + "\n")
    assert code == 0, err
    assert f"Logged in to {server_url} as user:admin" in out
    assert "renewed automatically" in out
    assert PASSWORD not in out
    assert stat.S_IMODE((_isolated_home / "credentials.json").stat().st_mode) == 0o600

    code, out, _ = shipyard("whoami")
    assert f"user:admin on {server_url}, site-wide role admin" in out

    ann = f"ann-{uuid.uuid4().hex[:6]}"
    code, out, err = shipyard(
        "users", "create", ann, "--role", "data-scientist", "-w", "default", input=_twice()
    )
    assert code == 0, err
    assert f"(server {server_url})" in out
    assert f"{ann} - default=data-scientist active" in shipyard("users", "list")[1]

    bot = f"predictor-{uuid.uuid4().hex[:6]}"
    code, out, err = shipyard("service-accounts", "create", bot, "--role", "predictor")
    assert code == 0, err
    code, out, err = shipyard("service-accounts", "rotate-secret", bot)
    assert code == 0, err
    secret = _secret_line(out, "client_secret")
    assert f"{bot} predictor active" in shipyard("service-accounts", "list")[1]

    code, out, _ = shipyard("api-keys", "create", "--name", "laptop", "--expires-in", "1d")
    key_id = _secret_line(out, "key").split("_")[1]
    assert f"{key_id} user:admin laptop all active" in shipyard("api-keys", "list")[1]
    assert shipyard("api-keys", "revoke", key_id)[0] == 0
    assert f"{key_id} user:admin laptop all revoked" in shipyard("api-keys", "list")[1]

    code, _, err = shipyard("keys", "rotate")
    assert code == 4 and "HS256 has a single secret" in err

    code, out, _ = shipyard("audit", "verify")
    assert code == 0 and "OK: audit log intact" in out
    code, out, _ = shipyard("audit", "export", "--since", "2020-01-01")
    assert '"action":"user.create"' in out and f'"resource_id":"{ann}"' in out

    # The service account: a short-lived token without refresh, and a narrow role.
    code, out, err = shipyard("login", "--client-id", bot, "--password-stdin", input=secret)
    assert code == 0, err
    assert f"as sa:{bot}" in out and "log in again then" in out
    assert f"sa:{bot} on {server_url}, site-wide role predictor" in shipyard("whoami")[1]
    code, _, err = shipyard("users", "list")
    assert code == 7 and "Permission denied" in err

    # A user with a workspace role only.
    shipyard("login", "-u", ann, "--password-stdin", input=PASSWORD)
    code, out, _ = shipyard("whoami")
    assert "no site-wide role" in out and "workspace default: data-scientist" in out

    code, out, _ = shipyard("logout")
    assert code == 0 and f"Logged out of {server_url}" in out
    assert shipyard("logout")[1] == f"Not logged in to {server_url}."
    assert shipyard("users", "list")[0] == 7


def test_whoami_without_a_server_explains_local_mode() -> None:
    code, out, _ = shipyard("whoami")
    assert code == 0
    assert "SHIPYARD_URL is not set" in out


def test_login_needs_a_server() -> None:
    code, _, err = shipyard("login", "--username", "a", "--password-stdin", input="x\n")
    assert code == 2
    assert "--url" in err
