"""Audit records for the platform server: one per mutating API call (pure ASGI
middleware), and before/after records of registry changes (called by the routes).

Every POST, PUT, PATCH and DELETE that reached a route is recorded with its actor,
action (``api.<route name>``), resource, workspace and response status, failures
included. The record is written when the response starts, before the client can see the
answer, so an acknowledged change always has its record. Logins, tokens and API keys
are recorded by :class:`~shipyard.security.SecurityService` itself, so the public auth
routes are not recorded twice.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.server.deps import actor_of, request_context, requested_workspace

if TYPE_CHECKING:
    from shipyard.security import AuditLog
    from shipyard.server.deps import Platform, RequestContext

__all__ = ["MUTATING_METHODS", "AuditMiddleware", "record_model_change"]

logger = logging.getLogger("shipyard.server")

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuditMiddleware:
    """Append an audit record for every mutating call under ``/api/``.

    Calls that never reached a route (unknown path, a body refused for its size before
    routing) and public routes (the token endpoint, logout) are not recorded here.

    Args:
        app: The wrapped ASGI app.
        audit: Where records go.
    """

    def __init__(self, app: ASGIApp, *, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in MUTATING_METHODS
            or not scope["path"].startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return
        context = request_context(scope)
        recorded = False

        async def audited_send(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                await self._record(scope, context, int(message["status"]))
            await send(message)

        await self.app(scope, receive, audited_send)

    async def _record(self, scope: Scope, context: RequestContext, status: int) -> None:
        permission = context.permission
        if permission is None or permission.is_public:
            return
        request = Request(scope)
        route = scope.get("route")
        name = getattr(route, "name", None) or "unknown"
        params = scope.get("path_params") or {}
        resource_id = context.resource_id or "/".join(str(v) for v in params.values())
        workspace = context.workspace
        if workspace is None:
            workspace = requested_workspace(request)
        append = functools.partial(
            self.audit.append,
            actor_of(request),
            f"api.{name}",
            resource_type=permission.resource,
            resource_id=resource_id,
            workspace=workspace,
            details={
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "permission": str(permission),
            },
        )
        try:
            await anyio.to_thread.run_sync(append)
        except Exception:
            # The change is already committed; failing the answer would only mislead the
            # client into retrying it. The gap is loud in the log instead.
            logger.exception(
                "Could not write the audit record of %s %s", scope["method"], scope["path"]
            )


def record_model_change(
    request: Any,
    platform: Platform,
    action: str,
    model: str,
    before: Any,
    after: Any,
    *,
    workspace: str,
    reason: str = "",
) -> None:
    """Record a registry change with its before/after (alias moves, promotions, refused
    promotions, deletions, gates); a no-op when auditing is off."""
    if platform.audit is None:
        return
    platform.audit.log_model_update(
        actor_of(request), model, before, after, action=action, workspace=workspace, reason=reason
    )
