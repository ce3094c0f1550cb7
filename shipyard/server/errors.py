"""Every failure becomes one JSON shape: ``{"error": {"code", "message"}}``.

A :class:`~shipyard.errors.ShipyardError` keeps its ``http_status`` and message; a request
that does not match its schema gets a 422 naming the field; an unknown route a 404 or 405;
anything else a 500 with a generic message, its traceback logged and never sent.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.errors import ShipyardError

__all__ = [
    "SECRET_FIELDS",
    "InternalErrorMiddleware",
    "error_response",
    "install_error_handlers",
]

logger = logging.getLogger("shipyard.server")

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The JSON error response every failure is sent as."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status, headers=headers)


#: Fields whose values a validation error never repeats back (or logs).
SECRET_FIELDS = frozenset(
    {"password", "client_secret", "refresh_token", "access_token", "token", "secret", "key"}
)


async def _shipyard_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ShipyardError)
    if exc.http_status >= 500:
        logger.error("%s: %s", type(exc).__name__, exc, exc_info=exc)
    details = {"failing": exc.failing} if hasattr(exc, "failing") else None
    headers = None
    if exc.http_status == 401:
        # RFC 6750: a 401 names the scheme the client should authenticate with.
        headers = {"WWW-Authenticate": 'Bearer realm="shipyard"'}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float):
        headers = {"Retry-After": str(max(1, int(retry_after)))}
    return error_response(exc.http_status, exc.code, str(exc), details, headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'metrics', 0, 'value') -> 'metrics[0].value'; ('query', 'x') -> 'query x'."""
    where, *rest = list(loc) or ["request"]
    name = ""
    for part in rest:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    if where == "body":
        return name or "request body"
    return f"{where} parameter '{name}'" if name else str(where)


def _problem(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return f"request body is not valid JSON ({reason})" if reason else "invalid JSON"
    loc = error.get("loc", ())
    text = f"{_field(loc)}: {error.get('msg', 'invalid')}"
    value = error.get("input")
    secret = any(isinstance(part, str) and part in SECRET_FIELDS for part in loc)
    if not secret and isinstance(value, str | int | float | bool) and len(repr(value)) <= 80:
        text += f" (got {value!r})"
    return text


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    problems = [_problem(e) for e in errors[:10]]
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    message = (
        f"Invalid request: {'; '.join(problems)}{more}.\n"
        "Hint: See /openapi.json (or /docs) for the request schema."
    )
    details = {"errors": [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors]}
    return error_response(422, "invalid_request", message, details)


def _allowed_methods(request: Request) -> list[str]:
    """The methods of the most specific route template matching this path.

    Starlette's Allow names only the first route whose path matched, and each method is a
    route of its own. ``/runs/search`` matches ``/runs/{run_id}`` too, so the template
    with the fewest parameters wins.
    """
    from shipyard.server.deps import declared_routes

    path = request.scope["path"]
    by_template: dict[str, set[str]] = {}
    for route in declared_routes(request.app):
        if route.path_regex is not None and route.path_regex.match(path):
            by_template.setdefault(route.path, set()).update(route.methods)
    if not by_template:
        return []
    best = min(by_template, key=lambda template: template.count("{"))
    return sorted(by_template[best])


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "invalid_request" if exc.status_code < 500 else "")
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = (
            f"No route {request.method} {request.url.path}.\n"
            "Hint: See /openapi.json (or /docs) for the routes."
        )
    elif exc.status_code == 405:
        allowed = _allowed_methods(request)
        message = (
            f"{request.method} is not allowed on {request.url.path}; it accepts "
            f"{', '.join(allowed)}.\n"
            "Hint: See /openapi.json (or /docs) for the methods each route accepts."
        )
        headers = {"Allow": ", ".join(allowed)}
        return error_response(405, "method_not_allowed", message, headers=headers)
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code or "internal_error", message, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn known failures into JSON error responses."""
    app.add_exception_handler(ShipyardError, _shipyard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


class InternalErrorMiddleware:
    """Pure ASGI: an unexpected exception becomes a generic 500 JSON answer.

    The traceback goes to the log only. Starlette's own ServerErrorMiddleware would also
    answer, but it re-raises afterwards, which a test client turns into a test failure.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("Unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = error_response(
                500,
                "internal_error",
                "The server failed on this request; the error is in its log.\n"
                "Hint: Retry later, and report it with the server log if it persists.",
            )
            await response(scope, receive, send)
