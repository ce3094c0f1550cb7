"""HttpSession: the SDK's connection to a platform server.

One ``httpx.Client`` with the base URL, bearer token, workspace header and timeouts set
once; retries with backoff where a retry cannot apply a write twice; an expired access
token refreshed once, transparently, with the saved refresh token; and JSON error bodies
turned back into the same :class:`~shipyard.errors.ShipyardError` subclasses the server
raised, matched by their ``code``.
"""

from __future__ import annotations

import json as _json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from shipyard import __version__
from shipyard.errors import (
    AuthError,
    BackendError,
    ConflictError,
    InvalidArgumentError,
    InvalidTokenError,
    NotFoundError,
    PermissionDeniedError,
    ShipyardError,
)

if TYPE_CHECKING:
    from pydantic import SecretStr

    from shipyard.config import Settings
    from shipyard.credentials import Credentials, CredentialStore

__all__ = [
    "API_PREFIX",
    "SHA256_HEADER",
    "WORKSPACE_HEADER",
    "HttpSession",
    "error_from_response",
]

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
WORKSPACE_HEADER = "X-Shipyard-Workspace"
SHA256_HEADER = "X-Shipyard-Sha256"

#: Methods a server applies at most once however often they are sent.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Answers from a proxy or an overloaded server that a later attempt may not get.
_RETRY_STATUS = frozenset({502, 503, 504})
#: The error code of a 401 for a bearer token that is expired or otherwise unusable.
_INVALID_TOKEN = "invalid_token"
_FORM = "application/x-www-form-urlencoded"

Content = bytes | Iterable[bytes] | Callable[[], bytes | Iterable[bytes]] | None


def _error_classes() -> dict[str, type[ShipyardError]]:
    """Every ShipyardError subclass imported so far, by its ``code`` (first one wins)."""
    found: dict[str, type[ShipyardError]] = {}
    pending: list[type[ShipyardError]] = [ShipyardError]
    while pending:
        cls = pending.pop(0)
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def _class_for_status(status: int) -> type[ShipyardError]:
    if status == 401:
        return AuthError
    if status == 403:
        return PermissionDeniedError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if 400 <= status < 500:
        return InvalidArgumentError
    if status >= 500:
        return BackendError
    return ShipyardError


def error_from_response(response: httpx.Response) -> ShipyardError:
    """The ShipyardError a failed response stands for, rebuilt from its JSON body.

    The class is found by the body's ``code``; subclasses whose ``__init__`` builds the
    message from arguments are created without calling it, so the server's wording is kept.
    A body that is not Shipyard's error JSON (a proxy's HTML page) maps by status code.
    """
    code: str | None = None
    details: dict[str, Any] = {}
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
        details = dict(error.get("details") or {})
    except Exception:
        text = response.text.strip()[:500] or response.reason_phrase
        message = (
            f"The server at {response.request.url.scheme}://{response.request.url.netloc.decode()}"
            f" answered {response.status_code} to {response.request.method} "
            f"{response.request.url.path}: {text}"
        )
    cls = _error_classes().get(code or "") or _class_for_status(response.status_code)
    exc = cls.__new__(cls)
    text, _, hint = message.partition("\nHint: ")
    ShipyardError.__init__(exc, text, hint=hint or None)
    if code and code != cls.code:
        exc.code = code
    exc.http_status = response.status_code
    exc.details = details  # type: ignore[attr-defined]
    if "failing" in details:  # PromotionRefusedError.failing
        exc.failing = list(details["failing"])  # type: ignore[attr-defined]
    return exc


def _error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except Exception:
        return None


def _is_client(obj: object) -> bool:
    # Duck-typed so Starlette's TestClient works whichever httpx package it subclasses.
    return hasattr(obj, "build_request") and hasattr(obj, "send")


class HttpSession:
    """A connection to a Shipyard platform server, shared by the HTTP stores.

    Example::

        http = HttpSession("http://127.0.0.1:5005", token="...", workspace="team-a")
        http.get("/experiments")  # GET http://127.0.0.1:5005/api/v1/experiments

        # As the SDK does: SHIPYARD_TOKEN, else the login saved for SHIPYARD_URL.
        http = HttpSession.from_settings(load_settings())

    A session built from :class:`~shipyard.credentials.Credentials` answers a 401
    ``invalid_token`` (the access token expired, or the server's signing key changed) by
    trading the refresh token for a new access token once and resending the request.
    Threads sharing the session, and processes sharing the credential store, refresh
    only once between them: a refresh token is single-use, and reusing one ends the
    login session.

    Args:
        base_url: the server's URL (``SHIPYARD_URL``); "" to use an injected client's own.
        token: bearer token sent on every request (``SHIPYARD_TOKEN``), never refreshed;
            it takes precedence over ``credentials``.
        timeout: seconds to wait for the server (``SHIPYARD_HTTP_TIMEOUT``).
        transport: an ``httpx`` transport, or a whole client such as Starlette's
            ``TestClient`` to talk to an app in-process; the session does not close a
            client it was given.
        workspace: workspace header sent when a call names none.
        retries: extra attempts after a connection failure, and after 502/503/504 for
            idempotent methods (GET, PUT, DELETE); never for a POST the server may have
            applied.
        backoff: seconds before the first retry; doubled each time, with jitter.
        credentials: access and refresh token of a login (see :mod:`shipyard.credentials`).
        credential_store: where the login is saved; read for ``base_url`` when
            ``credentials`` is None, and refreshed tokens are written back to it.
    """

    def __init__(
        self,
        base_url: str = "",
        token: str | SecretStr | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | httpx.Client | Any | None = None,
        *,
        workspace: str | None = None,
        retries: int = 3,
        backoff: float = 0.2,
        credentials: Credentials | None = None,
        credential_store: CredentialStore | None = None,
    ) -> None:
        self.workspace = workspace
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._headers = {"User-Agent": f"shipyard/{__version__}"}
        self._token: str | None = None
        self._credentials: Credentials | None = None
        self._store: CredentialStore | None = None
        self._auth_lock = threading.Lock()
        if _is_client(transport):
            self._client = transport
            self._owns_client = False
            self.base_url = (base_url or str(transport.base_url)).rstrip("/")
        else:
            if not base_url:
                raise ValueError("HttpSession needs a base_url or a client")
            self._client = httpx.Client(
                transport=transport,
                timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                follow_redirects=False,
            )
            self._owns_client = True
            self.base_url = base_url.rstrip("/")
        if token is not None:
            self._token = token if isinstance(token, str) else token.get_secret_value()
        else:
            self._store = credential_store
            if credentials is None and credential_store is not None and self.base_url:
                credentials = credential_store.get(self.base_url)
            if credentials is not None:
                self._credentials = credentials
                self._token = credentials.access_token

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        workspace: str | None = None,
        transport: httpx.BaseTransport | httpx.Client | Any | None = None,
    ) -> HttpSession:
        """The session the SDK uses for ``settings.url``: authenticated with
        ``SHIPYARD_TOKEN`` when set, else with the login saved in ``SHIPYARD_HOME`` (by
        ``shipyard login``) for that URL, refreshed as it expires."""
        token = settings.token.get_secret_value() if settings.token else None
        store = None
        if token is None:
            from shipyard.credentials import CredentialStore

            store = CredentialStore(settings.home)
        return cls(
            settings.url,
            token=token,
            timeout=settings.http_timeout,
            transport=transport,
            workspace=workspace or settings.workspace,
            credential_store=store,
        )

    @property
    def credentials(self) -> Credentials | None:
        """The login this session sends and refreshes (None with a fixed ``token``)."""
        return self._credentials

    def __repr__(self) -> str:
        return f"HttpSession('{self.base_url}', workspace={self.workspace!r})"

    def close(self) -> None:
        """Close pooled connections (only when the session created its own client)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> HttpSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def client(self) -> Any:
        """The underlying httpx client."""
        return self._client

    def url(self, path: str) -> str:
        """The absolute URL of an API path such as ``/runs/abc``."""
        return f"{self.base_url}{API_PREFIX}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: Content = None,
        headers: Mapping[str, str] | None = None,
        workspace: str | None = None,
        stream: bool = False,
        authenticate: bool = True,
    ) -> httpx.Response:
        """Send one API request, retrying where safe; raise the server's error on 4xx/5xx.

        ``content`` may be a callable returning the body, so a streamed upload can be
        re-read for a retry; a plain iterator is sent once and never retried.
        ``authenticate=False`` sends no bearer token (the token endpoint).

        Raises:
            ShipyardError: the subclass named by the server's error ``code``.
            BackendError: the server cannot be reached or does not answer in time.
            InvalidTokenError: the access token expired and could not be refreshed.
        """
        method = method.upper()
        url = self.url(path)
        sent_headers = dict(self._headers)
        token = self._token if authenticate else None
        if token:
            sent_headers["Authorization"] = f"Bearer {token}"
        if headers:
            sent_headers.update(headers)
        refreshable = (
            token is not None
            and self._credentials is not None
            and sent_headers.get("Authorization") == f"Bearer {token}"
        )
        ws = workspace or self.workspace
        if ws:
            sent_headers[WORKSPACE_HEADER] = ws
        if json is not None:
            # Encoded here, not by httpx: metric values may be NaN or infinite, which
            # httpx refuses and the server (Python's json) reads back as NaN/Infinity.
            content = _json.dumps(json, separators=(",", ":"), ensure_ascii=False).encode()
            sent_headers["Content-Type"] = "application/json"
        replayable = content is None or isinstance(content, bytes) or callable(content)
        attempt = 0
        refreshed = False
        while True:
            body = content() if callable(content) else content
            try:
                request = self._client.build_request(
                    method, url, params=params, content=body, headers=sent_headers
                )
                response = self._client.send(request, stream=stream)
            except httpx.TransportError as exc:
                # A connection that never opened carried nothing, so any method may retry.
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt < self.retries and replayable and (unsent or method in _IDEMPOTENT):
                    attempt += 1
                    self._sleep(attempt, f"{method} {path}: {exc!r}")
                    continue
                raise self._transport_error(method, path, exc) from exc
            if response.status_code < 400:
                return response
            if response.status_code == 401 and refreshable and replayable and not refreshed:
                if stream:
                    response.read()
                if _error_code(response) == _INVALID_TOKEN:
                    response.close()
                    token = self._refresh(str(token), response)
                    sent_headers["Authorization"] = f"Bearer {token}"
                    refreshed = True
                    continue
            if (
                response.status_code in _RETRY_STATUS
                and method in _IDEMPOTENT
                and replayable
                and attempt < self.retries
            ):
                response.close()
                attempt += 1
                self._sleep(attempt, f"{method} {path}: HTTP {response.status_code}")
                continue
            if stream:
                response.read()
                response.close()
            raise error_from_response(response)

    def token_grant(self, form: Mapping[str, str]) -> dict[str, Any]:
        """POST an OAuth2 grant (form-encoded) to ``/auth/token``; returns the token body.

        Sent without the session's bearer token; a POST that may have reached the server
        is never resent, since a refresh token must be used only once.
        """
        response = self.request(
            "POST",
            "/auth/token",
            content=urlencode(dict(form)).encode(),
            headers={"Content-Type": _FORM, "Accept": "application/json"},
            authenticate=False,
        )
        body = self._json(response)
        if not isinstance(body, dict):
            raise AuthError(f"The server at {self.base_url} answered the token request oddly.")
        return body

    def _refresh(self, failed_token: str, failure: httpx.Response) -> str:
        """A usable access token in place of ``failed_token``, refreshing it if nobody did.

        Raises:
            InvalidTokenError: there is no refresh token, or the server refused it.
        """
        store = self._store
        with self._auth_lock, store.locked() if store is not None else nullcontext():
            current = store.get(self.base_url) if store is not None else self._credentials
            if current is not None and current.access_token != failed_token:
                # Another thread or process refreshed (or logged in) meanwhile.
                self._adopt(current)
                return current.access_token
            if current is None or not current.refresh_token:
                raise error_from_response(failure)
            try:
                body = self.token_grant(
                    {"grant_type": "refresh_token", "refresh_token": current.refresh_token}
                )
            except AuthError as exc:
                first = error_from_response(failure).message
                raise InvalidTokenError(
                    f"{first} Refreshing it failed too: {exc.message}",
                    hint="Log in again with `shipyard login`.",
                ) from exc
            new = current.refreshed(body)
            if store is not None:
                store.save(new)
            self._adopt(new)
            logger.debug("refreshed the access token for %s", self.base_url)
            return new.access_token

    def _adopt(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._token = credentials.access_token

    def _sleep(self, attempt: int, what: str) -> None:
        delay = min(self.backoff * 2 ** (attempt - 1), 5.0) * (0.5 + random.random())
        logger.info("retrying %s in %.2fs (attempt %d)", what, delay, attempt + 1)
        time.sleep(delay)

    def _transport_error(self, method: str, path: str, exc: httpx.TransportError) -> BackendError:
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return BackendError(
                f"The Shipyard server at {self.base_url} did not answer {method} "
                f"{API_PREFIX}{path} within {self.timeout:g}s.",
                hint="Raise SHIPYARD_HTTP_TIMEOUT, or check the server's load and logs.",
            )
        return BackendError(
            f"Cannot reach the Shipyard server at {self.base_url}: {exc}.",
            hint="Check SHIPYARD_URL and that `shipyard server` is running there.",
        )

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **kwargs: Any) -> Any:
        """GET ``path`` and return its JSON body."""
        return self._json(self.request("GET", path, **kwargs))

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        """POST a JSON body to ``path`` and return the JSON answer (None for 204)."""
        return self._json(self.request("POST", path, json=json, **kwargs))

    def put(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        """PUT a JSON body (or ``content=``) to ``path`` and return the JSON answer."""
        return self._json(self.request("PUT", path, json=json, **kwargs))

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        """PATCH ``path`` with a JSON body and return the JSON answer."""
        return self._json(self.request("PATCH", path, json=json, **kwargs))

    def delete(self, path: str, **kwargs: Any) -> Any:
        """DELETE ``path``; returns the JSON answer, usually None."""
        return self._json(self.request("DELETE", path, **kwargs))

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """Send a request and yield the response unread, for streaming large downloads."""
        response = self.request(method, path, stream=True, **kwargs)
        try:
            yield response
        finally:
            response.close()
