"""Pipelines routes of the platform server."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.server.deps import PermissionRoute
from shipyard.server.schemas import ERROR_RESPONSES

router = APIRouter(route_class=PermissionRoute, responses=ERROR_RESPONSES, tags=["pipelines"])
