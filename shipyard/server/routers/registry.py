"""Model registry routes: registered models, versions, aliases with their gates and
history, and webhooks.

A refused promotion answers 409 with ``code: promotion_refused`` and the failing gate
terms in ``error.details.failing``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from shipyard.registry.store import RegistryStore
from shipyard.server.deps import PermissionRoute, registry_store, requires
from shipyard.server.schemas import (
    ERROR_RESPONSES,
    AliasChangeOut,
    AliasHistory,
    AliasSet,
    DescriptionUpdate,
    GateSet,
    ModelCreate,
    ModelList,
    ModelOut,
    TagValueBody,
    VersionAt,
    VersionCreate,
    VersionList,
    VersionOut,
    WebhookCreate,
    WebhookList,
    WebhookOut,
)

__all__ = ["router"]

router = APIRouter(route_class=PermissionRoute, responses=ERROR_RESPONSES, tags=["registry"])

Store = Annotated[RegistryStore, Depends(registry_store)]
VersionNumber = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]
ReadModels = [Depends(requires("models", "read"))]
WriteModels = [Depends(requires("models", "write"))]
# Moving an alias is what deploys a model, so it is a permission of its own.
PromoteModels = [Depends(requires("models", "promote"))]
ReadWebhooks = [Depends(requires("webhooks", "read"))]
WriteWebhooks = [Depends(requires("webhooks", "write"))]


# -- registered models ----------------------------------------------------------------------


@router.post("/models", status_code=201, response_model=ModelOut, dependencies=WriteModels)
def create_registered_model(body: ModelCreate, store: Store) -> Any:
    return store.create_registered_model(body.name, description=body.description, tags=body.tags)


@router.get("/models", response_model=ModelList, dependencies=ReadModels)
def list_registered_models(
    store: Store,
    max_results: Annotated[int, Query(ge=-(2**63), le=2**63 - 1)] = 100,
    page_token: str | None = None,
) -> Any:
    page = store.list_registered_models(max_results=max_results, page_token=page_token)
    return {"models": page.items, "next_page_token": page.next_page_token}


@router.get("/models/{name}", response_model=ModelOut, dependencies=ReadModels)
def get_registered_model(name: str, store: Store) -> Any:
    return store.get_registered_model(name)


@router.patch("/models/{name}", response_model=ModelOut, dependencies=WriteModels)
def update_registered_model(name: str, body: DescriptionUpdate, store: Store) -> Any:
    return store.update_registered_model(name, description=body.description)


@router.delete("/models/{name}", status_code=204, dependencies=WriteModels)
def delete_registered_model(name: str, store: Store) -> None:
    store.delete_registered_model(name)


@router.put("/models/{name}/tags/{key}", status_code=204, dependencies=WriteModels)
def set_registered_model_tag(name: str, key: str, body: TagValueBody, store: Store) -> None:
    store.set_registered_model_tag(name, key, body.value)


# -- versions -------------------------------------------------------------------------------


@router.post(
    "/models/{name}/versions", status_code=201, response_model=VersionOut, dependencies=WriteModels
)
def create_model_version(name: str, body: VersionCreate, store: Store) -> Any:
    """Register a saved model folder (``source``) as the model's next version."""
    return store.create_model_version(
        name,
        body.source,
        run_id=body.run_id,
        description=body.description,
        flavor=body.flavor,
        manifest_sha256=body.manifest_sha256,
        tags=body.tags,
    )


@router.get("/models/{name}/versions", response_model=VersionList, dependencies=ReadModels)
def list_model_versions(name: str, store: Store) -> Any:
    return {"versions": store.list_model_versions(name)}


@router.get("/models/{name}/versions/{version}", response_model=VersionOut, dependencies=ReadModels)
def get_model_version(name: str, version: VersionNumber, store: Store) -> Any:
    return store.get_model_version(name, version)


@router.patch(
    "/models/{name}/versions/{version}", response_model=VersionOut, dependencies=WriteModels
)
def update_model_version(
    name: str, version: VersionNumber, body: DescriptionUpdate, store: Store
) -> Any:
    return store.update_model_version(name, version, description=body.description)


@router.delete("/models/{name}/versions/{version}", status_code=204, dependencies=WriteModels)
def delete_model_version(name: str, version: VersionNumber, store: Store) -> None:
    store.delete_model_version(name, version)


@router.put(
    "/models/{name}/versions/{version}/tags/{key}", status_code=204, dependencies=WriteModels
)
def set_model_version_tag(
    name: str, version: VersionNumber, key: str, body: TagValueBody, store: Store
) -> None:
    store.set_model_version_tag(name, version, key, body.value)


# -- aliases and gates ----------------------------------------------------------------------


@router.put(
    "/models/{name}/aliases/{alias}", response_model=AliasChangeOut, dependencies=PromoteModels
)
def set_alias(name: str, alias: str, body: AliasSet, store: Store) -> Any:
    """Point ``@alias`` at a version; the alias's gate must pass unless ``force``."""
    return store.set_alias(name, alias, body.version, actor=body.actor, force=body.force)


@router.get("/models/{name}/aliases/{alias}", response_model=VersionOut, dependencies=ReadModels)
def get_version_by_alias(name: str, alias: str, store: Store) -> Any:
    return store.get_version_by_alias(name, alias)


@router.delete("/models/{name}/aliases/{alias}", status_code=204, dependencies=PromoteModels)
def delete_alias(
    name: str,
    alias: str,
    store: Store,
    actor: str = "",
) -> None:
    store.delete_alias(name, alias, actor=actor)


@router.get(
    "/models/{name}/aliases/{alias}/history", response_model=AliasHistory, dependencies=ReadModels
)
def alias_history(name: str, alias: str, store: Store) -> Any:
    """Every move of ``@alias``: from which version to which, by whom, when."""
    return {"changes": store.alias_history(name, alias)}


@router.get("/models/{name}/history", response_model=AliasHistory, dependencies=ReadModels)
def model_alias_history(name: str, store: Store) -> Any:
    """Every alias move of the model."""
    return {"changes": store.alias_history(name)}


@router.get("/models/{name}/aliases/{alias}/at", response_model=VersionAt, dependencies=ReadModels)
def version_at(
    name: str,
    alias: str,
    store: Store,
    time: Annotated[datetime, Query(description="ISO 8601 time; naive means UTC.")],
) -> Any:
    """Which version ``@alias`` pointed to at ``time`` (null if none)."""
    at = time if time.tzinfo is not None else time.replace(tzinfo=UTC)
    return {"version": store.version_at(name, alias, at)}


@router.put("/models/{name}/gates/{alias}", status_code=204, dependencies=PromoteModels)
def set_gate(name: str, alias: str, body: GateSet, store: Store) -> None:
    """Require ``expression`` (e.g. ``accuracy >= 0.85``) before a version becomes @alias."""
    store.set_gate(name, alias, body.expression)


@router.delete("/models/{name}/gates/{alias}", status_code=204, dependencies=PromoteModels)
def delete_gate(name: str, alias: str, store: Store) -> None:
    store.delete_gate(name, alias)


# -- webhooks -------------------------------------------------------------------------------


@router.post("/webhooks", status_code=201, response_model=WebhookOut, dependencies=WriteWebhooks)
def create_webhook(body: WebhookCreate, store: Store) -> Any:
    """POST this workspace's registry events to ``url`` (signed when ``secret`` is set)."""
    return store.create_webhook(body.url, events=body.events, secret=body.secret or None)


@router.get("/webhooks", response_model=WebhookList, dependencies=ReadWebhooks)
def list_webhooks(store: Store) -> Any:
    return {"webhooks": store.list_webhooks()}


@router.delete("/webhooks/{webhook_id}", status_code=204, dependencies=WriteWebhooks)
def delete_webhook(webhook_id: str, store: Store) -> None:
    store.delete_webhook(webhook_id)
