"""Model registry routes: registered models, versions, aliases with their gates and
history, and webhooks.

A refused promotion answers 409 with ``code: promotion_refused`` and the failing gate
terms in ``error.details.failing``.

Permissions: moving an alias is ``aliases:write``; when the alias has a gate it is a
promotion and also needs ``promotions:write``, and forcing it past its gate
``promotions:admin``, as does changing a gate. Alias moves (refused ones too), gate changes
and deletions are audited with their before and after.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from shipyard.errors import PromotionRefusedError
from shipyard.registry.store import RegistryStore
from shipyard.server.audit import record_model_change
from shipyard.server.deps import (
    PermissionRoute,
    Platform,
    authorize_also,
    note_resource,
    platform,
    principal_of,
    registry_store,
    requires,
    workspace,
)
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
PlatformDep = Annotated[Platform, Depends(platform)]
Workspace = Annotated[str, Depends(workspace)]
VersionNumber = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]
ReadModels = [Depends(requires("models", "read"))]
WriteModels = [Depends(requires("models", "write"))]
DeleteModels = [Depends(requires("models", "delete"))]
ReadAliases = [Depends(requires("aliases", "read"))]
WriteAliases = [Depends(requires("aliases", "write"))]
DeleteAliases = [Depends(requires("aliases", "delete"))]
# A gate decides what may reach production: changing one is administering promotions.
AdminPromotions = [Depends(requires("promotions", "admin"))]
# Webhook URLs often embed credentials (chat and CI hooks), so even listing them is admin.
AdminModels = [Depends(requires("models", "admin"))]


def _actor(request: Request, claimed: str) -> str:
    """Who moved an alias: with auth on the caller, never what the body claims."""
    caller = principal_of(request)
    return caller.id if caller is not None else claimed


# -- registered models ----------------------------------------------------------------------


@router.post("/models", status_code=201, response_model=ModelOut, dependencies=WriteModels)
def create_registered_model(body: ModelCreate, store: Store, request: Request) -> Any:
    model = store.create_registered_model(body.name, description=body.description, tags=body.tags)
    note_resource(request, model.name)
    return model


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


@router.delete("/models/{name}", status_code=204, dependencies=DeleteModels)
def delete_registered_model(
    name: str, store: Store, state: PlatformDep, request: Request, ws: Workspace
) -> None:
    model = store.get_registered_model(name)
    store.delete_registered_model(name)
    before = {"latest_version": model.latest_version, "aliases": model.aliases}
    record_model_change(request, state, "model.delete", name, before, None, workspace=ws)


@router.put("/models/{name}/tags/{key}", status_code=204, dependencies=WriteModels)
def set_registered_model_tag(name: str, key: str, body: TagValueBody, store: Store) -> None:
    store.set_registered_model_tag(name, key, body.value)


# -- versions -------------------------------------------------------------------------------


@router.post(
    "/models/{name}/versions", status_code=201, response_model=VersionOut, dependencies=WriteModels
)
def create_model_version(name: str, body: VersionCreate, store: Store, request: Request) -> Any:
    """Register a saved model folder (``source``) as the model's next version."""
    version = store.create_model_version(
        name,
        body.source,
        run_id=body.run_id,
        description=body.description,
        flavor=body.flavor,
        manifest_sha256=body.manifest_sha256,
        tags=body.tags,
    )
    note_resource(request, f"{name}/{version.version}")
    return version


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


@router.delete("/models/{name}/versions/{version}", status_code=204, dependencies=DeleteModels)
def delete_model_version(
    name: str,
    version: VersionNumber,
    store: Store,
    state: PlatformDep,
    request: Request,
    ws: Workspace,
) -> None:
    existing = store.get_model_version(name, version)
    store.delete_model_version(name, version)
    before = {
        "version": existing.version,
        "source": existing.source,
        "run_id": existing.run_id,
        "aliases": existing.aliases,
    }
    record_model_change(request, state, "model.version.delete", name, before, None, workspace=ws)


@router.put(
    "/models/{name}/versions/{version}/tags/{key}", status_code=204, dependencies=WriteModels
)
def set_model_version_tag(
    name: str, version: VersionNumber, key: str, body: TagValueBody, store: Store
) -> None:
    store.set_model_version_tag(name, version, key, body.value)


# -- aliases and gates ----------------------------------------------------------------------


@router.put(
    "/models/{name}/aliases/{alias}", response_model=AliasChangeOut, dependencies=WriteAliases
)
def set_alias(
    name: str,
    alias: str,
    body: AliasSet,
    store: Store,
    state: PlatformDep,
    request: Request,
    ws: Workspace,
) -> Any:
    """Point ``@alias`` at a version; the alias's gate must pass unless ``force``.

    A gated alias is a promotion (``promotions:write``); ``force`` needs
    ``promotions:admin``. Refused promotions are audited too.
    """
    model = store.get_registered_model(name)
    gated = alias in model.gates
    if gated:
        authorize_also(request, "promotions", "write", name)
    if body.force:
        authorize_also(request, "promotions", "admin", name)
    action = "model.promotion" if gated else "model.alias.set"
    before = {"alias": alias, "version": model.aliases.get(alias)}
    try:
        change = store.set_alias(
            name, alias, body.version, actor=_actor(request, body.actor), force=body.force
        )
    except PromotionRefusedError as exc:
        record_model_change(
            request,
            state,
            "model.promotion_refused",
            name,
            before,
            {"alias": alias, "version": body.version},
            workspace=ws,
            reason="; ".join(exc.failing),
        )
        raise
    record_model_change(
        request,
        state,
        action,
        name,
        {"alias": alias, "version": change.from_version},
        {"alias": alias, "version": change.to_version},
        workspace=ws,
        reason="forced past the gate" if body.force and gated else "",
    )
    return change


@router.get("/models/{name}/aliases/{alias}", response_model=VersionOut, dependencies=ReadAliases)
def get_version_by_alias(name: str, alias: str, store: Store) -> Any:
    return store.get_version_by_alias(name, alias)


@router.delete("/models/{name}/aliases/{alias}", status_code=204, dependencies=DeleteAliases)
def delete_alias(
    name: str,
    alias: str,
    store: Store,
    state: PlatformDep,
    request: Request,
    ws: Workspace,
    actor: str = "",
) -> None:
    model = store.get_registered_model(name)
    if alias in model.gates:
        authorize_also(request, "promotions", "write", name)
    store.delete_alias(name, alias, actor=_actor(request, actor))
    record_model_change(
        request,
        state,
        "model.alias.delete",
        name,
        {"alias": alias, "version": model.aliases.get(alias)},
        None,
        workspace=ws,
    )


@router.get(
    "/models/{name}/aliases/{alias}/history", response_model=AliasHistory, dependencies=ReadAliases
)
def alias_history(name: str, alias: str, store: Store) -> Any:
    """Every move of ``@alias``: from which version to which, by whom, when."""
    return {"changes": store.alias_history(name, alias)}


@router.get("/models/{name}/history", response_model=AliasHistory, dependencies=ReadAliases)
def model_alias_history(name: str, store: Store) -> Any:
    """Every alias move of the model."""
    return {"changes": store.alias_history(name)}


@router.get("/models/{name}/aliases/{alias}/at", response_model=VersionAt, dependencies=ReadAliases)
def version_at(
    name: str,
    alias: str,
    store: Store,
    time: Annotated[datetime, Query(description="ISO 8601 time; naive means UTC.")],
) -> Any:
    """Which version ``@alias`` pointed to at ``time`` (null if none)."""
    at = time if time.tzinfo is not None else time.replace(tzinfo=UTC)
    return {"version": store.version_at(name, alias, at)}


@router.put("/models/{name}/gates/{alias}", status_code=204, dependencies=AdminPromotions)
def set_gate(
    name: str,
    alias: str,
    body: GateSet,
    store: Store,
    state: PlatformDep,
    request: Request,
    ws: Workspace,
) -> None:
    """Require ``expression`` (e.g. ``accuracy >= 0.85``) before a version becomes @alias."""
    before = store.get_registered_model(name).gates.get(alias)
    store.set_gate(name, alias, body.expression)
    record_model_change(
        request,
        state,
        "model.gate.set",
        name,
        {"alias": alias, "gate": before},
        {"alias": alias, "gate": body.expression},
        workspace=ws,
    )


@router.delete("/models/{name}/gates/{alias}", status_code=204, dependencies=AdminPromotions)
def delete_gate(
    name: str, alias: str, store: Store, state: PlatformDep, request: Request, ws: Workspace
) -> None:
    before = store.get_registered_model(name).gates.get(alias)
    store.delete_gate(name, alias)
    record_model_change(
        request,
        state,
        "model.gate.delete",
        name,
        {"alias": alias, "gate": before},
        None,
        workspace=ws,
    )


# -- webhooks -------------------------------------------------------------------------------


@router.post("/webhooks", status_code=201, response_model=WebhookOut, dependencies=AdminModels)
def create_webhook(body: WebhookCreate, store: Store, request: Request) -> Any:
    """POST this workspace's registry events to ``url`` (signed when ``secret`` is set)."""
    webhook = store.create_webhook(body.url, events=body.events, secret=body.secret or None)
    note_resource(request, webhook.webhook_id)
    return webhook


@router.get("/webhooks", response_model=WebhookList, dependencies=AdminModels)
def list_webhooks(store: Store) -> Any:
    return {"webhooks": store.list_webhooks()}


@router.delete("/webhooks/{webhook_id}", status_code=204, dependencies=AdminModels)
def delete_webhook(webhook_id: str, store: Store) -> None:
    store.delete_webhook(webhook_id)
