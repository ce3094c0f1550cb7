"""Login rate limiting: after too many failures per user name or per client address, further
logins are refused for a while.

Counters live in the ``login_throttle`` table, so a lockout survives restarts and holds
across workers; each failure is one atomic upsert. A failure counts against the name even
when no such user exists, so the lockout does not reveal which names are real.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.errors import AuthError
from shipyard.security._db import upsert
from shipyard.security.schema import login_throttle
from shipyard.store.db import now_ms


class LoginLockedError(AuthError):
    """Too many failed logins; the server answers 429."""

    http_status = 429
    code = "login_locked"
    headline = "Too many failed logins"

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"Too many failed logins for this user or from this address; try again in "
            f"{retry_after} s.",
            hint="An admin can lift the lock with `shipyard users unlock <name>`.",
        )


@dataclass(frozen=True)
class LockoutPolicy:
    """How many failures lock a user name or a client address, and for how long.

    Attributes:
        max_user_failures: Failures per user name within ``window`` that lock it.
        max_ip_failures: Failures per client address within ``window`` that lock it
            (higher, because many users may share an address).
        window: Seconds over which failures are counted.
        lockout: Seconds a lock lasts.
    """

    max_user_failures: int = 5
    max_ip_failures: int = 50
    window: int = 15 * 60
    lockout: int = 15 * 60


def _user_key(username: str) -> str:
    return "user:" + username.lower()[:200]


def _ip_key(ip: str) -> str:
    return "ip:" + ip[:64]


class LoginThrottle:
    """Counts failed logins per user name and per client address in the metadata DB."""

    def __init__(self, engine: Engine, policy: LockoutPolicy | None = None) -> None:
        self._engine = engine
        self.policy = policy or LockoutPolicy()

    def _keys(self, username: str, ip: str | None) -> list[tuple[str, int]]:
        keys = [(_user_key(username), self.policy.max_user_failures)]
        if ip:
            keys.append((_ip_key(ip), self.policy.max_ip_failures))
        return keys

    def check(self, username: str, ip: str | None = None) -> None:
        """Raise LoginLockedError while the name or the address is locked."""
        names = [k for k, _ in self._keys(username, ip)]
        now = now_ms()
        with self._engine.connect() as conn:
            until = conn.execute(
                sa.select(sa.func.max(login_throttle.c.locked_until)).where(
                    login_throttle.c.key.in_(names)
                )
            ).scalar()
        if until is not None and until > now:
            raise LoginLockedError(math.ceil((until - now) / 1000))

    def record_failure(self, username: str, ip: str | None = None) -> bool:
        """Count a failure; True when it locked the name or the address."""
        now = now_ms()
        window_start = now - self.policy.window * 1000
        t = login_throttle.c
        locked = False
        with self._engine.begin() as conn:
            for key, limit in self._keys(username, ip):
                expired = t.window_start < window_start
                upsert(
                    conn,
                    login_throttle,
                    {"key": key, "failures": 1, "window_start": now, "locked_until": 0},
                    ["key"],
                    {
                        "failures": sa.case((expired, 1), else_=t.failures + 1),
                        "window_start": sa.case((expired, now), else_=t.window_start),
                    },
                )
                # The upsert holds the row lock, so this read sees our own count.
                failures = conn.execute(sa.select(t.failures).where(t.key == key)).scalar_one()
                if failures >= limit:
                    locked = True
                    conn.execute(
                        login_throttle.update()
                        .where(t.key == key)
                        .values(
                            locked_until=now + self.policy.lockout * 1000,
                            failures=0,
                            window_start=now,
                        )
                    )
        return locked

    def record_success(self, username: str, ip: str | None = None) -> None:
        """Clear the name's failures (the address keeps its count: one good login from an
        address must not reset an attack on other names from it)."""
        with self._engine.begin() as conn:
            conn.execute(
                login_throttle.delete().where(
                    login_throttle.c.key == _user_key(username),
                    login_throttle.c.locked_until <= now_ms(),
                )
            )

    def unlock(self, username: str | None = None, ip: str | None = None) -> None:
        """Lift the lock and forget the failures of a name and/or an address."""
        keys = ([_user_key(username)] if username else []) + ([_ip_key(ip)] if ip else [])
        with self._engine.begin() as conn:
            conn.execute(login_throttle.delete().where(login_throttle.c.key.in_(keys)))
