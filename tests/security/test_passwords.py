"""Password hashing and policy."""

from __future__ import annotations

import argon2
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.security.passwords import (
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)

CHEAP = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def test_hash_is_salted_argon2id_and_verifies() -> None:
    first = hash_password("violet tractor moonlight", CHEAP)
    second = hash_password("violet tractor moonlight", CHEAP)
    assert first.startswith("$argon2id$")
    assert first != second
    assert verify_password(first, "violet tractor moonlight", CHEAP)
    assert not verify_password(first, "violet tractor moonlighT", CHEAP)


def test_verify_returns_false_for_garbage_hash() -> None:
    assert not verify_password("not-a-hash", "whatever password", CHEAP)
    assert needs_rehash("not-a-hash", CHEAP)


def test_needs_rehash_when_parameters_grow() -> None:
    old = hash_password("violet tractor moonlight", CHEAP)
    stronger = argon2.PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    assert not needs_rehash(old, CHEAP)
    assert needs_rehash(old, stronger)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "too short: 5 characters, at least 12"),
        ("x" * 1025, "too long"),
        ("password1234", "too common"),
        ("Password1234", "too common"),
        ("aaaaaaaaaaaaaaaa", "too repetitive"),
        ("abababababababab", "too repetitive"),
        ("my name is alice!!", "must not contain the user name"),
    ],
)
def test_policy_rejects_weak_passwords(password: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        check_password_policy(password, "alice")


def test_policy_message_never_echoes_the_password() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        check_password_policy("hunter2", "alice")
    assert "hunter2" not in str(info.value)


def test_policy_accepts_a_long_passphrase() -> None:
    check_password_policy("violet tractor moonlight", "alice")
