"""Access tokens (signed JWTs, short-lived) and refresh tokens (opaque, stored hashed,
rotated on every use).

An access token is only trusted when its header names a known ``kid`` *and* uses the one
algorithm registered for that key, so ``alg: none`` and HS/RS key confusion fail before
any signature check. A refresh token is used once: using it returns a new one, and
presenting a used or revoked one again revokes its whole family (the login session), as
OAuth 2.0 Security BCP section 4.14 recommends.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.errors import InvalidTokenError
from shipyard.security._db import sha256_hex
from shipyard.security.entities import Principal, principal_id
from shipyard.security.keys import KeyRing
from shipyard.security.schema import refresh_tokens
from shipyard.store.db import now_ms

REFRESH_TOKEN_PREFIX = "shyr_"
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "iss", "aud", "sub", "jti")

_HINT = "Log in again (`shipyard login`) to get a new token."


class RefreshTokenReusedError(InvalidTokenError):
    """A refresh token was presented after it had been used or revoked: a sign that it was
    stolen. Its whole family has been revoked."""

    code = "refresh_token_reused"


@dataclass(frozen=True)
class TokenPolicy:
    """Token lifetimes and the claims every access token must carry.

    Attributes:
        issuer: ``iss`` of issued tokens; tokens with another ``iss`` are rejected.
        audience: ``aud`` of issued tokens; tokens for another audience are rejected.
        access_ttl: Seconds an access token lives.
        refresh_ttl: Seconds a refresh token lives (each rotation starts a new period).
        leeway: Seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
    """

    issuer: str = "shipyard"
    audience: str = "shipyard"
    access_ttl: int = 900
    refresh_ttl: int = 30 * 24 * 3600
    leeway: int = 10


def _invalid(message: str, hint: str | None = _HINT) -> InvalidTokenError:
    return InvalidTokenError(message, hint=hint)


class AccessTokens:
    """Issues and checks access JWTs with the keys of a :class:`KeyRing`.

    A client sends the same access token on every request until it expires, so tokens
    that passed every check are remembered (at most ``cache_size``): a repeat costs a
    dictionary lookup, a check that its key still verifies (not retired) and a check of
    ``exp``, instead of parsing and verifying the signature again (~70 us).
    """

    def __init__(
        self, keys: KeyRing, policy: TokenPolicy | None = None, *, cache_size: int = 10_000
    ) -> None:
        self.keys = keys
        self.policy = policy or TokenPolicy()
        self._jwt = jwt.PyJWT(options={"require": list(REQUIRED_CLAIMS)})
        self._cache_size = cache_size
        # token -> (claims, kid, alg); only tokens that passed decode() get in.
        self._verified: dict[str, tuple[dict[str, Any], str, str]] = {}

    def issue(
        self, principal: Principal, *, now: float | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Sign an access token for ``principal``; returns the token and its claims.

        Besides the registered claims it carries ``kind``, the site-wide ``role`` and the
        per-workspace ``ws_roles`` for services that trust the token alone; the platform
        server re-reads them from the database (see SecurityService.verify_access_token).
        """
        key = self.keys.signing_key()
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": self.policy.issuer,
            "aud": self.policy.audience,
            "sub": principal.id,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.policy.access_ttl,
            "jti": uuid.uuid4().hex,
            "kind": principal.kind,
            "role": principal.role,
            "ws_roles": {ws: list(r) for ws, r in principal.workspace_roles.items()},
        }
        token = jwt.encode(claims, key.sign_key, algorithm=key.alg, headers={"kid": key.kid})
        return token, claims

    def decode(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``.

        Raises:
            InvalidTokenError: Malformed; ``alg`` none or not the key's algorithm; unknown or
                retired ``kid``; bad signature; expired; not yet valid; wrong ``iss`` or
                ``aud``; a required claim missing.
        """
        hit = self._verified.get(token)
        if hit is not None:
            claims, kid, alg = hit
            key = self.keys.verification_key(kid)
            if key is not None and key.alg == alg:
                if time.time() < float(claims["exp"]) + self.policy.leeway:
                    return claims
                self._verified.pop(token, None)
                raise _invalid("Access token has expired.", hint="Refresh it, or log in again.")
            self._verified.pop(token, None)
        claims, kid, alg = self._decode(token)
        if len(self._verified) >= self._cache_size:
            self._verified.clear()
        self._verified[token] = (claims, kid, alg)
        return claims

    def _decode(self, token: str) -> tuple[dict[str, Any], str, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise _invalid("Access token is malformed.") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise _invalid("Access token is unsigned (alg 'none'); it is never accepted.")
        if not isinstance(kid, str) or not kid:
            raise _invalid("Access token has no key id (kid) in its header.")
        key = self.keys.verification_key(kid)
        if key is None:
            raise _invalid(f"Access token was signed with an unknown or retired key {kid!r}.")
        if alg != key.alg:
            # Key confusion: e.g. HS256 "signed" with an RS256 key's public PEM.
            raise _invalid(
                f"Access token algorithm {alg!r} does not match key {kid!r}, which "
                f"only signs {key.alg}."
            )
        try:
            claims = self._jwt.decode(
                token,
                key.verify_key,
                algorithms=[key.alg],
                audience=self.policy.audience,
                issuer=self.policy.issuer,
                leeway=self.policy.leeway,
            )
        except jwt.ExpiredSignatureError:
            raise _invalid(
                "Access token has expired.", hint="Refresh it, or log in again."
            ) from None
        except jwt.ImmatureSignatureError:
            raise _invalid("Access token is not valid yet (nbf or iat in the future).") from None
        except jwt.InvalidAudienceError:
            raise _invalid(
                f"Access token is not for this service (audience must be '{self.policy.audience}')."
            ) from None
        except jwt.InvalidIssuerError:
            raise _invalid(
                f"Access token was not issued here (issuer must be '{self.policy.issuer}')."
            ) from None
        except jwt.InvalidSignatureError:
            raise _invalid("Access token signature is invalid.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"Access token lacks the '{exc.claim}' claim.") from None
        except jwt.InvalidTokenError as exc:
            raise _invalid(f"Access token is invalid: {exc}.") from None
        return claims, kid, alg


@dataclass(frozen=True)
class RefreshResult:
    """The principal a refresh token belonged to and its successor."""

    principal_type: str
    principal_name: str
    family_id: str
    token: str


class RefreshTokenStore:
    """Opaque refresh tokens kept as sha256 hashes in ``refresh_tokens``."""

    def __init__(self, engine: Engine, ttl: int = 30 * 24 * 3600) -> None:
        self._engine = engine
        self.ttl = ttl

    def issue(self, principal_type: str, principal_name: str, family_id: str | None = None) -> str:
        """A new refresh token, starting a family (a login session) unless one is given."""
        token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = now_ms()
        with self._engine.begin() as conn:
            conn.execute(
                refresh_tokens.insert().values(
                    token_hash=sha256_hex(token),
                    family_id=family_id or uuid.uuid4().hex,
                    principal_type=principal_type,
                    principal_name=principal_name,
                    issued_at=now,
                    expires_at=now + self.ttl * 1000,
                )
            )
        return token

    def rotate(self, token: str) -> RefreshResult:
        """Use ``token`` once: mark it used and return its successor.

        Raises:
            RefreshTokenReusedError: The token was already used or revoked; the family is
                now revoked.
            InvalidTokenError: Unknown or expired token.
        """
        if not isinstance(token, str) or not token.startswith(REFRESH_TOKEN_PREFIX):
            raise _invalid("Refresh token is invalid.")
        token_hash = sha256_hex(token)
        successor = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = now_ms()
        r = refresh_tokens.c
        reused = False
        with self._engine.begin() as conn:
            row = conn.execute(sa.select(refresh_tokens).where(r.token_hash == token_hash)).first()
            if row is None:
                raise _invalid("Refresh token is invalid.")
            # The conditional UPDATE is the arbiter: of two concurrent uses only one matches.
            used = conn.execute(
                refresh_tokens.update()
                .where(r.token_hash == token_hash, r.revoked_at.is_(None))
                .values(revoked_at=now, revoke_reason="rotated")
            ).rowcount
            if used != 1:
                reused = True
                self._revoke_family(conn, row.family_id, "reuse_detected", now)
            elif row.expires_at <= now:
                raise _invalid("Refresh token has expired.")
            else:
                conn.execute(
                    refresh_tokens.insert().values(
                        token_hash=sha256_hex(successor),
                        family_id=row.family_id,
                        principal_type=row.principal_type,
                        principal_name=row.principal_name,
                        issued_at=now,
                        expires_at=now + self.ttl * 1000,
                    )
                )
        if reused:
            owner = principal_id(row.principal_type, row.principal_name)
            why = row.revoke_reason
            if why in ("", "rotated"):
                state = "was already used"
            elif why == "reuse_detected":
                state = "was revoked because a token of its session was reused"
            else:
                state = f"was revoked ({why})"
            raise RefreshTokenReusedError(
                f"Refresh token of {owner} {state}; every token of that session is now revoked.",
                hint=_HINT,
            )
        return RefreshResult(row.principal_type, row.principal_name, row.family_id, successor)

    def owner(self, token: str) -> tuple[str, str] | None:
        """(principal_type, principal_name) of a stored token, whatever its state."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(refresh_tokens.c.principal_type, refresh_tokens.c.principal_name).where(
                    refresh_tokens.c.token_hash == sha256_hex(token)
                )
            ).first()
        return (row[0], row[1]) if row else None

    def revoke(self, token: str, reason: str = "logout") -> bool:
        """Revoke the token's whole family (logout); False if the token is unknown."""
        with self._engine.begin() as conn:
            family = conn.execute(
                sa.select(refresh_tokens.c.family_id).where(
                    refresh_tokens.c.token_hash == sha256_hex(token)
                )
            ).scalar()
            if family is None:
                return False
            self._revoke_family(conn, family, reason, now_ms())
        return True

    def revoke_all(self, principal_type: str, principal_name: str, reason: str) -> int:
        """Revoke every live refresh token of a principal (disable, password change)."""
        r = refresh_tokens.c
        with self._engine.begin() as conn:
            return conn.execute(
                refresh_tokens.update()
                .where(
                    r.principal_type == principal_type,
                    r.principal_name == principal_name,
                    r.revoked_at.is_(None),
                )
                .values(revoked_at=now_ms(), revoke_reason=reason)
            ).rowcount

    @staticmethod
    def _revoke_family(conn: Any, family_id: str, reason: str, now: int) -> None:
        r = refresh_tokens.c
        conn.execute(
            refresh_tokens.update()
            .where(r.family_id == family_id, r.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=reason)
        )
