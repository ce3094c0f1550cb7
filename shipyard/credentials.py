"""Saved logins: the access and refresh tokens of each platform server, per server URL, in
``SHIPYARD_HOME/credentials.json``.

The SDK sends ``SHIPYARD_TOKEN`` when it is set (an API key or a token from elsewhere),
else the access token saved here for ``SHIPYARD_URL``, and refreshes it transparently
when it expires (see :class:`shipyard._http.HttpSession`). The file is private to its
owner (mode 0600), replaced atomically on every write, and guarded by a lock file so two
processes never use the same refresh token twice: the server would take that for a
stolen token and end the session.

Example::

    from shipyard.credentials import CredentialStore, login

    store = CredentialStore(settings.home)
    login("https://mlops.internal", username="alice", password=password, store=store)
    store.get("https://mlops.internal").principal   # 'user:alice'
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import AuthError, ConfigError, InvalidArgumentError, ShipyardError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CREDENTIALS_FILE",
    "CredentialStore",
    "Credentials",
    "login",
    "logout",
    "normalize_url",
]

logger = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"
_FORMAT_VERSION = 1


def normalize_url(url: str) -> str:
    """The key a server is saved under: scheme and host lowercased, no trailing slash."""
    text = url.strip().rstrip("/")
    scheme, sep, rest = text.partition("://")
    if not sep or not rest:
        raise InvalidArgumentError(
            f"Invalid server URL {url!r}.", hint="Write it like 'http://127.0.0.1:5005'."
        )
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


@dataclass(frozen=True)
class Credentials:
    """The tokens of one login to one server.

    Attributes:
        url: The server's URL (normalized).
        access_token: The bearer token sent on each request (a short-lived JWT).
        refresh_token: Trades for a new access token when it expires; None for service
            accounts (they log in again with their client secret).
        expires_at: Epoch seconds the access token expires at, as the server announced.
        principal: Who logged in, ``user:<name>`` or ``sa:<name>``.
    """

    url: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    principal: str = ""
    token_type: str = "bearer"

    @classmethod
    def from_token_response(
        cls, url: str, body: Mapping[str, Any], principal: str = ""
    ) -> Credentials:
        """Credentials from an OAuth2 token response (``access_token``, ``expires_in`` ...)."""
        try:
            access_token = str(body["access_token"])
        except (KeyError, TypeError):
            raise AuthError(
                f"The server at {url} answered the login without an access token.",
                hint="Check that SHIPYARD_URL points at a Shipyard platform server.",
            ) from None
        expires_in = body.get("expires_in")
        return cls(
            url=normalize_url(url),
            access_token=access_token,
            refresh_token=body.get("refresh_token") or None,
            expires_at=time.time() + float(expires_in) if expires_in is not None else None,
            principal=principal,
            token_type=str(body.get("token_type", "bearer")).lower(),
        )

    def refreshed(self, body: Mapping[str, Any]) -> Credentials:
        """These credentials after a refresh answered with ``body``."""
        new = Credentials.from_token_response(self.url, body, self.principal)
        # Servers that do not rotate refresh tokens answer without one: keep ours.
        return new if new.refresh_token else replace(new, refresh_token=self.refresh_token)

    @property
    def expired(self) -> bool:
        """True when the access token's announced lifetime is over."""
        return self.expires_at is not None and self.expires_at <= time.time()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Credentials:
        return cls(
            url=str(data["url"]),
            access_token=str(data["access_token"]),
            refresh_token=data.get("refresh_token") or None,
            expires_at=float(data["expires_at"]) if data.get("expires_at") is not None else None,
            principal=str(data.get("principal", "")),
            token_type=str(data.get("token_type", "bearer")),
        )


class CredentialStore:
    """The credentials file of one ``SHIPYARD_HOME``.

    Writes go to a temporary file in the same folder, made 0600 before any secret is
    written, then renamed over the old file, so a reader always sees one whole version.
    Read-modify-write steps (a save, a token refresh) hold :meth:`locked`: a ``fcntl``
    lock on ``credentials.json.lock`` across processes, and a lock across threads.

    Args:
        home: ``SHIPYARD_HOME``; the file is ``home/credentials.json``.
    """

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.path = Path(home).expanduser() / CREDENTIALS_FILE
        self._lock = threading.RLock()
        self._depth = 0
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"CredentialStore('{self.path}')"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store exclusively (re-entrant): read, refresh and save as one step."""
        with self._lock:
            if self._depth == 0:
                self._acquire_file_lock()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release_file_lock()

    def _acquire_file_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: threads are still serialized
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    def _release_file_lock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing the descriptor releases the flock

    def _read(self) -> dict[str, Any]:
        try:
            mode = self.path.stat().st_mode
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        if os.name == "posix" and mode & 0o077:
            # Someone (a copy, an editor) widened it; the tokens are as good as a password.
            logger.warning("%s was readable by others; restricting it to mode 0600", self.path)
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)
        try:
            data = json.loads(text)
            servers = data["servers"]
            if not isinstance(servers, dict):
                raise TypeError("servers is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"The credentials file {self.path} is corrupt: {exc}.",
                hint=f"Delete it and log in again with `shipyard login`: rm {self.path}",
            ) from None
        return servers

    def _write(self, servers: Mapping[str, Any]) -> None:
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file with mode 0600 before a byte of it is written.
        fd, tmp = tempfile.mkstemp(prefix=".credentials-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"version": _FORMAT_VERSION, "servers": servers}, out, indent=2)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def get(self, url: str) -> Credentials | None:
        """The saved credentials for the server at ``url``, or None."""
        key = normalize_url(url)
        # No lock: writers replace the file atomically, so a read sees one whole version.
        entry = self._read().get(key)
        if entry is None:
            return None
        try:
            return Credentials.from_dict({**entry, "url": key})
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"The saved credentials for {key} in {self.path} are corrupt: {exc!r}.",
                hint=f"Log in again with `shipyard login --url {key}`.",
            ) from None

    def save(self, credentials: Credentials) -> None:
        """Save (or replace) the credentials of ``credentials.url``."""
        key = normalize_url(credentials.url)
        with self.locked():
            servers = self._read()
            servers[key] = {**credentials.to_dict(), "url": key}
            self._write(servers)

    def delete(self, url: str) -> bool:
        """Forget the server at ``url``; False when nothing was saved for it."""
        key = normalize_url(url)
        with self.locked():
            servers = self._read()
            if servers.pop(key, None) is None:
                return False
            self._write(servers)
        return True

    def urls(self) -> list[str]:
        """Every server with saved credentials."""
        return sorted(self._read())


def login(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    store: CredentialStore | None = None,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | Any | None = None,
) -> Credentials:
    """Log in to a platform server (OAuth2 password or client-credentials grant).

    Args:
        url: The server's URL.
        username, password: A user's login (gets a refresh token too).
        client_id, client_secret: A service account's login.
        store: Save the credentials here, for the SDK and CLI to use.
        timeout: Seconds to wait for the server.
        transport: An httpx transport or client (tests talk to an app in-process).

    Returns:
        The new credentials.

    Raises:
        AuthError: Wrong credentials, a disabled account, or too many failed logins.
        BackendError: The server cannot be reached.
    """
    from shipyard._http import HttpSession

    if (username is None) == (client_id is None):
        raise InvalidArgumentError("Log in either with a user name or with a client id.")
    if username is not None:
        form = {"grant_type": "password", "username": username, "password": password or ""}
        principal = f"user:{username}"
    else:
        form = {
            "grant_type": "client_credentials",
            "client_id": str(client_id),
            "client_secret": client_secret or "",
        }
        principal = f"sa:{client_id}"
    with HttpSession(url, timeout=timeout, transport=transport) as http:
        try:
            body = http.token_grant(form)
        except ShipyardError as exc:
            if exc.http_status == 429:  # the server's lockout: an auth failure to the user
                locked = AuthError(exc.message, hint=exc.hint)
                locked.headline = "Too many failed logins"
                raise locked from None
            raise
        credentials = Credentials.from_token_response(http.base_url or url, body, principal)
    if store is not None:
        store.save(credentials)
    return credentials


def logout(
    url: str,
    store: CredentialStore,
    *,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | Any | None = None,
) -> bool:
    """Revoke the saved login's session on the server and forget it locally.

    The local copy is deleted even when the server cannot be reached (the access token
    then lives until it expires). Returns False when nothing was saved for ``url``.
    """
    from shipyard._http import HttpSession

    credentials = store.get(url)
    if credentials is None:
        return False
    if credentials.refresh_token:
        try:
            # Public route: the refresh token itself entitles its holder to revoke it
            # (RFC 7009), so an expired access token is no obstacle.
            with HttpSession(url, timeout=timeout, transport=transport, retries=0) as http:
                http.request(
                    "POST",
                    "/auth/logout",
                    json={"refresh_token": credentials.refresh_token},
                    authenticate=False,
                )
        except ShipyardError as exc:
            logger.warning("could not revoke the session on %s: %s", url, exc.message)
    return store.delete(url)
