"""Security headers on every response, as pure ASGI middleware.

API answers are JSON or bytes that a browser must never render, sniff or frame, so they get
``Content-Security-Policy: default-src 'none'``. The interactive docs (``/docs``) load
Swagger UI from its CDN with an inline bootstrap script, so they get a policy that allows
exactly that. API responses are never cached (they carry tokens, secrets and live state).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["API_CSP", "DOCS_CSP", "SecurityHeadersMiddleware"]

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

#: What FastAPI's Swagger UI page needs: its CDN bundle and inline init script, the
#: OpenAPI document from this origin, and FastAPI's favicon.
DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.jsdelivr.net; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

_DOCS_PATHS = ("/docs", "/docs/oauth2-redirect")

_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeadersMiddleware:
    """Add ``X-Content-Type-Options``, ``X-Frame-Options``, ``Referrer-Policy``, a
    Content-Security-Policy, and ``Cache-Control: no-store`` on /api responses that set
    no caching policy of their own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = (DOCS_CSP if path in _DOCS_PATHS else API_CSP).encode()
        api = path.startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in _COMMON if h[0] not in present)
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp))
                if api and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
