"""HttpRegistryStore: the RegistryStore of a remote platform server, over its REST API.

A refused promotion comes back as PromotionRefusedError with ``failing`` set, as locally.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shipyard.registry.entities import AliasChange, ModelVersion, RegisteredModel, Webhook
from shipyard.registry.names import check_alias, check_model_name, check_tag_key, check_version
from shipyard.types import Page

if TYPE_CHECKING:
    from shipyard._http import HttpSession

__all__ = ["HttpRegistryStore"]


def _q(segment: object) -> str:
    return quote(str(segment), safe="")


# Names travel in URL paths, where '' or '/' cannot; they are checked here with the
# messages a local store gives, before a URL is built from them.
def _m(name: str) -> str:
    return _q(check_model_name(name))


def _v(version: int) -> int:
    return check_version(version)


def model_from_json(d: Mapping[str, Any]) -> RegisteredModel:
    return RegisteredModel(
        name=d["name"],
        workspace=d["workspace"],
        created_at=datetime.fromisoformat(d["created_at"]),
        updated_at=datetime.fromisoformat(d["updated_at"]),
        description=d.get("description", ""),
        latest_version=d.get("latest_version"),
        aliases=dict(d.get("aliases") or {}),
        gates=dict(d.get("gates") or {}),
        tags=dict(d.get("tags") or {}),
    )


def version_from_json(d: Mapping[str, Any]) -> ModelVersion:
    return ModelVersion(
        name=d["name"],
        version=int(d["version"]),
        workspace=d["workspace"],
        source=d["source"],
        run_id=d.get("run_id"),
        status=d["status"],
        created_at=datetime.fromisoformat(d["created_at"]),
        updated_at=datetime.fromisoformat(d["updated_at"]),
        description=d.get("description", ""),
        flavor=d.get("flavor", ""),
        manifest_sha256=d.get("manifest_sha256", ""),
        aliases=list(d.get("aliases") or []),
        tags=dict(d.get("tags") or {}),
    )


def alias_change_from_json(d: Mapping[str, Any]) -> AliasChange:
    return AliasChange(
        name=d["name"],
        alias=d["alias"],
        from_version=d.get("from_version"),
        to_version=d.get("to_version"),
        actor=d.get("actor", ""),
        at=datetime.fromisoformat(d["at"]),
        reason=d.get("reason", ""),
    )


def webhook_from_json(d: Mapping[str, Any]) -> Webhook:
    return Webhook(
        webhook_id=d["webhook_id"],
        workspace=d["workspace"],
        url=d["url"],
        events=list(d.get("events") or []),
        created_at=datetime.fromisoformat(d["created_at"]),
    )


class HttpRegistryStore:
    """A RegistryStore served by a Shipyard platform server.

    Example::

        registry = HttpRegistryStore(HttpSession("http://mlops.internal:5005"), "team-a")
        registry.set_alias("churn", "prod", 3)

    Args:
        http: the session to the server.
        workspace: workspace every request targets.
    """

    def __init__(self, http: HttpSession, workspace: str = "default") -> None:
        self._http = http
        self.workspace = workspace

    def __repr__(self) -> str:
        return f"HttpRegistryStore('{self._http.base_url}', workspace={self.workspace!r})"

    def for_workspace(self, workspace: str) -> HttpRegistryStore:
        return HttpRegistryStore(self._http, workspace)

    def _call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = self._http.request(method, path, json=body, workspace=self.workspace, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # -- registered models ------------------------------------------------------------------

    def create_registered_model(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        body = {"name": name, "description": description, "tags": dict(tags or {})}
        return model_from_json(self._call("POST", "/models", body))

    def get_registered_model(self, name: str) -> RegisteredModel:
        return model_from_json(self._call("GET", f"/models/{_m(name)}"))

    def list_registered_models(
        self, *, max_results: int = 100, page_token: str | None = None
    ) -> Page[RegisteredModel]:
        params: dict[str, Any] = {"max_results": max_results}
        if page_token:
            params["page_token"] = page_token
        body = self._call("GET", "/models", params=params)
        return Page([model_from_json(m) for m in body["models"]], body.get("next_page_token"))

    def update_registered_model(self, name: str, *, description: str) -> RegisteredModel:
        body = {"description": description}
        return model_from_json(self._call("PATCH", f"/models/{_m(name)}", body))

    def delete_registered_model(self, name: str) -> None:
        self._call("DELETE", f"/models/{_m(name)}")

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self._call("PUT", f"/models/{_m(name)}/tags/{_q(check_tag_key(key))}", {"value": value})

    # -- versions ---------------------------------------------------------------------------

    def create_model_version(
        self,
        name: str,
        source: str,
        *,
        run_id: str | None = None,
        description: str = "",
        flavor: str = "",
        manifest_sha256: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        body = {
            "source": source,
            "run_id": run_id,
            "description": description,
            "flavor": flavor,
            "manifest_sha256": manifest_sha256,
            "tags": dict(tags or {}),
        }
        return version_from_json(self._call("POST", f"/models/{_m(name)}/versions", body))

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        return version_from_json(self._call("GET", f"/models/{_m(name)}/versions/{_v(version)}"))

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        body = self._call("GET", f"/models/{_m(name)}/versions")
        return [version_from_json(v) for v in body["versions"]]

    def update_model_version(self, name: str, version: int, *, description: str) -> ModelVersion:
        path = f"/models/{_m(name)}/versions/{_v(version)}"
        return version_from_json(self._call("PATCH", path, {"description": description}))

    def set_model_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        path = f"/models/{_m(name)}/versions/{_v(version)}/tags/{_q(check_tag_key(key))}"
        self._call("PUT", path, {"value": value})

    def delete_model_version(self, name: str, version: int) -> None:
        self._call("DELETE", f"/models/{_m(name)}/versions/{_v(version)}")

    # -- aliases and gates ------------------------------------------------------------------

    def set_gate(self, name: str, alias: str, expression: str) -> None:
        self._call("PUT", f"/models/{_m(name)}/gates/{_q(alias)}", {"expression": expression})

    def delete_gate(self, name: str, alias: str) -> None:
        self._call("DELETE", f"/models/{_m(name)}/gates/{_q(alias)}")

    def set_alias(
        self, name: str, alias: str, version: int, *, actor: str = "", force: bool = False
    ) -> AliasChange:
        check_alias(alias)
        body = {"version": _v(version), "actor": actor, "force": force}
        return alias_change_from_json(
            self._call("PUT", f"/models/{_m(name)}/aliases/{_q(alias)}", body)
        )

    def delete_alias(self, name: str, alias: str, *, actor: str = "") -> None:
        params = {"actor": actor} if actor else None
        self._call("DELETE", f"/models/{_m(name)}/aliases/{_q(alias)}", params=params)

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return version_from_json(self._call("GET", f"/models/{_m(name)}/aliases/{_q(alias)}"))

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        if alias is None:
            body = self._call("GET", f"/models/{_m(name)}/history")
        else:
            body = self._call("GET", f"/models/{_m(name)}/aliases/{_q(alias)}/history")
        return [alias_change_from_json(c) for c in body["changes"]]

    def version_at(self, name: str, alias: str, at: datetime) -> int | None:
        when = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        body = self._call(
            "GET", f"/models/{_m(name)}/aliases/{_q(alias)}/at", params={"time": when.isoformat()}
        )
        return body["version"]  # type: ignore[no-any-return]

    # -- webhooks ---------------------------------------------------------------------------

    def create_webhook(
        self, url: str, *, events: list[str] | None = None, secret: str | None = None
    ) -> Webhook:
        body: dict[str, Any] = {"url": url, "events": events}
        if secret:
            body["secret"] = secret
        return webhook_from_json(self._call("POST", "/webhooks", body))

    def list_webhooks(self) -> list[Webhook]:
        return [webhook_from_json(w) for w in self._call("GET", "/webhooks")["webhooks"]]

    def delete_webhook(self, webhook_id: str) -> None:
        self._call("DELETE", f"/webhooks/{_q(webhook_id)}")
