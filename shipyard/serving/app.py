"""create_model_app: the model server's HTTP API.

Routes: the Open Inference Protocol V2 under ``/v2`` (errors ``{"error": "..."}``),
the seed's ``POST /predict`` (and ``/secure-predict``), ``/metrics`` and ``/health``.
The hot routes are plain Starlette endpoints over pre-encoded JSON (no pydantic models
on the request path); their OpenAPI document is written out in :mod:`.openapi`.

The middleware stack, outermost first: request metrics, body size limit, routes. The
inference routes (``/predict``, ``.../infer``) take a direct path past that stack, which
does the same three things itself (see :class:`ModelServerApp`).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard import __version__
from shipyard.errors import AuthError, InvalidArgumentError, ShipyardError
from shipyard.server.limits import RequestTooLargeError
from shipyard.serving.metrics import CONTENT_TYPE_LATEST
from shipyard.serving.protocol import (
    BINARY_HEADER,
    dumps,
    encode_infer_response,
    loads,
    parse_infer_request,
)
from shipyard.serving.rollout import request_digest, sampled
from shipyard.serving.runtime import ModelServer, ServeOptions
from shipyard.serving.served import PREDICT_OUTPUT, PROBA_OUTPUT

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.security import Principal, SecurityService
    from shipyard.serving.repository import ModelRepository
    from shipyard.serving.rollout import Rollout, Target
    from shipyard.serving.served import ServedModel

__all__ = ["create_model_app"]

logger = logging.getLogger("shipyard.serving")

JSON = "application/json"
_REQUEST_ID = "x-request-id"


class _JsonResponse(Response):
    """A Response over pre-encoded JSON, with its headers built directly."""

    media_type = JSON

    def __init__(
        self, content: bytes, status_code: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.body = content
        self.background = None
        raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
        if headers:
            raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers = raw


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return _JsonResponse(body, status, headers)


def _error_headers(exc: ShipyardError) -> dict[str, str] | None:
    if exc.http_status == 401:
        return {"WWW-Authenticate": 'Bearer realm="shipyard"'}
    retry = getattr(exc, "retry_after", None)
    if isinstance(retry, int | float):
        return {"Retry-After": str(max(1, int(retry)))}
    return None


def _oip_error(exc: ShipyardError) -> Response:
    return _json(dumps({"error": str(exc)}), exc.http_status, _error_headers(exc))


def _api_error(exc: ShipyardError) -> Response:
    body = {"error": {"code": exc.code, "message": str(exc)}}
    return _json(dumps(body), exc.http_status, _error_headers(exc))


Endpoint = Callable[[Request], Awaitable[Response]]


#: Scope key the endpoints name their route template in, for the request metrics.
ROUTE_KEY = "shipyard.route"


def _guarded(handler: Endpoint, render: Callable[[ShipyardError], Response], path: str) -> Endpoint:
    """Every failure as the route family's JSON error; never a traceback."""

    async def endpoint(request: Request) -> Response:
        request.scope[ROUTE_KEY] = path
        try:
            return await handler(request)
        except ShipyardError as exc:
            if exc.http_status >= 500 and not isinstance(exc, AuthError):
                logger.warning("%s %s: %s", request.method, request.url.path, exc.message)
            return render(exc)
        except Exception:
            logger.exception("%s %s failed", request.method, request.url.path)
            error = ShipyardError("The model server failed on this request; see its log.")
            return render(error)

    endpoint.__name__ = handler.__name__
    return endpoint


class MetricsMiddleware:
    """Pure ASGI: count requests by route template, method and status; time them."""

    def __init__(self, app: ASGIApp, server: ModelServer) -> None:
        self.app = app
        self.requests = server.metrics.requests
        self.latency = server.metrics.request_latency
        self._handles: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.record(scope.get(ROUTE_KEY) or "unmatched", scope["method"], status, started)

    def record(self, route: str, method: str, status: int, started: float) -> None:
        """Count one request to ``route`` and observe its duration."""
        key = (route, method, status)
        handles = self._handles.get(key)
        if handles is None:
            handles = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route),
            )
            self._handles[key] = handles
        handles[0].inc()
        handles[1].observe(time.perf_counter() - started)


class _Api:
    """The route handlers, bound to one :class:`ModelServer`."""

    def __init__(self, server: ModelServer, security: SecurityService | None) -> None:
        self.server = server
        self.security = security
        self.workspace = server.workspace

    # -- auth --------------------------------------------------------------------------

    async def authorize(
        self, request: Request, resource: str, action: str, name: str | None
    ) -> Principal | None:
        """The caller, allowed ``resource:action`` on model ``name``; None with auth off."""
        security = self.security
        if security is None:
            return None
        header = request.headers.get("authorization")
        from shipyard.security.apikeys import API_KEY_PREFIX

        token = header[7:].strip() if header else ""
        if token.startswith(API_KEY_PREFIX) and not security.api_keys.is_warm(token):
            principal = await run_in_threadpool(security.authenticate, header)
        else:
            principal = security.authenticate(header)
        security.authorize(principal, self.workspace, resource, action, name)
        return principal

    # -- health and metadata -------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        return _json(b'{"live":true}')

    async def ready(self, request: Request) -> Response:
        if self.server.ready():
            return _json(b'{"ready":true}')
        return _json(b'{"ready":false}', 503)

    async def health(self, request: Request) -> Response:
        return _json(dumps({"status": "ok", "models": sorted(self.server.deployments)}))

    async def server_metadata(self, request: Request) -> Response:
        doc = {"name": "shipyard", "version": __version__, "extensions": ["binary_tensor_data"]}
        return _json(dumps(doc))

    def _served(self, request: Request) -> ServedModel:
        params = request.path_params
        version = params.get("version")
        deployment = self.server.deployment(params["name"])
        if version is None:
            return deployment.champion.served
        return self.server.repository.get(deployment.name, version)

    async def model_metadata(self, request: Request) -> Response:
        served = self._served(request)
        await self.authorize(request, "models", "read", served.name)
        doc = served.metadata()
        if "version" not in request.path_params:
            doc["versions"] = sorted(
                {t.version for t in self.server.deployment(served.name).targets()},
                key=lambda v: (len(v), v),
            )
        return _json(dumps(doc))

    async def model_ready(self, request: Request) -> Response:
        served = self._served(request)
        return _json(dumps({"name": served.name, "ready": True}))

    async def metrics(self, request: Request) -> Response:
        return Response(self.server.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    # -- inference -----------------------------------------------------------------------

    def _meta(
        self, digest: bytes, request_id: str, target: Target, principal: Principal | None
    ) -> dict[str, Any]:
        served = target.served
        return {
            "request_id": request_id,
            "variant": target.variant,
            "ts_us": time.time_ns() // 1000,
            "log": sampled(digest, self.server.options.log_sample),
            "audit": self.server.options.audit_predictions or served.audit,
            "actor": principal.id if principal is not None else None,
        }

    async def infer(self, request: Request) -> Response:
        params = request.path_params
        deployment = self.server.deployment(params["name"])
        principal = await self.authorize(request, "predictions", "invoke", deployment.name)
        body = await request.body()
        parsed = parse_infer_request(body, request.headers.get(BINARY_HEADER))
        request_id = parsed.id or request.headers.get(_REQUEST_ID) or secrets.token_hex(16)
        version = params.get("version")
        digest = request_digest(request_id)
        if version is None:
            target: Target | None = deployment.route(digest)
        else:
            target = self.server.target_for(deployment.name, version)
        assert target is not None or version is not None
        served = (
            target.served
            if target is not None
            else self.server.repository.get(deployment.name, version)
        )
        wanted = [o.name for o in parsed.outputs] if parsed.outputs else served.output_names
        unknown = [o for o in wanted if o not in served.output_names]
        if unknown:
            raise InvalidArgumentError(
                f"Unknown output '{unknown[0]}'; outputs are {', '.join(served.output_names)}."
            )
        if target is None or not served.batchable:
            outputs = await run_in_threadpool(served.infer, parsed.arrays(), wanted)
        else:
            batch = served.batch_from_tensors(parsed.arrays())
            meta = self._meta(digest, request_id, target, principal)
            pred, proba = await self.server.submit(target, batch, len(batch), meta)
            if version is None:
                self.server.mirror(deployment, batch, len(batch), meta)
            found = {PREDICT_OUTPUT: pred, PROBA_OUTPUT: proba}
            outputs = {n: found[n] for n in wanted if found.get(n) is not None}
        if parsed.outputs:
            binary = {o.name for o in parsed.outputs if o.binary}
        else:
            binary = set(outputs) if parsed.binary_output else set()
        content, headers = encode_infer_response(
            served.name,
            served.version,
            parsed.id,
            [(name, outputs[name]) for name in wanted if name in outputs],
            binary,
        )
        if headers:
            headers["Content-Type"] = "application/octet-stream"
            return Response(content, headers=headers)
        return _json(content)

    async def predict(self, request: Request) -> Response:
        started = time.perf_counter()
        body = await request.body()
        try:
            doc = loads(body)
        except ValueError as exc:
            raise InvalidArgumentError(
                f"The request body is not valid JSON ({exc}).",
                hint='Send {"features": [...]} or {"instances": [[...], ...]}.',
            ) from None
        if not isinstance(doc, dict):
            raise InvalidArgumentError(
                "The request body must be a JSON object.",
                hint='Send {"features": [...]} or {"instances": [[...], ...]}.',
            )
        name = doc.get("model")
        if name is None and len(self.server.deployments) > 1:
            name = request.query_params.get("model")
        if name is not None and not isinstance(name, str):
            raise InvalidArgumentError("'model' must be a string.")
        deployment = self.server.deployment(name)
        principal = await self.authorize(request, "predictions", "invoke", deployment.name)
        request_id = request.headers.get(_REQUEST_ID) or doc.get("id")
        if not isinstance(request_id, str) or not request_id:
            request_id = secrets.token_hex(16)
        digest = request_digest(request_id)
        target = deployment.route(digest)
        served = target.served
        single = "features" in doc
        if single:
            batch = served.rows(doc["features"], single=True)
        elif "instances" in doc:
            batch = served.rows(doc["instances"], single=False)
        elif "entities" in doc:
            from shipyard.serving.features import entity_rows

            entities = doc["entities"]
            single = isinstance(entities, dict)
            rows = await run_in_threadpool(entity_rows, served, self.server.settings, entities)
            batch = served.rows(rows, single=False)
        else:
            raise InvalidArgumentError(
                "The request has no 'features', 'instances' or 'entities'.",
                hint='Send {"features": [...]} for one row or {"instances": [[...], ...]}.',
            )
        rows_count = len(batch)
        if rows_count > self.server.options.max_batch_size * 16:
            raise InvalidArgumentError(
                f"{rows_count} rows in one request; the limit is "
                f"{self.server.options.max_batch_size * 16}.",
                hint="Split the request.",
            )
        meta = self._meta(digest, request_id, target, principal)
        pred, proba = await self.server.submit(target, batch, rows_count, meta)
        self.server.mirror(deployment, batch, rows_count, meta)
        labels = pred.tolist()
        confidences = proba.max(axis=1).tolist() if proba is not None else None
        out: dict[str, Any] = {}
        if single:
            out["prediction"] = labels[0]
            out["confidence"] = confidences[0] if confidences is not None else None
        else:
            out["predictions"] = labels
            out["confidences"] = confidences
        out["model"] = served.name
        out["model_version"] = served.version
        out["variant"] = target.variant
        out["request_id"] = request_id
        out["processing_time_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
        return _json(dumps(out), headers={"X-Request-Id": request_id})


_INFER_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")


class ModelServerApp(FastAPI):
    """FastAPI, with a direct path for the inference routes.

    ``POST /predict``, ``/secure-predict`` and ``.../infer`` skip the generic layers
    (routing over every route, exception middlewares, telemetry hooks): the body is read
    here, within the size limit, and the route's guarded handler answers. Every other
    request, and the OpenAPI document, go through FastAPI as usual.
    """

    fast_routes: dict[tuple[str, str], tuple[Endpoint, str]]
    fast_infer: tuple[Endpoint, Endpoint] | None
    request_metrics: MetricsMiddleware | None
    max_body: int

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            hit = self.fast_routes.get(("POST", path))
            if hit is not None:
                await self._fast(hit[0], hit[1], {}, scope, receive, send)
                return
            if self.fast_infer is not None and path.startswith("/v2/models/"):
                match = _INFER_PATH.match(path)
                if match is not None:
                    params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    versioned = "version" in params
                    handler = self.fast_infer[1 if versioned else 0]
                    route = INFER_VERSION_ROUTE if versioned else INFER_ROUTE
                    await self._fast(handler, route, params, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

    async def _fast(
        self,
        handler: Endpoint,
        route: str,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        started = time.perf_counter()
        scope["app"] = self
        scope["path_params"] = params
        render = _oip_error if route.startswith("/v2") else _api_error
        body = await _read_body(scope, receive, self.max_body, render)
        if body is None:
            return  # the client went away
        if isinstance(body, Response):
            response = body
        else:
            request = Request(scope, receive)
            request._body = body
            response = await handler(request)
        await response(scope, receive, send)
        if self.request_metrics is not None:
            self.request_metrics.record(route, "POST", response.status_code, started)


async def _read_body(
    scope: Scope, receive: Receive, limit: int, render: Callable[[ShipyardError], Response]
) -> bytes | Response | None:
    """The request body, a 413 response past ``limit``, or None on disconnect."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return render(RequestTooLargeError(limit, _BODY_HINT))
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return render(RequestTooLargeError(limit, _BODY_HINT))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_BODY_HINT = "Send fewer rows per request."
INFER_ROUTE = "/v2/models/{name}/infer"
INFER_VERSION_ROUTE = "/v2/models/{name}/versions/{version}/infer"


def _not_found_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "Not Found"
    headers = dict(exc.headers) if exc.headers else None
    if request.url.path.startswith("/v2"):
        return _json(dumps({"error": message}), exc.status_code, headers)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _json(dumps({"error": {"code": code, "message": message}}), exc.status_code, headers)


def create_model_app(
    repository: ModelRepository,
    settings: Settings,
    *,
    options: ServeOptions | None = None,
    rollouts: list[Rollout] | None = None,
    security: SecurityService | None = None,
    auth: bool | None = None,
) -> FastAPI:
    """Build the model server for the models loaded in ``repository``.

    Example::

        repo = ModelRepository(Client(settings))
        repo.load("models:/fraud@champion")
        app = create_model_app(repo, settings)   # uvicorn: shipyard serve ...

    Args:
        repository: the loaded models; each name is served by its default version.
        settings: artifact root (prediction log), home, bind address (auth), limits.
        options: batching, logging, polling and audit knobs.
        rollouts: canary and shadow per served name.
        security: the SecurityService checking tokens (default: built from settings
            when auth is on).
        auth: force auth on or off; None decides as the platform server does (on unless
            bound to loopback; off on a network address refuses to start).

    Raises:
        ConfigError: auth is off on a network address without
            ``allow_unauthenticated_network``.
    """
    from shipyard.server import auth as platform_auth
    from shipyard.server.limits import BodyLimitMiddleware
    from shipyard.serving.openapi import openapi_document

    auth_on = platform_auth.check_exposure(settings) if auth is None else auth
    options = options or ServeOptions()
    if auth_on and security is None:
        security = platform_auth.security_service(settings)
    audit_needed = options.audit_predictions or any(s.audit for s in repository.index())
    if audit_needed and security is None:
        security = platform_auth.security_service(settings)
    server = ModelServer(repository, settings, options, rollouts=rollouts, security=security)
    api = _Api(server, security if auth_on else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = ModelServerApp(
        title="Shipyard model server",
        version=__version__,
        description="Open Inference Protocol V2 and /predict for registered models.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
        middleware=[
            Middleware(MetricsMiddleware, server=server),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes, hint=_BODY_HINT),
        ],
    )
    app.max_body = settings.max_request_bytes
    app.request_metrics = MetricsMiddleware(app.router, server)
    app.state.model_server = server
    app.state.auth = auth_on
    oip = [
        ("/v2/health/live", api.live, "GET"),
        ("/v2/health/ready", api.ready, "GET"),
        ("/v2", api.server_metadata, "GET"),
        ("/v2/models/{name}", api.model_metadata, "GET"),
        ("/v2/models/{name}/versions/{version}", api.model_metadata, "GET"),
        ("/v2/models/{name}/ready", api.model_ready, "GET"),
        ("/v2/models/{name}/versions/{version}/ready", api.model_ready, "GET"),
        ("/v2/models/{name}/infer", api.infer, "POST"),
        ("/v2/models/{name}/versions/{version}/infer", api.infer, "POST"),
    ]
    api_routes = [
        ("/predict", api.predict, "POST"),
        ("/secure-predict", api.predict, "POST"),
        ("/health", api.health, "GET"),
        ("/metrics", api.metrics, "GET"),
    ]
    endpoints: dict[str, Endpoint] = {}
    for routes, render in ((oip, _oip_error), (api_routes, _api_error)):
        for path, handler, method in routes:
            endpoint = endpoints[path] = _guarded(handler, render, path)
            app.router.routes.append(Route(path, endpoint, methods=[method]))
    app.fast_routes = {
        ("POST", path): (endpoints[path], path) for path in ("/predict", "/secure-predict")
    }
    app.fast_infer = (endpoints[INFER_ROUTE], endpoints[INFER_VERSION_ROUTE])
    app.add_exception_handler(HTTPException, _not_found_handler)
    document = openapi_document(auth_on)

    def openapi() -> dict[str, Any]:
        return document

    app.openapi = openapi  # type: ignore[method-assign]
    return app
