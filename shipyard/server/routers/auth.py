"""Token routes: the OAuth2 token endpoint (password, client credentials, refresh), logout,
the JWKS, who-am-I and signing-key rotation.

``POST /api/v1/auth/token`` takes the form fields of RFC 6749, so OAuth2 clients (and
FastAPI's ``OAuth2PasswordBearer``, and the Authorize button of /docs) work unchanged.
Errors keep the API's JSON shape; a wrong credential is a 401, a locked-out name or
address a 429 with ``Retry-After``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from shipyard.errors import ConfigError, ConflictError, InvalidArgumentError
from shipyard.server.deps import (
    PermissionRoute,
    Platform,
    authenticated,
    platform,
    principal_of,
    public,
    requires,
)
from shipyard.server.schemas import ERROR_RESPONSES
from shipyard.server.security_schemas import (
    JwksOut,
    LogoutBody,
    MeOut,
    RotatedKey,
    RotateKey,
    TokenOut,
)

__all__ = ["TOKEN_PATH", "router", "well_known_router"]

TOKEN_PATH = "/api/v1/auth/token"

router = APIRouter(route_class=PermissionRoute, responses=ERROR_RESPONSES, tags=["auth"])
#: Served at the root: ``/.well-known/jwks.json``.
well_known_router = APIRouter(route_class=PermissionRoute, tags=["auth"])

PlatformDep = Annotated[Platform, Depends(platform)]
Public = [Depends(public())]
FormField = Annotated[str | None, Form(max_length=4096)]

_GRANT_TYPES = ("password", "client_credentials", "refresh_token")
_TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {**ERROR_RESPONSES[401], "description": "Too many failed logins; see Retry-After."}
}


class UnsupportedGrantTypeError(InvalidArgumentError):
    code = "unsupported_grant_type"


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """(client_id, client_secret) from ``Authorization: Basic`` (RFC 6749 section 2.3.1)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidArgumentError(
            "The Basic credentials are not valid base64 of 'client_id:client_secret'."
        ) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidArgumentError("The Basic credentials lack the ':client_secret' part.")
    return unquote(client_id), unquote(secret)


def _required(value: str | None, field: str, grant_type: str) -> str:
    if not value:
        raise InvalidArgumentError(
            f"grant_type={grant_type} needs the form field '{field}'.",
            hint="Send application/x-www-form-urlencoded fields as in RFC 6749.",
        )
    return value


@router.post(
    "/auth/token",
    response_model=TokenOut,
    response_model_exclude_none=True,
    dependencies=Public,
    responses=_TOKEN_RESPONSES,
)
def token(
    request: Request,
    state: PlatformDep,
    grant_type: FormField = None,
    username: FormField = None,
    password: FormField = None,
    client_id: FormField = None,
    client_secret: FormField = None,
    refresh_token: FormField = None,
    scope: FormField = None,
) -> Any:
    """OAuth2 token endpoint: ``grant_type`` password (``username``, ``password``),
    client_credentials (``client_id``, ``client_secret``, or HTTP Basic) or refresh_token
    (``refresh_token``)."""
    security = state.security
    client_ip = request.client.host if request.client else None
    if grant_type == "password":
        name = _required(username, "username", grant_type)
        secret = _required(password, "password", grant_type)
        pair = security.login(name, secret, client_ip=client_ip)
    elif grant_type == "client_credentials":
        basic = _basic_credentials(request)
        if basic is not None:
            client_id, client_secret = basic
        name = _required(client_id, "client_id", grant_type)
        secret = _required(client_secret, "client_secret", grant_type)
        pair = security.login_client(name, secret, client_ip=client_ip)
    elif grant_type == "refresh_token":
        pair = security.refresh(_required(refresh_token, "refresh_token", grant_type))
    elif not grant_type:
        raise InvalidArgumentError(
            f"The form field 'grant_type' is missing; use one of {', '.join(_GRANT_TYPES)}.",
            hint="Send application/x-www-form-urlencoded fields as in RFC 6749.",
        )
    else:
        raise UnsupportedGrantTypeError(
            f"Unsupported grant_type {grant_type[:64]!r}; use one of {', '.join(_GRANT_TYPES)}."
        )
    # RFC 6749 section 5.1: token responses must not be cached.
    return JSONResponse(
        pair.to_oauth2(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )


@router.post("/auth/logout", status_code=204, dependencies=Public)
def logout(body: LogoutBody, state: PlatformDep) -> None:
    """Revoke a refresh token and every token of its login session.

    Public: holding the refresh token is what entitles a client to revoke it
    (RFC 7009), so a client whose access token has expired can still log out.
    """
    state.security.logout(body.refresh_token)


async def _jwks(state: Platform) -> Any:
    return await run_in_threadpool(state.security.jwks)


@router.get("/auth/jwks", response_model=JwksOut, dependencies=Public)
async def jwks(state: PlatformDep) -> Any:
    """The public keys that verify access tokens (empty with HS256, which has none)."""
    return await _jwks(state)


@well_known_router.get("/.well-known/jwks.json", response_model=JwksOut, dependencies=Public)
async def well_known_jwks(state: PlatformDep) -> Any:
    """The JWKS at its conventional address."""
    return await _jwks(state)


@router.get("/auth/me", response_model=MeOut, dependencies=[Depends(authenticated())])
async def me(request: Request) -> Any:
    """Who the request authenticated as, with its roles per workspace."""
    principal = principal_of(request)
    if principal is None:
        return MeOut(id="anonymous", name="anonymous", kind="anonymous", roles={}, auth="off")
    return MeOut(
        id=principal.id,
        name=principal.name,
        kind=principal.kind,
        role=principal.role,
        roles={ws: list(roles) for ws, roles in principal.workspace_roles.items()},
        teams=sorted(principal.teams),
        auth=principal.auth,
        scopes=sorted(principal.scopes) if principal.scopes is not None else None,
    )


@router.post(
    "/auth/keys/rotate",
    response_model=RotatedKey,
    dependencies=[Depends(requires("users", "admin", site=True))],
)
def rotate_signing_key(request: Request, state: PlatformDep, body: RotateKey | None = None) -> Any:
    """Start signing with a new RS256/ES256 key; older keys verify for ``grace`` seconds."""
    actor = principal_of(request) or "anonymous"
    try:
        kid = state.security.rotate_signing_key(
            actor=actor, grace=body.grace if body is not None else None
        )
    except ConfigError as exc:  # HS256: nothing to rotate, a state of this server
        raise ConflictError(exc.message, hint=exc.hint) from None
    return {"kid": kid}
