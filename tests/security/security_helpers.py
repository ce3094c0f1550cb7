"""Constants and builders shared by the security tests (a module with a unique name, so
test files can import it whatever other conftest modules are loaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import argon2
from sqlalchemy.engine import Engine

from shipyard.security import SecurityConfig, SecurityService
from shipyard.security.ratelimit import LockoutPolicy

# 32+ bytes, so PyJWT never warns about a short HMAC key.
SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
PASSWORD = "violet tractor moonlight"


def make_service(
    engine: Engine, home: Path, hasher: argon2.PasswordHasher, **config: Any
) -> SecurityService:
    config.setdefault("jwt_secret", SECRET)
    config.setdefault("lockout", LockoutPolicy(max_user_failures=3, max_ip_failures=6))
    return SecurityService(engine, home, SecurityConfig(**config), hasher=hasher)


def append_many(url: str, worker: int, count: int, barrier: Any) -> None:
    """Run in a child process: append ``count`` audit records once all workers are ready."""
    from shipyard.security.audit import AuditLog
    from shipyard.store.db import engine_for

    log = AuditLog(engine_for(url), emit=False)
    barrier.wait(60)
    for i in range(count):
        log.append(f"user:w{worker}", "run.log", resource_id=f"{worker}-{i}", details={"i": i})
