"""``FeatureStore``: one object for definitions, training sets and online features.

It reads definitions from the registry in the metadata database (``SHIPYARD_DB``),
historical features from each view's source through the offline store, and online
features from the online store (SQLite under ``SHIPYARD_HOME`` by default, or Redis).

Example::

    store = FeatureStore()
    store.apply([driver, driver_stats, driver_model])
    training = store.get_historical_features(entity_df, "driver_model").to_df()
    store.materialize_incremental(datetime.now(timezone.utc))
    online = store.get_online_features("driver_model", [{"driver_id": 1001}]).to_dict()
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shipyard.errors import FeatureViewNotFoundError, InvalidArgumentError, NotFoundError
from shipyard.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    FeatureViewProjection,
    OnDemandFeatureView,
    definition_from_spec,
    view_from_spec,
)
from shipyard.features.sources import KafkaSource, PushSource

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.config import Settings
    from shipyard.features.online import OnlineStore
    from shipyard.features.online_read import OnlineResponse
    from shipyard.features.plan import Plan
    from shipyard.features.registry import SqlFeatureRegistry
    from shipyard.features.retrieval import RetrievalJob

logger = logging.getLogger(__name__)

FeatureList = Sequence[str] | FeatureService | str


class _Catalog:
    """Registered definitions as objects, rebuilt when the registry changes."""

    def __init__(self, stored: list[Any]) -> None:
        self.entities: dict[str, Entity] = {}
        self.views: dict[str, FeatureView] = {}
        self.on_demand: dict[str, OnDemandFeatureView] = {}
        self.services: dict[str, FeatureService] = {}
        self.sources: dict[str, PushSource | KafkaSource] = {}
        later = []
        for item in stored:
            kind = item.kind
            if kind == "entity":
                self.entities[item.name] = definition_from_spec(item.spec)  # type: ignore[assignment]
            elif kind == "feature_view":
                self.views[item.name] = view_from_spec(item.spec)
            elif kind in ("push_source", "kafka_source"):
                self.sources[item.name] = definition_from_spec(item.spec)  # type: ignore[assignment]
            else:
                later.append(item)
        for view in self.views.values():
            if isinstance(view.source, PushSource | KafkaSource):
                self.sources.setdefault(view.source.name, view.source)
        for kind in ("on_demand_feature_view", "feature_service"):
            for item in later:
                if item.kind != kind:
                    continue
                views: dict[str, Any] = {**self.views, **self.on_demand}
                try:
                    obj = definition_from_spec(item.spec, views)
                except InvalidArgumentError as exc:
                    # A forced apply can leave a service pointing at a dropped feature;
                    # one broken object must not hide every other definition.
                    logger.warning("Skipping %s '%s': %s", item.kind, item.name, exc)
                    continue
                if isinstance(obj, OnDemandFeatureView):
                    self.on_demand[item.name] = obj
                else:
                    self.services[item.name] = obj  # type: ignore[assignment]


class FeatureStore:
    """Definitions, offline and online features of one workspace.

    Args:
        settings: Configuration (``load_settings()`` when None): the metadata DB holds the
            registry, the artifact root holds push/stream offline logs.
        online_url: ``sqlite:///path`` or ``redis://host:port/db``; default the
            ``online_store`` setting (``SHIPYARD_ONLINE_STORE``), else SQLite at
            ``SHIPYARD_HOME/online.db``.
        workspace: Workspace of the definitions; default ``settings.workspace``.
        registry_ttl: Seconds between checks that the cached definitions are current.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        online_url: str | None = None,
        workspace: str | None = None,
        registry_ttl: float = 5.0,
    ) -> None:
        if settings is None:
            from shipyard.config import load_settings

            settings = load_settings()
        self.settings = settings
        self.workspace = workspace or settings.workspace
        self.online_url = (
            online_url or settings.online_store or f"sqlite:///{settings.home / 'online.db'}"
        )
        self.registry_ttl = registry_ttl
        self._registry: SqlFeatureRegistry | None = None
        self._online: OnlineStore | None = None
        self._catalog: _Catalog | None = None
        self._token: Any = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FeatureStore(workspace={self.workspace!r}, online={self.online_url!r})"

    # -- registry ----------------------------------------------------------------------

    @property
    def registry(self) -> SqlFeatureRegistry:
        """The definitions store in the metadata database."""
        if self._registry is None:
            from shipyard.features.registry import SqlFeatureRegistry
            from shipyard.store.db import engine_for
            from shipyard.store.workspaces import require_workspace

            engine = engine_for(self.settings.db)
            require_workspace(engine, self.workspace)
            self._registry = SqlFeatureRegistry(engine, self.workspace)
        return self._registry

    def _specs(self, objects: Iterable[Any]) -> list[dict[str, Any]]:
        """Specs of the objects and of what they embed (entities, push/Kafka sources,
        views of services), with entities given by name resolved to their join keys."""
        found: dict[tuple[str, str], Any] = {}

        def add(obj: Any) -> None:
            if isinstance(obj, FeatureViewProjection):
                obj = obj.view
            key = (obj.to_spec()["kind"], obj.name)
            if key in found:
                return
            found[key] = obj
            if isinstance(obj, FeatureView):
                for entity in getattr(obj, "_entity_objects", {}).values():
                    add(entity)
                if isinstance(obj.source, PushSource | KafkaSource):
                    add(obj.source)
            elif isinstance(obj, FeatureService):
                for item in obj.features:
                    add(item)
            elif isinstance(obj, OnDemandFeatureView):
                for source in obj.sources:
                    if isinstance(source, FeatureView | FeatureViewProjection):
                        add(source)

        for obj in objects:
            if not hasattr(obj, "to_spec"):
                raise InvalidArgumentError(
                    f"Cannot apply {obj!r}: not a feature definition.",
                    hint="Apply Entity, FeatureView, OnDemandFeatureView, FeatureService, "
                    "PushSource or KafkaSource objects.",
                )
            add(obj)
        entities = {name: obj for (kind, name), obj in found.items() if kind == "entity"}
        specs = []
        for obj in found.values():
            if isinstance(obj, FeatureView) and not obj.entity_columns:
                obj = self._resolve(obj, entities)
            specs.append(obj.to_spec())
        return specs

    def _resolve(self, view: FeatureView, entities: dict[str, Entity]) -> FeatureView:
        known = dict(entities)
        for name in view.entities:
            if name not in known:
                with contextlib.suppress(NotFoundError):
                    known[name] = self.get_entity(name)
        return view.with_entities([known[n] for n in view.entities if n in known])

    def plan(self, objects: Iterable[Any], *, prune: bool = False) -> Plan:
        """What :meth:`apply` would change, without changing anything."""
        return self.registry.plan(self._specs(objects), prune=prune)

    def apply(self, objects: Iterable[Any], *, prune: bool = False, force: bool = False) -> Plan:
        """Store definitions as new versions where they changed.

        Args:
            objects: Definitions; entities, sources and views they embed come along.
            prune: Remove registered objects missing from ``objects`` (a whole repo).
            force: Apply even incompatible changes.

        Raises:
            IncompatibleChangeError: incompatible changes without ``force``.
        """
        plan = self.registry.apply(self._specs(objects), prune=prune, force=force)
        self.refresh()
        return plan

    def refresh(self) -> None:
        """Drop cached definitions; the next lookup reads the registry again."""
        with self._lock:
            self._catalog = None
            self._checked = 0.0

    def _current(self) -> _Catalog:
        now = time.monotonic()
        with self._lock:
            if self._catalog is not None and now - self._checked < self.registry_ttl:
                return self._catalog
            token = self.registry.state_token()
            if self._catalog is None or token != self._token:
                self._catalog = _Catalog(self.registry.list())
                self._token = token
            self._checked = now
            return self._catalog

    def get_entity(self, name: str) -> Entity:
        """A registered entity; NotFoundError when there is none."""
        entity = self._current().entities.get(name)
        if entity is None:
            raise NotFoundError(
                f"No entity '{name}' in workspace '{self.workspace}'.",
                hint="Apply it with `shipyard features apply`.",
            )
        return entity

    def get_feature_view(self, name: str, version: int | None = None) -> FeatureView:
        """A registered view (its current version, or ``version``).

        Raises:
            FeatureViewNotFoundError: no such view.
        """
        if version is not None:
            try:
                return view_from_spec(self.registry.get("feature_view", name, version).spec)
            except NotFoundError:
                raise self._no_view(name) from None
        view = self._current().views.get(name)
        if view is None:
            raise self._no_view(name)
        return view

    def _no_view(self, name: str) -> FeatureViewNotFoundError:
        from shipyard.errors import did_you_mean

        catalog = self._current()
        known = [*catalog.views, *catalog.on_demand]
        return FeatureViewNotFoundError(
            f"No feature view '{name}' in workspace '{self.workspace}'.{did_you_mean(name, known)}",
            hint="List views with `shipyard features list`.",
        )

    def get_on_demand_feature_view(self, name: str) -> OnDemandFeatureView:
        """A registered on-demand view; FeatureViewNotFoundError when there is none."""
        view = self._current().on_demand.get(name)
        if view is None:
            raise self._no_view(name)
        return view

    def get_feature_service(self, name: str) -> FeatureService:
        """A registered feature service; NotFoundError when there is none."""
        service = self._current().services.get(name)
        if service is None:
            raise NotFoundError(
                f"No feature service '{name}' in workspace '{self.workspace}'.",
                hint="List services with `shipyard features list`.",
            )
        return service

    def get_data_source(self, name: str) -> PushSource | KafkaSource:
        """A push or Kafka source by name."""
        source = self._current().sources.get(name)
        if source is None:
            raise NotFoundError(
                f"No push or Kafka source '{name}' in workspace '{self.workspace}'."
            )
        return source

    def list_entities(self) -> list[Entity]:
        """Registered entities, by name."""
        return list(self._current().entities.values())

    def list_feature_views(self) -> list[FeatureView]:
        """Registered feature views (current versions), by name."""
        return list(self._current().views.values())

    def list_on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        """Registered on-demand views, by name."""
        return list(self._current().on_demand.values())

    def list_feature_services(self) -> list[FeatureService]:
        """Registered feature services, by name."""
        return list(self._current().services.values())

    # -- offline -------------------------------------------------------------------------

    def resolve(
        self, features: FeatureList
    ) -> tuple[
        list[tuple[FeatureView, tuple[str, ...]]], list[tuple[OnDemandFeatureView, tuple[str, ...]]]
    ]:
        """Group feature references (or a service) by view, in first-use order."""
        if isinstance(features, str):
            features = self.get_feature_service(features)
        if isinstance(features, FeatureService):
            refs = features.feature_refs
            objects = {item.name: getattr(item, "view", item) for item in features.features}
        else:
            refs = list(features)
            objects = {}
        grouped: dict[str, tuple[Any, list[str]]] = {}
        for ref in refs:
            view_name, sep, feature = ref.partition(":")
            if not sep or not feature:
                raise InvalidArgumentError(
                    f"Feature reference {ref!r} is not 'view:feature'.",
                    hint="Write references like 'driver_stats:conv_rate'.",
                )
            if view_name not in grouped:
                view = objects.get(view_name) or self._lookup(view_name)
                grouped[view_name] = (view, [])
            view, names = grouped[view_name]
            if feature not in view.feature_names:
                from shipyard.errors import did_you_mean

                raise InvalidArgumentError(
                    f"View '{view_name}' has no feature '{feature}'."
                    f"{did_you_mean(feature, view.feature_names)}",
                    hint=f"Its features: {', '.join(view.feature_names)}.",
                )
            if feature not in names:
                names.append(feature)
        stored = [(v, tuple(n)) for v, n in grouped.values() if isinstance(v, FeatureView)]
        on_demand = [
            (v, tuple(n)) for v, n in grouped.values() if isinstance(v, OnDemandFeatureView)
        ]
        return stored, on_demand

    def _lookup(self, name: str) -> FeatureView | OnDemandFeatureView:
        catalog = self._current()
        if name in catalog.views:
            return catalog.views[name]
        if name in catalog.on_demand:
            return catalog.on_demand[name]
        raise self._no_view(name)

    def get_historical_features(
        self,
        entity_df: Any,
        features: FeatureList,
        *,
        full_feature_names: bool = False,
        timestamp_column: str | None = None,
    ) -> RetrievalJob:
        """A training set: the entity frame with each feature as of each row's timestamp.

        Args:
            entity_df: pandas DataFrame, Arrow table or Parquet path with the join keys and
                ``event_timestamp``. Every row is kept, in order, duplicates included.
            features: ``["view:feature", ...]``, a FeatureService or a service's name.
            full_feature_names: Name columns ``view__feature``.
            timestamp_column: The entity frame's time column if not ``event_timestamp``.

        Returns:
            A lazy :class:`RetrievalJob`: ``.to_arrow()``, ``.to_df()``, ``.save_dataset()``.
        """
        from shipyard.features.offline import ViewRequest, historical_features
        from shipyard.features.retrieval import RetrievalJob

        stored, on_demand = self.resolve(features)
        requests = [ViewRequest(view, names) for view, names in stored]

        def compute() -> pa.Table:
            return historical_features(
                entity_df,
                requests,
                on_demand,
                full_feature_names=full_feature_names,
                timestamp_column=timestamp_column,
                artifacts_url=self.settings.artifacts,
            )

        refs = [f"{v.name}:{f}" for v, names in [*stored, *on_demand] for f in names]
        return RetrievalJob(compute, refs, settings=self.settings, workspace=self.workspace)

    def read_latest(self, view: str | FeatureView, start: datetime, end: datetime) -> pa.Table:
        """Latest row per entity with event time in ``[start, end)`` (for materialize)."""
        from shipyard.features.offline import read_latest

        view = self.get_feature_view(view) if isinstance(view, str) else view
        return read_latest(view, start, end, artifacts_url=self.settings.artifacts)

    # -- online (delegated to the online store modules) ------------------------------------

    @property
    def online_store(self) -> OnlineStore:
        """The online store, opened on first use."""
        if self._online is None:
            from shipyard.features.online import open_online_store

            with self._lock:
                if self._online is None:
                    self._online = open_online_store(self.online_url)
        return self._online

    def materialize(
        self, start: datetime, end: datetime, views: Sequence[str | FeatureView] | None = None
    ) -> dict[str, Any]:
        """Copy the latest row per entity in ``[start, end)`` of online views to the online
        store."""
        from shipyard.features.materialize import materialize

        return materialize(self, views, start, end)

    def materialize_incremental(
        self, end: datetime, views: Sequence[str | FeatureView] | None = None
    ) -> dict[str, Any]:
        """Materialize from each view's watermark (or ``end - ttl``) up to ``end``."""
        from shipyard.features.materialize import materialize_incremental

        return materialize_incremental(self, end, views)

    def push(self, push_source_name: str, df: Any, **kwargs: Any) -> dict[str, Any]:
        """Write rows to the views of a push source (online and offline log)."""
        from shipyard.features.push import push

        return push(self, push_source_name, df, **kwargs)

    def write_to_online_store(self, view_name: str, df: Any) -> int:
        """Write rows straight to a view's online table; returns rows stored."""
        from shipyard.features.push import coerce_push_table

        view = self.get_feature_view(view_name)
        return self.online_store.write(view, coerce_push_table(view, df))

    def get_online_features(
        self,
        features: FeatureList,
        entity_rows: Sequence[dict[str, Any]],
        *,
        full_feature_names: bool = False,
    ) -> OnlineResponse:
        """Current feature values (and a status per value) for some entities."""
        from shipyard.features.online_read import get_online_features

        return get_online_features(
            self, features, entity_rows, full_feature_names=full_feature_names
        )

    def close(self) -> None:
        """Close the online store connection (the store can be used again after)."""
        if self._online is not None:
            self._online.close()
            self._online = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["FeatureStore"]
