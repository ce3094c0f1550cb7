"""Where the security commands act: the local metadata DB, or a platform server.

With ``SHIPYARD_URL`` unset, ``shipyard users``, ``service-accounts``, ``api-keys``,
``keys`` and ``audit`` call :class:`~shipyard.security.SecurityService` on the local
database directly (how an operator creates the first admin on the server's host); with it
set, they call the server's REST API as the logged-in user. Both sides return the same
entities, so each command prints one way.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TextIO
from urllib.parse import quote

from shipyard.errors import InvalidArgumentError
from shipyard.security.audit import AuditIssue, VerifyReport
from shipyard.security.entities import (
    SERVICE_ACCOUNT,
    USER,
    ApiKeyInfo,
    Membership,
    ServiceAccount,
    User,
    parse_principal_id,
    principal_id,
)

if TYPE_CHECKING:
    from shipyard._http import HttpSession
    from shipyard.config import Settings
    from shipyard.security import SecurityService


class SecurityAdmin(Protocol):
    """What the security commands need, locally or through a server."""

    where: str

    def create_user(self, name: str, password: str, role: str, workspace: str | None) -> User: ...
    def list_users(self) -> list[tuple[User, list[Membership]]]: ...
    def set_user_disabled(self, name: str, disabled: bool) -> None: ...
    def set_role(self, principal: str, role: str, workspace: str | None) -> None: ...
    def set_password(self, name: str, password: str) -> None: ...
    def unlock(self, name: str) -> None: ...
    def create_service_account(
        self, name: str, role: str, workspace: str | None, description: str
    ) -> tuple[ServiceAccount, str]: ...
    def list_service_accounts(self) -> list[ServiceAccount]: ...
    def rotate_service_account_secret(self, name: str) -> str: ...
    def create_api_key(
        self,
        owner: str | None,
        name: str,
        scopes: Sequence[str] | None,
        expires_in: float | None,
    ) -> tuple[ApiKeyInfo, str]: ...
    def list_api_keys(self, owner: str | None, *, every: bool = False) -> list[ApiKeyInfo]: ...
    def revoke_api_key(self, key_id: str) -> None: ...
    def rotate_signing_key(self) -> str: ...
    def verify_audit(self) -> VerifyReport: ...
    def export_audit(
        self, out: TextIO, since: datetime | None, until: datetime | None, fmt: str
    ) -> int: ...


def local_actor() -> str:
    """The audit actor of commands run on the database directly: the OS user."""
    try:
        return f"local:{getpass.getuser()}"
    except Exception:  # no user name in this environment (some containers)
        return "local:unknown"


@contextmanager
def open_admin(settings: Settings) -> Iterator[SecurityAdmin]:
    """The server's REST API when ``settings.url`` is set, else the local database; the
    server connection is closed afterwards."""
    if settings.is_remote:
        from shipyard._http import HttpSession

        with HttpSession.from_settings(settings) as http:
            yield RemoteSecurityAdmin(http)
        return
    from shipyard.security import SecurityConfig, SecurityService
    from shipyard.store.db import engine_for, mask_url

    config = SecurityConfig.from_settings(settings)
    service = SecurityService(engine_for(settings.db), settings.home, config)
    yield LocalSecurityAdmin(service, where=f"local database {mask_url(settings.db)}")


def _principal(text: str) -> tuple[str, str]:
    """``user:alice`` / ``sa:bot``, or a bare name meaning a user."""
    return parse_principal_id(text) if ":" in text else (USER, text)


class LocalSecurityAdmin:
    """Security administration straight on the metadata DB (no server, no login)."""

    def __init__(self, service: SecurityService, *, where: str = "local database") -> None:
        self.service = service
        self.where = where
        self.actor = local_actor()

    def __repr__(self) -> str:
        return f"LocalSecurityAdmin({self.service!r})"

    def _require_workspace(self, workspace: str | None) -> None:
        if workspace is not None:
            from shipyard.store.workspaces import require_workspace

            require_workspace(self.service.engine, workspace)

    def create_user(self, name: str, password: str, role: str, workspace: str | None) -> User:
        from shipyard.security.rbac import check_role

        check_role(role)
        self._require_workspace(workspace)
        user = self.service.create_user(
            name, password, role=None if workspace else role, actor=self.actor
        )
        if workspace:
            self.service.set_workspace_role(workspace, USER, name, role, actor=self.actor)
        return user

    def list_users(self) -> list[tuple[User, list[Membership]]]:
        from shipyard.security import members, users
        from shipyard.store.workspaces import list_workspaces

        engine = self.service.engine
        memberships: dict[str, list[Membership]] = {}
        for ws in list_workspaces(engine):
            for m in members.list_workspace_members(engine, ws):
                if m.principal_type == USER:
                    memberships.setdefault(m.principal_name, []).append(m)
        return [(u, memberships.get(u.name, [])) for u in users.list_users(engine)]

    def set_user_disabled(self, name: str, disabled: bool) -> None:
        self.service.set_user_disabled(name, disabled, actor=self.actor)

    def set_role(self, principal: str, role: str, workspace: str | None) -> None:
        from shipyard.security import users
        from shipyard.security.rbac import check_role

        kind, name = _principal(principal)
        check_role(role)
        if workspace:
            # Fails on an unknown principal before anything is written.
            get = users.get_user if kind == USER else users.get_service_account
            get(self.service.engine, name)
            self.service.set_workspace_role(workspace, kind, name, role, actor=self.actor)
        elif kind == USER:
            self.service.set_user_role(name, role, actor=self.actor)
        else:
            self.service.set_service_account_role(name, role, actor=self.actor)

    def set_password(self, name: str, password: str) -> None:
        self.service.set_password(name, password, actor=self.actor)

    def unlock(self, name: str) -> None:
        self.service.unlock_login(name, actor=self.actor)

    def create_service_account(
        self, name: str, role: str, workspace: str | None, description: str
    ) -> tuple[ServiceAccount, str]:
        from shipyard.security.rbac import check_role

        check_role(role)
        self._require_workspace(workspace)
        account, secret = self.service.create_service_account(
            name, role=None if workspace else role, description=description, actor=self.actor
        )
        if workspace:
            self.service.set_workspace_role(
                workspace, SERVICE_ACCOUNT, name, role, actor=self.actor
            )
        return account, secret

    def list_service_accounts(self) -> list[ServiceAccount]:
        from shipyard.security import users

        return users.list_service_accounts(self.service.engine)

    def rotate_service_account_secret(self, name: str) -> str:
        return self.service.rotate_service_account_secret(name, actor=self.actor)

    def create_api_key(
        self,
        owner: str | None,
        name: str,
        scopes: Sequence[str] | None,
        expires_in: float | None,
    ) -> tuple[ApiKeyInfo, str]:
        if owner is None:
            raise InvalidArgumentError(
                "Say whose key it is with --owner (on the local database nobody is logged in).",
                hint="For example: shipyard api-keys create --owner sa:ci-bot --name ci",
            )
        kind, owner_name = _principal(owner)
        return self.service.create_api_key(
            kind, owner_name, name=name, scopes=scopes, expires_in=expires_in, actor=self.actor
        )

    def list_api_keys(self, owner: str | None, *, every: bool = False) -> list[ApiKeyInfo]:
        from shipyard.security import apikeys

        kind, name = _principal(owner) if owner else (None, None)
        return apikeys.list_api_keys(self.service.engine, kind, name)

    def revoke_api_key(self, key_id: str) -> None:
        self.service.revoke_api_key(key_id, actor=self.actor)

    def rotate_signing_key(self) -> str:
        return self.service.rotate_signing_key(actor=self.actor)

    def verify_audit(self) -> VerifyReport:
        return self.service.audit.verify()

    def export_audit(
        self, out: TextIO, since: datetime | None, until: datetime | None, fmt: str
    ) -> int:
        return self.service.audit.export(out, since=since, until=until, format=fmt)


def _ms(value: Any) -> int | None:
    """Epoch ms from the API's ISO 8601 times (or epoch ms)."""
    if value is None or isinstance(value, int):
        return value
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)


def _user(d: dict[str, Any]) -> User:
    return User(
        str(d["name"]),
        d.get("role"),
        bool(d.get("disabled", False)),
        _ms(d.get("created_at")) or 0,
        _ms(d.get("updated_at")) or 0,
    )


def _service_account(d: dict[str, Any]) -> ServiceAccount:
    return ServiceAccount(
        str(d["name"]),
        d.get("role"),
        str(d.get("description") or ""),
        bool(d.get("disabled", False)),
        _ms(d.get("created_at")) or 0,
        _ms(d.get("updated_at")) or 0,
    )


def _api_key(d: dict[str, Any]) -> ApiKeyInfo:
    kind, name = parse_principal_id(str(d["principal"]))
    scopes = d.get("scopes")
    return ApiKeyInfo(
        key_id=str(d["key_id"]),
        principal_type=kind,
        principal_name=name,
        name=str(d.get("name") or ""),
        scopes=frozenset(scopes) if scopes is not None else None,
        created_at=_ms(d.get("created_at")) or 0,
        expires_at=_ms(d.get("expires_at")),
        last_used_at=_ms(d.get("last_used_at")),
        revoked_at=_ms(d.get("revoked_at")),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _q(text: str) -> str:
    return quote(text, safe="")


class RemoteSecurityAdmin:
    """Security administration through a platform server's REST API."""

    def __init__(self, http: HttpSession) -> None:
        self.http = http
        self.where = f"server {http.base_url}"

    def __repr__(self) -> str:
        return f"RemoteSecurityAdmin({self.http!r})"

    def _member(self, workspace: str, kind: str, name: str, role: str) -> None:
        principal = _q(principal_id(kind, name))
        self.http.put(f"/workspaces/{_q(workspace)}/members/{principal}", json={"role": role})

    def create_user(self, name: str, password: str, role: str, workspace: str | None) -> User:
        body = {"name": name, "password": password, "role": None if workspace else role}
        user = _user(self.http.post("/users", json=body))
        if workspace:
            self._member(workspace, USER, name, role)
        return user

    def list_users(self) -> list[tuple[User, list[Membership]]]:
        found = [_user(d) for d in self.http.get("/users")["users"]]
        memberships: dict[str, list[Membership]] = {}
        for ws in self.http.get("/workspaces")["workspaces"]:
            members = self.http.get(f"/workspaces/{_q(ws['name'])}/members")["members"]
            for m in members:
                kind, _, name = str(m["principal"]).partition(":")
                if kind == "user":
                    memberships.setdefault(name, []).append(
                        Membership(m["workspace"], USER, name, m["role"])
                    )
        return [(u, memberships.get(u.name, [])) for u in found]

    def set_user_disabled(self, name: str, disabled: bool) -> None:
        self.http.patch(f"/users/{_q(name)}", json={"disabled": disabled})

    def set_role(self, principal: str, role: str, workspace: str | None) -> None:
        kind, name = _principal(principal)
        if workspace:
            self._member(workspace, kind, name, role)
        elif kind == USER:
            self.http.patch(f"/users/{_q(name)}", json={"role": role})
        else:
            self.http.patch(f"/service-accounts/{_q(name)}", json={"role": role})

    def set_password(self, name: str, password: str) -> None:
        self.http.patch(f"/users/{_q(name)}", json={"password": password})

    def unlock(self, name: str) -> None:
        raise InvalidArgumentError(
            "Login lockouts are lifted on the server's host, not through the API.",
            hint="There, with SHIPYARD_URL unset and the server's SHIPYARD_HOME/SHIPYARD_DB, "
            f"run `shipyard users unlock {name}`; or wait for the lock to expire.",
        )

    def create_service_account(
        self, name: str, role: str, workspace: str | None, description: str
    ) -> tuple[ServiceAccount, str]:
        body = {"name": name, "role": None if workspace else role, "description": description}
        answer = self.http.post("/service-accounts", json=body)
        if workspace:
            self._member(workspace, SERVICE_ACCOUNT, name, role)
        return _service_account(answer), str(answer["client_secret"])

    def list_service_accounts(self) -> list[ServiceAccount]:
        accounts = self.http.get("/service-accounts")["service_accounts"]
        return [_service_account(d) for d in accounts]

    def rotate_service_account_secret(self, name: str) -> str:
        answer = self.http.patch(f"/service-accounts/{_q(name)}", json={"rotate_secret": True})
        return str(answer["client_secret"])

    def create_api_key(
        self,
        owner: str | None,
        name: str,
        scopes: Sequence[str] | None,
        expires_in: float | None,
    ) -> tuple[ApiKeyInfo, str]:
        body: dict[str, Any] = {"name": name, "scopes": list(scopes) if scopes else None}
        if expires_in is not None:
            body["expires_in"] = expires_in
        if owner is not None:
            body["principal"] = principal_id(*_principal(owner))
        answer = self.http.post("/api-keys", json=body)
        return _api_key(answer), str(answer["key"])

    def list_api_keys(self, owner: str | None, *, every: bool = False) -> list[ApiKeyInfo]:
        params: dict[str, Any] = {"all": "true"} if every else {}
        if owner:
            params["principal"] = principal_id(*_principal(owner))
        return [_api_key(d) for d in self.http.get("/api-keys", params=params)["api_keys"]]

    def revoke_api_key(self, key_id: str) -> None:
        self.http.delete(f"/api-keys/{_q(key_id)}")

    def rotate_signing_key(self) -> str:
        return str(self.http.post("/auth/keys/rotate", json={})["kid"])

    def verify_audit(self) -> VerifyReport:
        body = self.http.get("/audit/verify")
        return VerifyReport(
            checked=int(body["checked"]),
            issues=tuple(
                AuditIssue(int(i["seq"]), i["kind"], str(i["message"])) for i in body["issues"]
            ),
            head_seq=int(body["head_seq"]),
            head_hash=str(body["head_hash"]),
        )

    def export_audit(
        self, out: TextIO, since: datetime | None, until: datetime | None, fmt: str
    ) -> int:
        params = {"format": fmt, "since": _iso(since), "until": _iso(until)}
        lines = 0
        with self.http.stream(
            "GET", "/audit/export", params={k: v for k, v in params.items() if v}
        ) as response:
            for text in response.iter_text():
                out.write(text)
                lines += text.count("\n")
        return max(lines - 1, 0) if fmt == "csv" else lines  # CSV: minus the header
