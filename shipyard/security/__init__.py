"""Security: identities, tokens, API keys, roles and grants, login throttling, audit log.

Concept map:

- :class:`SecurityService` (``service.py``) ties everything together for the servers and
  the CLI: ``login``, ``login_client``, ``refresh``, ``logout``, ``authenticate``,
  ``authorize``, ``jwks``, ``rotate_signing_key`` and audited identity management.
- ``users.py`` users and service accounts; ``members.py`` workspace roles and teams;
  ``grants.py`` per-resource grants; ``rbac.py`` the role/permission table and the pure
  ``authorize`` decision.
- ``keys.py`` signing keys (HS256 secret, RS256/ES256 key pairs, JWKS, rotation);
  ``tokens.py`` access JWTs and rotating refresh tokens; ``apikeys.py`` ``shy_`` keys.
- ``ratelimit.py`` login lockout; ``audit.py`` the hash-chained audit log and
  ``verify_chain``.
"""

from shipyard.security.apikeys import ApiKeyVerifier, create_api_key, revoke_api_key
from shipyard.security.audit import (
    AuditIssue,
    AuditLog,
    AuditRecord,
    VerifyReport,
    export,
    payload_sha256,
    verify_chain,
)
from shipyard.security.entities import (
    ApiKeyInfo,
    Membership,
    Principal,
    ResourceGrant,
    ServiceAccount,
    TokenPair,
    User,
)
from shipyard.security.keys import HmacKeyRing, SqlKeyRing, load_or_create_secret
from shipyard.security.passwords import check_password_policy, hash_password, verify_password
from shipyard.security.ratelimit import LockoutPolicy, LoginLockedError, LoginThrottle
from shipyard.security.rbac import (
    RESOURCE_ACTIONS,
    ROLE_PERMISSIONS,
    ROLES,
    authorize,
    check_permission,
)
from shipyard.security.service import SecurityConfig, SecurityService
from shipyard.security.tokens import AccessTokens, RefreshTokenReusedError, TokenPolicy
from shipyard.security.users import bootstrap_admin

__all__ = [
    "RESOURCE_ACTIONS",
    "ROLES",
    "ROLE_PERMISSIONS",
    "AccessTokens",
    "ApiKeyInfo",
    "ApiKeyVerifier",
    "AuditIssue",
    "AuditLog",
    "AuditRecord",
    "HmacKeyRing",
    "LockoutPolicy",
    "LoginLockedError",
    "LoginThrottle",
    "Membership",
    "Principal",
    "RefreshTokenReusedError",
    "ResourceGrant",
    "SecurityConfig",
    "SecurityService",
    "ServiceAccount",
    "SqlKeyRing",
    "TokenPair",
    "TokenPolicy",
    "User",
    "VerifyReport",
    "authorize",
    "bootstrap_admin",
    "check_password_policy",
    "check_permission",
    "create_api_key",
    "export",
    "hash_password",
    "load_or_create_secret",
    "payload_sha256",
    "revoke_api_key",
    "verify_chain",
    "verify_password",
]
