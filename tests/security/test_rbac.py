"""Roles, the permission table, authorize(), workspace isolation and per-resource grants."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy.engine import Engine

from shipyard.errors import InvalidArgumentError, PermissionDeniedError
from shipyard.security import SecurityService
from shipyard.security.entities import Principal
from shipyard.security.rbac import (
    GRANT_COVERS,
    RESOURCE_ACTIONS,
    ROLE_PERMISSIONS,
    ROLES,
    authorize,
    check_permission,
    check_role,
    roles_with,
    scope_allows,
)
from shipyard.store.workspaces import ensure_workspace

ALL_PERMISSIONS = [(t, a) for t, actions in RESOURCE_ACTIONS.items() for a in actions]


def member(role: str, workspace: str = "ws-a", **kw: object) -> Principal:
    return Principal("user", f"u-{role}", workspace_roles={workspace: (role,)}, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("role", "perm"), list(itertools.product(ROLES, ALL_PERMISSIONS)))
def test_role_permission_matrix_matches_the_table(role: str, perm: tuple[str, str]) -> None:
    principal = member(role)
    if perm in ROLE_PERMISSIONS[role]:
        authorize(principal, "ws-a", *perm)
    else:
        with pytest.raises(PermissionDeniedError, match=f"lacks permission '{perm[0]}:{perm[1]}'"):
            authorize(principal, "ws-a", *perm)


# The table's intent, stated independently of how ROLE_PERMISSIONS is built.
EXPECTED = {
    ("predictions", "invoke"): {"admin", "maintainer", "data-scientist", "predictor"},
    ("experiments", "read"): {"admin", "maintainer", "data-scientist", "viewer"},
    ("experiments", "write"): {"admin", "maintainer", "data-scientist"},
    ("runs", "delete"): {"admin", "maintainer", "data-scientist"},
    ("models", "read"): {"admin", "maintainer", "data-scientist", "viewer", "predictor"},
    ("models", "write"): {"admin", "maintainer", "data-scientist"},
    ("models", "delete"): {"admin", "maintainer"},
    ("aliases", "write"): {"admin", "maintainer", "data-scientist"},
    ("promotions", "write"): {"admin", "maintainer"},
    ("promotions", "admin"): {"admin", "maintainer"},
    ("pipelines", "run"): {"admin", "maintainer", "data-scientist"},
    ("deployments", "write"): {"admin", "maintainer"},
    ("users", "read"): {"admin", "maintainer"},
    ("users", "write"): {"admin"},
    ("users", "admin"): {"admin"},
    ("audit", "read"): {"admin", "maintainer"},
    ("audit", "admin"): {"admin"},
    ("workspaces", "admin"): {"admin"},
}


@pytest.mark.parametrize(("perm", "roles"), EXPECTED.items())
def test_table_encodes_the_intended_policy(perm: tuple[str, str], roles: set[str]) -> None:
    assert set(roles_with(*perm)) == roles


def test_roles_nest_from_viewer_to_admin() -> None:
    chain = ["viewer", "data-scientist", "maintainer", "admin"]
    for lower, higher in itertools.pairwise(chain):
        assert ROLE_PERMISSIONS[lower] <= ROLE_PERMISSIONS[higher], (lower, higher)
    assert ROLE_PERMISSIONS["predictor"] <= ROLE_PERMISSIONS["maintainer"]
    assert ROLE_PERMISSIONS["admin"] == frozenset(ALL_PERMISSIONS)


def test_every_role_permission_exists() -> None:
    for perms in ROLE_PERMISSIONS.values():
        for perm in perms:
            check_permission(*perm)


def test_unknown_permission_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"Unknown resource type 'modles'.*Did you mean 'models'"):
        authorize(member("admin"), "ws-a", "modles", "read")
    with pytest.raises(ValueError, match=r"Unknown action 'wirte' on models.*Did you mean 'write'"):
        check_permission("models", "wirte")


def test_unknown_role_is_rejected_with_suggestion() -> None:
    with pytest.raises(InvalidArgumentError, match=r"Unknown role 'viewr'.*Did you mean 'viewer'"):
        check_role("viewr")


def test_denial_names_the_missing_permission_and_who_has_it() -> None:
    with pytest.raises(PermissionDeniedError) as info:
        authorize(member("viewer"), "ws-a", "models", "delete", "fraud")
    err = info.value
    assert err.http_status == 403
    assert err.message == (
        "user:u-viewer may not delete models 'fraud' in workspace 'ws-a': "
        "role 'viewer' lacks permission 'models:delete'."
    )
    assert err.hint is not None and "(admin, maintainer)" in err.hint


class TestWorkspaceIsolation:
    def test_member_of_one_workspace_cannot_touch_another(self) -> None:
        principal = member("maintainer", "ws-a")
        authorize(principal, "ws-a", "models", "write")
        for perm in ALL_PERMISSIONS:
            with pytest.raises(PermissionDeniedError, match="is not a member of workspace 'ws-b'"):
                authorize(principal, "ws-b", *perm)

    def test_roles_differ_per_workspace(self) -> None:
        principal = Principal(
            "user", "dana", workspace_roles={"ws-a": ("maintainer",), "ws-b": ("viewer",)}
        )
        authorize(principal, "ws-a", "models", "delete")
        authorize(principal, "ws-b", "models", "read")
        with pytest.raises(PermissionDeniedError, match="role 'viewer' lacks"):
            authorize(principal, "ws-b", "models", "delete")

    def test_site_wide_role_applies_everywhere(self) -> None:
        admin = Principal("user", "root", role="admin")
        authorize(admin, "any-workspace", "users", "admin")

    def test_roles_combine(self) -> None:
        principal = Principal("user", "x", role="predictor", workspace_roles={"ws-a": ("viewer",)})
        authorize(principal, "ws-a", "experiments", "read")  # from viewer
        authorize(principal, "ws-a", "predictions", "invoke")  # from predictor
        with pytest.raises(PermissionDeniedError, match=r"roles \['predictor', 'viewer'\] lack"):
            authorize(principal, "ws-a", "models", "write")


class TestScopes:
    @pytest.mark.parametrize(
        ("scopes", "perm", "allowed"),
        [
            ({"models:read"}, ("models", "read"), True),
            ({"models:read"}, ("models", "write"), False),
            ({"models:*"}, ("models", "delete"), True),
            ({"*:read"}, ("runs", "read"), True),
            ({"*:read"}, ("runs", "write"), False),
            ({"*"}, ("users", "admin"), True),
            (set(), ("models", "read"), False),
        ],
    )
    def test_scope_patterns(self, scopes: set[str], perm: tuple[str, str], allowed: bool) -> None:
        assert scope_allows(scopes, *perm) is allowed

    def test_scopes_narrow_but_never_widen_the_owner(self) -> None:
        key = member("viewer", scopes=frozenset({"models:*"}))
        authorize(key, "ws-a", "models", "read")
        with pytest.raises(PermissionDeniedError, match="lacks permission 'models:write'"):
            authorize(key, "ws-a", "models", "write")
        with pytest.raises(PermissionDeniedError, match="scopes \\(models:\\*\\) do not include"):
            authorize(key, "ws-a", "experiments", "read")


class TestGrants:
    """Per-resource grants, stored in the DB, looked up by SecurityService.authorize."""

    @pytest.fixture
    def ws(self, engine: Engine) -> str:
        ensure_workspace(engine, "ws-grants")
        return "ws-grants"

    def _user(self, service: SecurityService, name: str) -> Principal:
        service.create_user(name, "violet tractor moonlight")
        state = service.directory.get("user", name)
        assert state is not None
        return state.principal(auth="test")

    def test_grant_on_a_model_covers_its_aliases_only_for_that_model(
        self, service: SecurityService, ws: str
    ) -> None:
        carol = self._user(service, "carol")
        service.grant(ws, "models", "fraud", "user", "carol", "maintainer")
        service.authorize(carol, ws, "models", "write", resource_name="fraud")
        service.authorize(carol, ws, "aliases", "write", resource_name="fraud")
        service.authorize(carol, ws, "predictions", "invoke", resource_name="fraud")
        with pytest.raises(PermissionDeniedError, match="not a member of workspace"):
            service.authorize(carol, ws, "models", "write", resource_name="churn")
        with pytest.raises(PermissionDeniedError, match="not a member of workspace"):
            service.authorize(carol, ws, "models", "write")  # no resource named
        with pytest.raises(PermissionDeniedError):
            service.authorize(carol, ws, "experiments", "read", resource_name="fraud")

    def test_grant_to_a_team_reaches_its_members(self, service: SecurityService, ws: str) -> None:
        self._user(service, "erin")
        service.add_team_member("risk-team", "user", "erin")
        service.grant(ws, "experiments", "credit", "team", "risk-team", "data-scientist")
        erin = service.directory.get("user", "erin")
        assert erin is not None and erin.teams == frozenset({"risk-team"})
        principal = erin.principal(auth="test")
        service.authorize(principal, ws, "runs", "write", resource_name="credit")
        with pytest.raises(PermissionDeniedError, match="role 'data-scientist' lacks"):
            service.authorize(principal, ws, "experiments", "admin", resource_name="credit")

    def test_revoked_grant_stops_working(self, service: SecurityService, ws: str) -> None:
        frank = self._user(service, "frank")
        service.grant(ws, "models", "fraud", "user", "frank", "viewer")
        service.authorize(frank, ws, "models", "read", resource_name="fraud")
        service.revoke_grant(ws, "models", "fraud", "user", "frank")
        with pytest.raises(PermissionDeniedError):
            service.authorize(frank, ws, "models", "read", resource_name="fraud")

    def test_grant_in_one_workspace_does_not_leak_into_another(
        self, service: SecurityService, ws: str, engine: Engine
    ) -> None:
        ensure_workspace(engine, "ws-other")
        gina = self._user(service, "gina")
        service.grant(ws, "models", "fraud", "user", "gina", "maintainer")
        with pytest.raises(PermissionDeniedError, match="not a member of workspace 'ws-other'"):
            service.authorize(gina, "ws-other", "models", "read", resource_name="fraud")

    def test_injection_in_resource_names_is_literal(
        self, service: SecurityService, ws: str
    ) -> None:
        hank = self._user(service, "hank")
        evil = "x' OR '1'='1"
        service.grant(ws, "models", evil, "user", "hank", "maintainer")
        service.authorize(hank, ws, "models", "write", resource_name=evil)
        with pytest.raises(PermissionDeniedError):
            service.authorize(hank, ws, "models", "write", resource_name="x")

    def test_only_grantable_types_can_be_granted(self, service: SecurityService, ws: str) -> None:
        with pytest.raises(InvalidArgumentError, match="'users' cannot be granted"):
            service.grant(ws, "users", "bob", "user", "admin", "admin")
        assert "models" in GRANT_COVERS

    def test_workspace_membership_via_team(self, service: SecurityService, ws: str) -> None:
        self._user(service, "ivan")
        service.add_team_member("analysts", "user", "ivan")
        service.set_workspace_role(ws, "team", "analysts", "viewer")
        ivan = service.directory.get("user", "ivan")
        assert ivan is not None
        service.authorize(ivan.principal(auth="test"), ws, "runs", "read")
