"""Health routes: ``/health`` and ``/api/v1/health``, cheap enough for tight probes.

They touch no database: a probe answers whether the process serves requests.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from shipyard import __version__
from shipyard.server.deps import PermissionRoute, public
from shipyard.server.schemas import Health

__all__ = ["router"]

router = APIRouter(route_class=PermissionRoute, tags=["health"])

_HEALTH = Health(version=__version__)


# Probes carry no credentials: health is public, and touches nothing worth protecting.
_READ = [Depends(public())]


@router.get("/health", response_model=Health, dependencies=_READ)
async def health() -> Health:
    """``{"status": "ok"}`` while the server is up."""
    return _HEALTH


@router.get("/api/v1/health", response_model=Health, dependencies=_READ)
async def api_health() -> Health:
    """Same as ``/health``, under the API prefix."""
    return _HEALTH
