"""SecurityService: one object that authenticates, authorizes and audits, for the platform
server, the model server and the CLI to share.

It ties the pieces together: identities (:mod:`~shipyard.security.users`), memberships and
grants, signing keys, access and refresh tokens, API keys, the login throttle and the audit
log. Every method is plain Python (no FastAPI); the server wraps :meth:`authenticate` and
:meth:`authorize` in its route dependency.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import argon2
from sqlalchemy.engine import Engine

from shipyard.errors import AuthError, ConfigError, InvalidTokenError, NotFoundError
from shipyard.security import apikeys, grants, members, users
from shipyard.security.apikeys import API_KEY_PREFIX, ApiKeyVerifier
from shipyard.security.audit import AuditLog
from shipyard.security.directory import PrincipalDirectory, PrincipalState
from shipyard.security.entities import (
    PRINCIPAL_KINDS,
    SERVICE_ACCOUNT,
    USER,
    ApiKeyInfo,
    Membership,
    Principal,
    ResourceGrant,
    ServiceAccount,
    TokenPair,
    User,
    parse_principal_id,
    principal_id,
)
from shipyard.security.grants import SqlGrantLookup
from shipyard.security.keys import (
    HmacKeyRing,
    KeyRing,
    SqlKeyRing,
    check_algorithm,
    check_secret,
    load_or_create_secret,
)
from shipyard.security.ratelimit import LockoutPolicy, LoginLockedError, LoginThrottle
from shipyard.security.rbac import authorize
from shipyard.security.tokens import (
    AccessTokens,
    RefreshTokenReusedError,
    RefreshTokenStore,
    TokenPolicy,
)

if TYPE_CHECKING:
    from shipyard.config import Settings

_LOGIN_HINT = "Check the user name and password; repeated failures lock the account for a while."
_AUTH_HINT = "Log in with `shipyard login`, then send 'Authorization: Bearer <token>'."


@dataclass(frozen=True)
class SecurityConfig:
    """Knobs of :class:`SecurityService` (built from Settings by :meth:`from_settings`).

    Attributes:
        algorithm: ``HS256`` (default), ``RS256`` or ``ES256``.
        jwt_secret: HS256 secret, and the source of the key that encrypts RS/ES private
            keys; None reads or creates ``home/jwt-secret`` (mode 0600).
        token_policy: Issuer, audience, lifetimes and clock leeway.
        key_grace: Seconds a rotated-out RS/ES key keeps verifying; None = access token
            lifetime plus leeway, so every token it signed expires first.
        cache_ttl: Seconds principal state, grants and API keys are cached per process
            (how long another worker's disable or revocation may take to be seen here).
        lockout: Login throttling policy.
        audit_emit: Also emit audit records as JSON lines on the ``shipyard.audit`` logger.
    """

    algorithm: str = "HS256"
    jwt_secret: str | None = field(default=None, repr=False)
    token_policy: TokenPolicy = field(default_factory=TokenPolicy)
    key_grace: float | None = None
    cache_ttl: float = 5.0
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    audit_emit: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> SecurityConfig:
        """The configuration ``SHIPYARD_*`` settings describe; the server and the CLI
        share it so they sign and verify alike."""
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        return cls(
            algorithm=settings.jwt_algorithm,
            jwt_secret=secret,
            token_policy=TokenPolicy(
                access_ttl=settings.access_token_ttl, refresh_ttl=settings.refresh_token_ttl
            ),
        )


def _actor(actor: Principal | str) -> str:
    return actor.id if isinstance(actor, Principal) else actor


class SecurityService:
    """Authentication, authorization and audit over the metadata DB.

    Example::

        security = SecurityService(engine_for(settings.db), settings.home)
        security.bootstrap_admin(os.environ.get("SHIPYARD_ADMIN_PASSWORD"))
        pair = security.login("admin", password, client_ip="10.0.0.7")
        principal = security.authenticate(f"Bearer {pair.access_token}")
        security.authorize(principal, "default", "models", "write", resource_name="fraud")

    Args:
        engine: The metadata DB (migrated to include the security tables).
        home: ``SHIPYARD_HOME``; holds ``jwt-secret`` when none is configured.
        config: Token, key, cache and lockout settings.
        hasher: The argon2 hasher (tests pass a cheap one).
    """

    def __init__(
        self,
        engine: Engine,
        home: Path,
        config: SecurityConfig | None = None,
        *,
        hasher: argon2.PasswordHasher | None = None,
    ) -> None:
        self.engine = engine
        self.config = config or SecurityConfig()
        self.hasher = hasher
        policy = self.config.token_policy
        alg = check_algorithm(self.config.algorithm)
        secret = (
            check_secret(self.config.jwt_secret)
            if self.config.jwt_secret
            else load_or_create_secret(Path(home))
        )
        grace = self.config.key_grace
        if grace is None:
            grace = float(policy.access_ttl + policy.leeway)
        self.keys: KeyRing = (
            HmacKeyRing(secret) if alg == "HS256" else SqlKeyRing(engine, alg, secret, grace=grace)
        )
        self.tokens = AccessTokens(self.keys, policy)
        self.refresh_tokens = RefreshTokenStore(engine, policy.refresh_ttl)
        self.api_keys = ApiKeyVerifier(engine, self.config.cache_ttl)
        self.directory = PrincipalDirectory(engine, self.config.cache_ttl)
        self.grants = SqlGrantLookup(engine, self.config.cache_ttl)
        self.throttle = LoginThrottle(engine, self.config.lockout)
        self.audit = AuditLog(engine, emit=self.config.audit_emit)

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"SecurityService({url!r}, {self.config.algorithm})"

    # -- authentication -----------------------------------------------------------------

    def login(self, username: str, password: str, *, client_ip: str | None = None) -> TokenPair:
        """The OAuth2 password flow: check the password, return access + refresh tokens.

        Raises:
            LoginLockedError: Too many recent failures for the name or the address (429).
            AuthError: Wrong name or password (one message for both), or a disabled user.
        """
        name = str(username)[:200]
        try:
            self.throttle.check(name, client_ip)
        except LoginLockedError:
            self.audit.log_login(name, False, client_ip=client_ip, reason="locked")
            raise
        user = users.check_user_password(self.engine, name, password, hasher=self.hasher)
        if user is None:
            locked = self.throttle.record_failure(name, client_ip)
            reason = "bad_credentials" + (", now_locked" if locked else "")
            self.audit.log_login(name, False, client_ip=client_ip, reason=reason)
            raise AuthError("Invalid user name or password.", hint=_LOGIN_HINT)
        if user.disabled:
            self.audit.log_login(name, False, client_ip=client_ip, reason="disabled")
            raise AuthError(f"User '{name}' is disabled.", hint="Ask an admin to enable it.")
        self.throttle.record_success(name, client_ip)
        pair = self._issue(USER, user.name, refresh=True)
        self.audit.log_login(name, True, client_ip=client_ip)
        return pair

    def login_client(
        self, client_id: str, client_secret: str, *, client_ip: str | None = None
    ) -> TokenPair:
        """The OAuth2 client-credentials flow for service accounts: an access token only."""
        name = str(client_id)[:200]
        try:
            self.throttle.check(name, client_ip)
        except LoginLockedError:
            self.audit.log_login(
                name, False, method="client_credentials", client_ip=client_ip, reason="locked"
            )
            raise
        account = users.check_service_account_secret(self.engine, name, client_secret)
        if account is None:
            self.throttle.record_failure(name, client_ip)
            self.audit.log_login(
                name,
                False,
                method="client_credentials",
                client_ip=client_ip,
                reason="bad_credentials",
            )
            raise AuthError("Invalid client id or secret.", hint=_LOGIN_HINT)
        if account.disabled:
            self.audit.log_login(
                name, False, method="client_credentials", client_ip=client_ip, reason="disabled"
            )
            raise AuthError(f"Service account '{name}' is disabled.", hint="Ask an admin.")
        self.throttle.record_success(name, client_ip)
        pair = self._issue(SERVICE_ACCOUNT, account.name, refresh=False)
        self.audit.log_login(name, True, method="client_credentials", client_ip=client_ip)
        return pair

    def refresh(self, refresh_token: str) -> TokenPair:
        """Trade a refresh token for a new access token and a new refresh token.

        Raises:
            RefreshTokenReusedError: It was used or revoked before; the session is revoked.
            InvalidTokenError: Unknown or expired, or the principal is disabled.
        """
        try:
            result = self.refresh_tokens.rotate(refresh_token)
        except RefreshTokenReusedError:
            owner = self.refresh_tokens.owner(refresh_token)
            actor = principal_id(*owner) if owner else "anonymous"
            self.audit.append(actor, "token.refresh_reused", resource_type="tokens")
            raise
        state = self._fresh_state(result.principal_type, result.principal_name)
        if state is None or state.disabled:
            self.refresh_tokens.revoke(result.token, "disabled")
            raise InvalidTokenError(
                f"{principal_id(result.principal_type, result.principal_name)} is disabled.",
                hint="Ask an admin to enable it.",
            )
        token, _ = self.tokens.issue(state.principal(auth="refresh"))
        actor = principal_id(result.principal_type, result.principal_name)
        self.audit.append(
            actor, "token.refresh", resource_type="tokens", details={"family": result.family_id}
        )
        return TokenPair(token, self.tokens.policy.access_ttl, result.token)

    def logout(self, refresh_token: str) -> None:
        """Revoke the refresh token's session (its whole family); unknown tokens are ignored."""
        owner = self.refresh_tokens.owner(refresh_token)
        if self.refresh_tokens.revoke(refresh_token, "logout") and owner:
            self.audit.append(principal_id(*owner), "token.revoke", resource_type="tokens")

    def _fresh_state(self, kind: str, name: str) -> PrincipalState | None:
        self.directory.invalidate(kind, name)
        return self.directory.get(kind, name)

    def _issue(self, kind: str, name: str, *, refresh: bool) -> TokenPair:
        state = self._fresh_state(kind, name)
        if state is None:
            raise NotFoundError(f"{principal_id(kind, name)} does not exist.")
        token, _ = self.tokens.issue(state.principal(auth="password"))
        refresh_token = self.refresh_tokens.issue(kind, name) if refresh else None
        return TokenPair(token, self.tokens.policy.access_ttl, refresh_token)

    def verify_access_token(self, token: str) -> Principal:
        """The principal an access JWT stands for, with its current roles.

        Raises:
            InvalidTokenError: The token fails any check of :meth:`AccessTokens.decode`,
                or its principal no longer exists, is disabled, or revoked its tokens
                (password change, re-enable) after the token was issued.
        """
        claims = self.tokens.decode(token)
        try:
            kind, name = parse_principal_id(str(claims["sub"]))
        except Exception:
            raise InvalidTokenError(
                "Access token has an invalid subject.", hint=_AUTH_HINT
            ) from None
        state = self.directory.get(kind, name)
        if state is None:
            raise InvalidTokenError(f"{claims['sub']} no longer exists.", hint=_AUTH_HINT)
        if state.disabled:
            raise InvalidTokenError(
                f"{claims['sub']} is disabled.", hint="Ask an admin to enable it."
            )
        if int(claims["iat"]) < state.tokens_valid_after:
            raise InvalidTokenError(
                "Access token was revoked (password change or account re-enabled).", hint=_AUTH_HINT
            )
        return state.principal(auth="jwt", token_id=str(claims["jti"]))

    def verify_api_key(self, key: str) -> Principal:
        """The principal an API key acts as, narrowed to the key's scopes."""
        info = self.api_keys.verify(key)
        state = self.directory.get(info.principal_type, info.principal_name)
        owner = principal_id(info.principal_type, info.principal_name)
        if state is None or state.disabled:
            raise InvalidTokenError(
                f"API key owner {owner} is disabled or gone.", hint="Ask an admin."
            )
        return state.principal(auth="api_key", token_id=info.key_id, scopes=info.scopes)

    def authenticate_token(self, token: str) -> Principal:
        """A bearer credential: an API key (``shy_...``) or an access JWT."""
        if token.startswith(API_KEY_PREFIX):
            return self.verify_api_key(token)
        return self.verify_access_token(token)

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization`` header value (``Bearer <jwt|api key>``).

        Raises:
            AuthError: No or non-bearer credentials (401).
            InvalidTokenError: The credential is not valid (401).
        """
        if not authorization:
            raise AuthError("Authentication required.", hint=_AUTH_HINT)
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Only 'Authorization: Bearer <token>' is accepted.", hint=_AUTH_HINT)
        return self.authenticate_token(token.strip())

    # -- authorization ------------------------------------------------------------------

    def authorize(
        self,
        principal: Principal,
        workspace: str,
        resource_type: str,
        action: str,
        resource_name: str | None = None,
    ) -> None:
        """Allow or raise PermissionDeniedError; see :func:`shipyard.security.rbac.authorize`."""
        authorize(principal, workspace, resource_type, action, resource_name, grants=self.grants)

    def can(
        self,
        principal: Principal,
        workspace: str,
        resource_type: str,
        action: str,
        resource_name: str | None = None,
    ) -> bool:
        """True when :meth:`authorize` would allow."""
        try:
            self.authorize(principal, workspace, resource_type, action, resource_name)
        except AuthError:
            return False
        return True

    # -- keys ---------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        """The JWKS document to serve at ``/.well-known/jwks.json`` (empty for HS256)."""
        return self.keys.jwks()

    def rotate_signing_key(
        self, *, actor: Principal | str = "system", grace: float | None = None
    ) -> str:
        """Start signing with a new RS/ES key; returns its ``kid``."""
        if not isinstance(self.keys, SqlKeyRing):
            raise ConfigError(
                "HS256 has a single secret and no key rotation.",
                hint="Change SHIPYARD_JWT_SECRET (clients refresh transparently), or use "
                "RS256/ES256.",
            )
        kid = self.keys.rotate(grace)
        self.audit.append(
            _actor(actor), "signing_key.rotate", resource_type="keys", resource_id=kid
        )
        return kid

    # -- identities (audited) ------------------------------------------------------------

    def bootstrap_admin(self, password: str | None, username: str | None = None) -> User | None:
        """Create the first admin from SHIPYARD_ADMIN_PASSWORD / SHIPYARD_ADMIN_USER values;
        see :func:`shipyard.security.users.bootstrap_admin`."""
        user = users.bootstrap_admin(self.engine, password, username, hasher=self.hasher)
        if user is not None:
            self.audit.append(
                "system",
                "user.create",
                resource_type="users",
                resource_id=user.name,
                details={"role": user.role, "bootstrap": True},
            )
        return user

    def create_user(
        self,
        name: str,
        password: str,
        *,
        role: str | None = None,
        actor: Principal | str = "system",
    ) -> User:
        user = users.create_user(self.engine, name, password, role=role, hasher=self.hasher)
        self.audit.append(
            _actor(actor),
            "user.create",
            resource_type="users",
            resource_id=name,
            details={"role": role},
        )
        return user

    def set_user_disabled(
        self, name: str, disabled: bool, *, actor: Principal | str = "system"
    ) -> None:
        """Disable or enable a user; either way its tokens so far stop working and its
        refresh tokens are revoked."""
        users.set_user_disabled(self.engine, name, disabled)
        self.refresh_tokens.revoke_all(USER, name, "disabled" if disabled else "enabled")
        self.directory.invalidate(USER, name)
        action = "user.disable" if disabled else "user.enable"
        self.audit.append(_actor(actor), action, resource_type="users", resource_id=name)

    def set_user_role(
        self, name: str, role: str | None, *, actor: Principal | str = "system"
    ) -> None:
        before = users.get_user(self.engine, name).role
        users.set_user_role(self.engine, name, role)
        self.directory.invalidate(USER, name)
        self.audit.append(
            _actor(actor),
            "user.set_role",
            resource_type="users",
            resource_id=name,
            details={"before": before, "after": role},
        )

    def set_password(self, name: str, password: str, *, actor: Principal | str = "system") -> None:
        users.set_password(self.engine, name, password, hasher=self.hasher)
        self.refresh_tokens.revoke_all(USER, name, "password_change")
        self.directory.invalidate(USER, name)
        self.audit.append(
            _actor(actor), "user.set_password", resource_type="users", resource_id=name
        )

    def create_service_account(
        self,
        name: str,
        *,
        role: str | None = None,
        description: str = "",
        actor: Principal | str = "system",
    ) -> tuple[ServiceAccount, str]:
        """Returns the account and its client secret (shown once)."""
        account, secret = users.create_service_account(
            self.engine, name, role=role, description=description
        )
        self.audit.append(
            _actor(actor),
            "service_account.create",
            resource_type="users",
            resource_id=f"sa:{name}",
            details={"role": role},
        )
        return account, secret

    def set_service_account_disabled(
        self, name: str, disabled: bool, *, actor: Principal | str = "system"
    ) -> None:
        users.set_service_account_disabled(self.engine, name, disabled)
        self.directory.invalidate(SERVICE_ACCOUNT, name)
        action = "service_account.disable" if disabled else "service_account.enable"
        self.audit.append(_actor(actor), action, resource_type="users", resource_id=f"sa:{name}")

    def set_service_account_role(
        self, name: str, role: str | None, *, actor: Principal | str = "system"
    ) -> None:
        before = users.get_service_account(self.engine, name).role
        users.set_service_account_role(self.engine, name, role)
        self.directory.invalidate(SERVICE_ACCOUNT, name)
        self.audit.append(
            _actor(actor),
            "service_account.set_role",
            resource_type="users",
            resource_id=f"sa:{name}",
            details={"before": before, "after": role},
        )

    def rotate_service_account_secret(self, name: str, *, actor: Principal | str = "system") -> str:
        """A new client secret (shown once); the old one and its tokens stop working."""
        secret = users.rotate_service_account_secret(self.engine, name)
        self.directory.invalidate(SERVICE_ACCOUNT, name)
        self.audit.append(
            _actor(actor),
            "service_account.rotate_secret",
            resource_type="users",
            resource_id=f"sa:{name}",
        )
        return secret

    def set_workspace_role(
        self,
        workspace: str,
        principal_type: str,
        principal_name: str,
        role: str,
        *,
        actor: Principal | str = "system",
    ) -> Membership:
        membership = members.set_workspace_role(
            self.engine, workspace, principal_type, principal_name, role
        )
        self.directory.invalidate()
        self.audit.append(
            _actor(actor),
            "workspace.member.set",
            resource_type="workspaces",
            resource_id=workspace,
            workspace=workspace,
            details={
                "principal_type": principal_type,
                "principal_name": principal_name,
                "role": role,
            },
        )
        return membership

    def remove_workspace_member(
        self,
        workspace: str,
        principal_type: str,
        principal_name: str,
        *,
        actor: Principal | str = "system",
    ) -> None:
        members.remove_workspace_member(self.engine, workspace, principal_type, principal_name)
        self.directory.invalidate()
        self.audit.append(
            _actor(actor),
            "workspace.member.remove",
            resource_type="workspaces",
            resource_id=workspace,
            workspace=workspace,
            details={"principal_type": principal_type, "principal_name": principal_name},
        )

    def add_team_member(
        self,
        team: str,
        principal_type: str,
        principal_name: str,
        *,
        actor: Principal | str = "system",
    ) -> None:
        members.add_team_member(self.engine, team, principal_type, principal_name)
        self.directory.invalidate()
        self.grants.invalidate()
        self.audit.append(
            _actor(actor),
            "team.member.add",
            resource_type="users",
            resource_id=team,
            details={"principal_type": principal_type, "principal_name": principal_name},
        )

    def grant(
        self,
        workspace: str,
        resource_type: str,
        resource_name: str,
        principal_type: str,
        principal_name: str,
        role: str,
        *,
        actor: Principal | str = "system",
    ) -> ResourceGrant:
        """Give a principal or team ``role`` on one resource."""
        result = grants.grant_role(
            self.engine,
            workspace,
            resource_type,
            resource_name,
            principal_type,
            principal_name,
            role,
        )
        self.grants.invalidate()
        self.audit.append(
            _actor(actor),
            "grant.set",
            resource_type=resource_type,
            resource_id=resource_name,
            workspace=workspace,
            details={
                "principal_type": principal_type,
                "principal_name": principal_name,
                "role": role,
            },
        )
        return result

    def revoke_grant(
        self,
        workspace: str,
        resource_type: str,
        resource_name: str,
        principal_type: str,
        principal_name: str,
        *,
        actor: Principal | str = "system",
    ) -> None:
        grants.revoke_grant(
            self.engine, workspace, resource_type, resource_name, principal_type, principal_name
        )
        self.grants.invalidate()
        self.audit.append(
            _actor(actor),
            "grant.revoke",
            resource_type=resource_type,
            resource_id=resource_name,
            workspace=workspace,
            details={"principal_type": principal_type, "principal_name": principal_name},
        )

    def create_api_key(
        self,
        principal_type: str,
        principal_name: str,
        *,
        name: str = "",
        scopes: Iterable[str] | None = None,
        expires_in: float | None = None,
        actor: Principal | str = "system",
    ) -> tuple[ApiKeyInfo, str]:
        """Returns the key's info and the key itself (shown once)."""
        members.check_member_type(principal_type, PRINCIPAL_KINDS)
        if self.directory.get(principal_type, principal_name) is None:
            raise NotFoundError(f"{principal_id(principal_type, principal_name)} does not exist.")
        info, key = apikeys.create_api_key(
            self.engine,
            principal_type,
            principal_name,
            name=name,
            scopes=scopes,
            expires_in=expires_in,
        )
        self.audit.append(
            _actor(actor),
            "api_key.create",
            resource_type="api_keys",
            resource_id=info.key_id,
            details={
                "owner": principal_id(principal_type, principal_name),
                "name": name,
                "scopes": sorted(info.scopes) if info.scopes is not None else None,
                "expires_at": info.expires_at,
            },
        )
        return info, key

    def revoke_api_key(self, key_id: str, *, actor: Principal | str = "system") -> None:
        apikeys.revoke_api_key(self.engine, key_id)
        self.api_keys.invalidate(key_id)
        self.audit.append(
            _actor(actor), "api_key.revoke", resource_type="api_keys", resource_id=key_id
        )

    def unlock_login(
        self,
        username: str | None = None,
        client_ip: str | None = None,
        *,
        actor: Principal | str = "system",
    ) -> None:
        self.throttle.unlock(username, client_ip)
        self.audit.append(
            _actor(actor),
            "login.unlock",
            resource_type="users",
            resource_id=username or "",
            details={"client_ip": client_ip},
        )
