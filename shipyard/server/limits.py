"""Request body limits, as pure ASGI middleware.

A declared ``Content-Length`` over the limit is refused before a byte is read; a body sent
without one (chunked, streamed) is counted as it arrives and refused as soon as it passes
the limit. Either way the client gets a 413 JSON error. Artifact uploads have their own,
larger limit because they stream to the artifact store instead of into memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.errors import InvalidArgumentError
from shipyard.server.errors import error_response

__all__ = ["BodyLimitMiddleware", "RequestTooLargeError", "RouteLimit"]


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError  # pragma: no cover


class RequestTooLargeError(InvalidArgumentError):
    """The request body is larger than the server accepts (413)."""

    http_status = 413
    code = "request_too_large"

    def __init__(self, limit: int, hint: str) -> None:
        self.limit = limit
        super().__init__(
            f"The request body is larger than this server's limit of {_size(limit)}.", hint=hint
        )


@dataclass(frozen=True)
class RouteLimit:
    """A body limit for requests whose method and path match."""

    method: str
    path: re.Pattern[str]
    max_bytes: int
    hint: str


_DEFAULT_HINT = (
    "Split the batch into smaller calls (at most 10,000 metrics per log_batch), or upload "
    "large files as artifacts."
)


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` (or a matching route's own limit) with 413."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        routes: Sequence[RouteLimit] = (),
        hint: str = _DEFAULT_HINT,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.routes = tuple(routes)
        self.hint = hint

    def _limit_for(self, scope: Scope) -> tuple[int, str]:
        for route in self.routes:
            if scope["method"] == route.method and route.path.match(scope["path"]):
                return route.max_bytes, route.hint
        return self.max_bytes, self.hint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, hint = self._limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(RequestTooLargeError(limit, hint), scope, receive, send)
            return

        received = 0
        refused: RequestTooLargeError | None = None
        started = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = RequestTooLargeError(limit, hint)
                    raise refused
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None and not started:
                return  # the app's own answer to the aborted read is replaced by our 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if refused is None or started:
                raise
        if refused is not None and not started:
            await self._refuse(refused, scope, receive, send)

    @staticmethod
    async def _refuse(
        error: RequestTooLargeError, scope: Scope, receive: Receive, send: Send
    ) -> None:
        # Closing the connection spares the server from reading the rest of the body.
        response = error_response(
            error.http_status, error.code, str(error), headers={"Connection": "close"}
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
