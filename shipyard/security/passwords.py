"""Password hashing (argon2id) and the password policy.

Hashes are argon2id strings that carry their own parameters, so raising the cost later only
needs :func:`needs_rehash` on the next successful login. The policy is deliberately simple:
long enough, not a well-known password, not the user name.
"""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from shipyard.errors import InvalidArgumentError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # argon2 copes, but nobody needs more and it bounds the work per attempt

# Well-known passwords of at least MIN_LENGTH characters (shorter ones fail on length).
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456789012345",
        "1234567890qwerty",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "a1b2c3d4e5f6",
        "abc123abc123",
        "abcdefghijkl",
        "abcd1234abcd",
        "administrator",
        "changeme1234",
        "changemenow!",
        "correcthorsebatterystaple",
        "iloveyou1234",
        "letmein12345",
        "letmeinplease",
        "monkey123456",
        "password1234",
        "password12345",
        "password123!",
        "passw0rd1234",
        "p@ssw0rd1234",
        "p@ssword1234",
        "passwordpassword",
        "qwerty123456",
        "qwertyuiop12",
        "qwertyuiopas",
        "qwertyuiop[]",
        "shipyard1234",
        "shipyardadmin",
        "superman1234",
        "trustno1trustno1",
        "welcome12345",
        "welcome@1234",
        "zaq12wsxcde3",
    }
)

_default_hasher = argon2.PasswordHasher()


def check_password_policy(password: str, username: str | None = None) -> None:
    """Raise InvalidArgumentError when ``password`` is too weak to accept.

    Args:
        password: The candidate password.
        username: The account it is for; a password containing it is refused.

    Raises:
        InvalidArgumentError: Naming the rule the password breaks (never the password).
    """
    hint = "Use a passphrase of several unrelated words, or a password manager."
    if len(password) < MIN_LENGTH:
        raise InvalidArgumentError(
            f"Password is too short: {len(password)} characters, at least {MIN_LENGTH} needed.",
            hint=hint,
        )
    if len(password) > MAX_LENGTH:
        raise InvalidArgumentError(
            f"Password is too long: at most {MAX_LENGTH} characters are accepted."
        )
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(lowered)) < 4:
        raise InvalidArgumentError("Password is too common or too repetitive.", hint=hint)
    if username and len(username) >= 3 and username.lower() in lowered:
        raise InvalidArgumentError("Password must not contain the user name.", hint=hint)


def hash_password(password: str, hasher: argon2.PasswordHasher | None = None) -> str:
    """The argon2id hash of ``password`` (salted; the string holds the parameters)."""
    return (hasher or _default_hasher).hash(password)


def verify_password(
    password_hash: str, password: str, hasher: argon2.PasswordHasher | None = None
) -> bool:
    """True when ``password`` matches ``password_hash``; False for any mismatch or bad hash."""
    try:
        return (hasher or _default_hasher).verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str, hasher: argon2.PasswordHasher | None = None) -> bool:
    """True when the hash was made with other parameters than ``hasher``'s current ones."""
    try:
        return (hasher or _default_hasher).check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
