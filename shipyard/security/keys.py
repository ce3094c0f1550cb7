"""JWT signing keys: an HS256 secret, or RS256/ES256 key pairs with ``kid``, a JWKS
document and rotation.

**Where the keys live.** The HS256 secret comes from configuration, or is generated on
first start into ``SHIPYARD_HOME/jwt-secret`` (mode 0600). RS256/ES256 key pairs live in
the ``signing_keys`` table so that every worker and every host sharing the metadata DB
signs and verifies with the same keys and sees rotations; the private key is stored as
an encrypted PKCS#8 PEM whose passphrase is derived (HMAC-SHA256) from that same secret.
A copy of the database alone therefore cannot mint tokens; the secret must be shared by
all servers (configure it explicitly when they do not share ``SHIPYARD_HOME``).

**Rotation.** :meth:`SqlKeyRing.rotate` creates a new key that signs from now on; the old
key stops signing at once but keeps verifying for ``grace`` seconds (at least the access
token lifetime), after which it is retired. :meth:`SqlKeyRing.retire` ends a compromised
key immediately.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy.engine import Engine

from shipyard.errors import ConfigError, NotFoundError, did_you_mean
from shipyard.security._db import serialize
from shipyard.security.schema import signing_keys
from shipyard.store.db import now_ms

SUPPORTED_ALGORITHMS = ("HS256", "RS256", "ES256")
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")
SECRET_FILE = "jwt-secret"
MIN_SECRET_BYTES = 32


@dataclass(frozen=True)
class SigningKey:
    """One key of a key ring.

    Attributes:
        kid: Key id, sent in the JWT header.
        alg: The only algorithm tokens with this ``kid`` may use.
        sign_key: HMAC secret bytes or private key object; None for verify-only keys.
        verify_key: HMAC secret bytes or public key object.
        signing_until: Epoch ms after which it no longer signs; None while current.
        verify_until: Epoch ms after which tokens it signed are rejected; None = no end.
    """

    kid: str
    alg: str
    sign_key: Any
    verify_key: Any
    created_at: int = 0
    signing_until: int | None = None
    verify_until: int | None = None

    def verifies_at(self, ms: int) -> bool:
        return self.verify_until is None or ms < self.verify_until


class KeyRing(Protocol):
    """Where tokens find their keys: one key signs, any unretired key verifies."""

    def signing_key(self) -> SigningKey: ...

    def verification_key(self, kid: str) -> SigningKey | None: ...

    def jwks(self) -> dict[str, Any]: ...


def check_algorithm(alg: str) -> str:
    if alg not in SUPPORTED_ALGORITHMS:
        raise ConfigError(
            f"Unsupported JWT algorithm {alg!r}. Supported: {', '.join(SUPPORTED_ALGORITHMS)}."
            f"{did_you_mean(alg, SUPPORTED_ALGORITHMS)}"
        )
    return alg


def load_or_create_secret(home: Path) -> str:
    """The JWT secret in ``home/jwt-secret``, created (mode 0600) on first use.

    Raises:
        ConfigError: The file is readable by group or others, or too short.
    """
    path = home / SECRET_FILE
    home.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two workers starting together never both write a secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} is readable by other users (mode {stat.S_IMODE(mode):o}).",
            hint=f"Run `chmod 600 {path}`.",
        )
    for _ in range(50):  # another process may be between creating and writing the file
        secret = path.read_text().strip()
        if secret:
            break
        time.sleep(0.01)
    check_secret(secret, str(path))
    return secret


def check_secret(secret: str, source: str = "SHIPYARD_JWT_SECRET") -> str:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"The JWT secret from {source} is too short: at least {MIN_SECRET_BYTES} bytes "
            "are needed for HS256.",
            hint="Generate one with "
            '`python -c "import secrets; print(secrets.token_urlsafe(48))"`.',
        )
    return secret


def _derive(secret: str, purpose: bytes) -> bytes:
    return hmac.new(secret.encode(), purpose, hashlib.sha256).digest()


class HmacKeyRing:
    """A single HS256 secret. Its ``kid`` is derived from the secret, so every worker with
    the same secret agrees on it and a changed secret makes old tokens fail cleanly."""

    def __init__(self, secret: str) -> None:
        check_secret(secret)
        key = _derive(secret, b"shipyard jwt hs256")
        kid = "hs256-" + hashlib.sha256(key).hexdigest()[:16]
        self._key = SigningKey(kid=kid, alg="HS256", sign_key=key, verify_key=key)

    def __repr__(self) -> str:
        return f"HmacKeyRing(kid={self._key.kid!r})"

    def signing_key(self) -> SigningKey:
        return self._key

    def verification_key(self, kid: str) -> SigningKey | None:
        return self._key if hmac.compare_digest(kid, self._key.kid) else None

    def jwks(self) -> dict[str, Any]:
        """Symmetric keys are never published: the JWKS is empty."""
        return {"keys": []}


def _generate(alg: str) -> Any:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


class SqlKeyRing:
    """RS256 or ES256 key pairs stored in the ``signing_keys`` table.

    Example::

        ring = SqlKeyRing(engine_for(settings.db), "RS256", load_or_create_secret(home))
        ring.jwks()      # serve at /.well-known/jwks.json
        ring.rotate()    # new key signs; the old one verifies for another `grace` seconds

    Args:
        engine: The metadata DB.
        alg: ``RS256`` or ``ES256``; new keys use it, old keys keep their own.
        secret: The secret the private keys' encryption passphrase is derived from.
        grace: Seconds a rotated-out key keeps verifying.
        refresh: Seconds between re-reads of the table (to see other workers' rotations).
    """

    def __init__(
        self,
        engine: Engine,
        alg: str,
        secret: str,
        *,
        grace: float = 3600.0,
        refresh: float = 30.0,
    ) -> None:
        if check_algorithm(alg) not in ASYMMETRIC_ALGORITHMS:
            raise ConfigError(f"SqlKeyRing needs RS256 or ES256, not {alg}.")
        self._engine = engine
        self.alg = alg
        self._passphrase = _derive(check_secret(secret), b"shipyard signing-key encryption")
        self.grace = grace
        self._refresh = refresh
        self._keys: dict[str, SigningKey] = {}
        self._private: dict[str, Any] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SqlKeyRing({self._engine.url.render_as_string(hide_password=True)!r}, {self.alg})"

    def _load(self, *, force: bool = False) -> dict[str, SigningKey]:
        now = time.monotonic()
        if not force and now - self._loaded_at < self._refresh:
            return self._keys
        with self._lock:
            with self._engine.connect() as conn:
                rows = conn.execute(sa.select(signing_keys).order_by(signing_keys.c.created_at))
                keys = {}
                for row in rows:
                    public = serialization.load_pem_public_key(row.public_key_pem.encode())
                    keys[row.kid] = SigningKey(
                        kid=row.kid,
                        alg=row.alg,
                        sign_key=None,
                        verify_key=public,
                        created_at=row.created_at,
                        signing_until=row.signing_until,
                        verify_until=row.verify_until,
                    )
            self._keys = keys
            self._loaded_at = now
        return keys

    def _private_key(self, kid: str) -> Any:
        if kid not in self._private:
            with self._engine.connect() as conn:
                pem = conn.execute(
                    sa.select(signing_keys.c.private_key_pem).where(signing_keys.c.kid == kid)
                ).scalar_one()
            try:
                self._private[kid] = serialization.load_pem_private_key(
                    pem.encode(), self._passphrase
                )
            except ValueError as exc:
                raise ConfigError(
                    f"Cannot decrypt signing key '{kid}': the JWT secret is not the one it "
                    "was created with.",
                    hint="Use the original SHIPYARD_JWT_SECRET (or SHIPYARD_HOME/jwt-secret), "
                    "or retire the key and rotate.",
                ) from exc
        return self._private[kid]

    def _current(self, keys: dict[str, SigningKey]) -> SigningKey | None:
        now = now_ms()
        usable = [
            k
            for k in keys.values()
            if (k.signing_until is None or now < k.signing_until) and k.verifies_at(now)
        ]
        return max(usable, key=lambda k: k.created_at) if usable else None

    def signing_key(self) -> SigningKey:
        """The newest key that may still sign; creates the first key when there is none."""
        current = self._current(self._load())
        if current is None:
            current = self._current(self._load(force=True))
        if current is None:
            self._insert_key(rotate=False)
            current = self._current(self._load(force=True))
        assert current is not None
        private = self._private_key(current.kid)
        return SigningKey(
            current.kid,
            current.alg,
            private,
            current.verify_key,
            current.created_at,
            current.signing_until,
            current.verify_until,
        )

    def verification_key(self, kid: str) -> SigningKey | None:
        """The key ``kid`` if it may still verify, else None (unknown or retired)."""
        key = self._load().get(kid)
        if key is None and time.monotonic() - self._loaded_at > 0.2:
            # An unknown kid may be a key another worker just created; re-read, but at most
            # five times a second so random kids cannot hammer the database.
            key = self._load(force=True).get(kid)
        if key is None or not key.verifies_at(now_ms()):
            return None
        return key

    def keys(self) -> list[SigningKey]:
        """Every stored key (public parts), oldest first, retired ones included."""
        return list(self._load(force=True).values())

    def jwks(self) -> dict[str, Any]:
        """The JWKS document of every key that still verifies (RFC 7517)."""
        now = now_ms()
        out = []
        for key in self._load().values():
            if not key.verifies_at(now):
                continue
            algorithm = RSAAlgorithm if key.alg == "RS256" else ECAlgorithm
            jwk = algorithm.to_jwk(key.verify_key, as_dict=True)
            jwk.pop("key_ops", None)
            jwk.update(kid=key.kid, alg=key.alg, use="sig")
            out.append(jwk)
        return {"keys": out}

    def rotate(self, grace: float | None = None) -> str:
        """Create a new signing key; older keys stop signing now and verify for ``grace``
        more seconds. Returns the new ``kid``."""
        kid = self._insert_key(rotate=True, grace=self.grace if grace is None else grace)
        self._load(force=True)
        return kid

    def retire(self, kid: str) -> None:
        """Stop verifying ``kid`` immediately (for a compromised key)."""
        now = now_ms()
        with self._engine.begin() as conn:
            result = conn.execute(
                signing_keys.update()
                .where(signing_keys.c.kid == kid)
                .values(verify_until=now, signing_until=now)
            )
        if result.rowcount == 0:
            raise NotFoundError(f"Signing key '{kid}' does not exist.")
        self._load(force=True)

    def _insert_key(self, *, rotate: bool, grace: float = 0.0) -> str:
        private = _generate(self.alg)
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        private_pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )
        kid = f"{self.alg.lower()}-{secrets.token_hex(8)}"
        now = now_ms()
        with self._engine.begin() as conn:
            serialize(conn, "shipyard.signing_keys")
            k = signing_keys.c
            active = sa.and_(
                k.signing_until.is_(None), sa.or_(k.verify_until.is_(None), k.verify_until > now)
            )
            if not rotate and conn.execute(sa.select(k.kid).where(active)).first():
                return ""  # another worker created the first key meanwhile
            if rotate:
                conn.execute(
                    signing_keys.update().where(k.signing_until.is_(None)).values(signing_until=now)
                )
                conn.execute(
                    signing_keys.update()
                    .where(sa.or_(k.verify_until.is_(None), k.verify_until > now + grace * 1000))
                    .values(verify_until=now + int(grace * 1000))
                )
            conn.execute(
                signing_keys.insert().values(
                    kid=kid,
                    alg=self.alg,
                    public_key_pem=public_pem.decode(),
                    private_key_pem=private_pem.decode(),
                    created_at=now,
                    signing_until=None,
                    verify_until=None,
                )
            )
        self._private[kid] = private
        return kid
