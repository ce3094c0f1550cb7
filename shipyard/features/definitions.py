"""Feature definitions, with Feast's names: entities, fields, views, on-demand views, services.

Definitions are plain Python objects written in a repo module and stored in the registry
as JSON specs (``to_spec``/``definition_from_spec``). Feature references are strings
``"view:feature"``; ``view[["a", "b"]]`` selects some features of a view.

Example::

    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    driver_stats = FeatureView(
        name="driver_stats",
        entities=[driver],
        schema=[Field(name="conv_rate", dtype=Float32), Field(name="trips", dtype=Int64)],
        source=FileSource(path="data/driver_stats.parquet", timestamp_field="event_timestamp"),
        ttl=timedelta(hours=2),
    )
    service = FeatureService(name="driver_model", features=[driver_stats[["conv_rate"]]])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shipyard.features._validate import check_column, check_name, check_tags, check_ttl, invalid
from shipyard.features.sources import (
    BatchSource,
    DataSource,
    FileSource,
    KafkaSource,
    PushSource,
    SqlSource,
    source_from_spec,
)
from shipyard.features.transforms import (
    Normalize,
    Transform,
    as_transform,
    transform_from_spec,
)
from shipyard.features.types import UNKNOWN, DType, ValueType, dtype_named


@dataclass(frozen=True)
class Field:
    """A typed column of a view: ``Field(name="conv_rate", dtype=Float32)``."""

    name: str
    dtype: DType
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_column("Field", str(self.name), "name", self.name)
        if not isinstance(self.dtype, DType):
            raise invalid(
                "Field",
                self.name,
                "dtype",
                f"must be a shipyard.features.types dtype (Float32, Int64, String...); "
                f"got {self.dtype!r}.",
            )
        object.__setattr__(self, "tags", check_tags("Field", self.name, self.tags))

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": self.name, "dtype": self.dtype.name}
        if self.description:
            spec["description"] = self.description
        if self.tags:
            spec["tags"] = self.tags
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Field:
        return cls(
            spec["name"],
            dtype_named(spec["dtype"]),
            spec.get("description", ""),
            spec.get("tags", {}),
        )


@dataclass(frozen=True)
class Entity:
    """What features describe (a driver, a customer), identified by its join keys.

    ``join_keys`` defaults to ``[name]``, as in Feast.
    """

    name: str
    join_keys: tuple[str, ...] = ()
    value_type: ValueType = ValueType.UNKNOWN
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("Entity", self.name)
        keys = tuple(self.join_keys) if self.join_keys else (self.name,)
        if isinstance(self.join_keys, str):
            raise invalid("Entity", self.name, "join_keys", "must be a list of column names.")
        for key in keys:
            check_column("Entity", self.name, "join_keys", key)
        if len(set(keys)) != len(keys):
            raise invalid("Entity", self.name, "join_keys", f"has duplicates: {list(keys)}.")
        object.__setattr__(self, "join_keys", keys)
        try:
            object.__setattr__(self, "value_type", ValueType(self.value_type))
        except ValueError:
            raise invalid(
                "Entity",
                self.name,
                "value_type",
                f"must be one of {[v.value for v in ValueType]}; got {self.value_type!r}.",
            ) from None
        object.__setattr__(self, "tags", check_tags("Entity", self.name, self.tags))

    @property
    def join_key(self) -> str:
        return self.join_keys[0]

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": "entity",
            "name": self.name,
            "join_keys": list(self.join_keys),
            "value_type": self.value_type.value,
            "description": self.description,
            "owner": self.owner,
            "tags": self.tags,
        }


@dataclass(frozen=True)
class FeatureViewProjection:
    """Some features of a view, made by ``view[["a", "b"]]``."""

    view: FeatureView | OnDemandFeatureView
    features: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def feature_refs(self) -> list[str]:
        return [f"{self.view.name}:{f}" for f in self.features]


class _Selectable:
    name: str

    @property
    def feature_names(self) -> list[str]:
        raise NotImplementedError

    def __getitem__(self, names: Sequence[str]) -> FeatureViewProjection:
        if isinstance(names, str):
            names = [names]
        unknown = [n for n in names if n not in self.feature_names]
        if unknown:
            raise invalid(
                type(self).__name__,
                self.name,
                "features",
                f"has no {unknown}; it has {self.feature_names}.",
            )
        return FeatureViewProjection(self, tuple(names))  # type: ignore[arg-type]

    @property
    def feature_refs(self) -> list[str]:
        return [f"{self.name}:{f}" for f in self.feature_names]


def _entity_name(view: str, entity: Any) -> str:
    if isinstance(entity, Entity):
        return entity.name
    if isinstance(entity, str):
        return check_name("Entity", entity)
    raise invalid(
        "FeatureView", view, "entities", f"must hold Entity objects or names; got {entity!r}."
    )


@dataclass(frozen=True, eq=False)
class FeatureView(_Selectable):
    """Features of some entities read from one source, valid for ``ttl`` after their event.

    Args:
        name: Unique name; feature references are ``"name:feature"``.
        entities: Entities (or their names) whose join keys identify a row.
        schema: The feature fields (join-key fields may be listed too; they are split off).
        source: FileSource, SqlSource, PushSource or KafkaSource.
        ttl: How long a feature row stays valid; None means forever.
        online: Whether ``materialize`` copies the view to the online store.
        transform: For stream sources: ``Normalize(...)``, a ``"module:function"`` string
            or a module-level function applied to raw events.
    """

    name: str
    entities: Sequence[Entity | str]
    schema: Sequence[Field]
    source: DataSource
    ttl: timedelta | None = None
    online: bool = True
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    transform: Transform | str | Callable[..., Any] | None = None
    entity_columns: tuple[Field, ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        check_name("FeatureView", self.name)
        if isinstance(self.entities, str | Entity) or not self.entities:
            raise invalid("FeatureView", self.name, "entities", "must be a non-empty list.")
        names = [_entity_name(self.name, e) for e in self.entities]
        set_(self, "_entity_objects", {e.name: e for e in self.entities if isinstance(e, Entity)})
        set_(self, "entities", tuple(names))
        if not isinstance(self.source, FileSource | SqlSource | PushSource | KafkaSource):
            raise invalid(
                "FeatureView",
                self.name,
                "source",
                f"must be a FileSource, SqlSource, PushSource or KafkaSource; got {self.source!r}.",
            )
        set_(self, "ttl", check_ttl("FeatureView", self.name, self.ttl))
        set_(self, "tags", check_tags("FeatureView", self.name, self.tags))
        set_(self, "transform", as_transform(self.transform))
        fields = tuple(self.schema)
        for f in fields:
            if not isinstance(f, Field):
                raise invalid(
                    "FeatureView", self.name, "schema", f"must hold Field objects; got {f!r}."
                )
        seen: set[str] = set()
        for f in fields:
            if f.name in seen:
                raise invalid("FeatureView", self.name, "schema", f"lists '{f.name}' twice.")
            seen.add(f.name)
        set_(self, "schema", fields)
        if not self.entity_columns:
            set_(self, "entity_columns", self._derive_entity_columns())
        keys = {c.name for c in self.entity_columns}
        timestamp = self.source.timestamp_field
        features = [f for f in fields if f.name not in keys and f.name != timestamp]
        if not features:
            raise invalid("FeatureView", self.name, "schema", "declares no features.")
        set_(self, "_features", tuple(features))

    def _derive_entity_columns(self) -> tuple[Field, ...]:
        declared = {f.name: f for f in self.schema}
        objects: dict[str, Entity] = self._entity_objects  # type: ignore[attr-defined]
        if any(name not in objects for name in self.entities):
            return ()  # an entity named only by string: the registry resolves it
        columns = []
        for name in self.entities:
            entity = objects[name]
            for key in entity.join_keys:
                if key in declared:
                    dtype = declared[key].dtype
                else:
                    dtype = entity.value_type.dtype or UNKNOWN
                columns.append(Field(key, dtype))
        return tuple(columns)

    @property
    def features(self) -> list[Field]:
        return list(self._features)  # type: ignore[attr-defined]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self._features]  # type: ignore[attr-defined]

    @property
    def join_keys(self) -> list[str]:
        return [c.name for c in self.entity_columns]

    @property
    def batch_source(self) -> BatchSource | None:
        """The source holding history: the source itself or a push/Kafka source's batch."""
        if isinstance(self.source, FileSource | SqlSource):
            return self.source
        return self.source.batch_source

    def with_entities(self, entities: Sequence[Entity]) -> FeatureView:
        """A copy with join keys resolved from the given entities (by name)."""
        by_name = {e.name: e for e in entities}
        missing = [n for n in self.entities if n not in by_name]
        if missing:
            raise invalid(
                "FeatureView",
                self.name,
                "entities",
                f"names unknown entities {missing}.",
                hint="Define them in the repo or apply them first.",
            )
        return _replace(self, entities=[by_name[n] for n in self.entities], entity_columns=())

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": "feature_view",
            "name": self.name,
            "entities": list(self.entities),
            "entity_columns": [c.to_spec() for c in self.entity_columns],
            "schema": [f.to_spec() for f in self.schema],
            "source": self.source.to_spec(),
            "ttl_seconds": self.ttl.total_seconds() if self.ttl else None,
            "online": self.online,
            "owner": self.owner,
            "tags": self.tags,
            "description": self.description,
            "transform": self.transform.to_spec() if self.transform else None,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureView) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return id(self)


def _replace(view: FeatureView, **changes: Any) -> FeatureView:
    values = {
        name: getattr(view, name)
        for name in (
            "name",
            "entities",
            "schema",
            "source",
            "ttl",
            "online",
            "owner",
            "tags",
            "description",
            "transform",
            "entity_columns",
        )
    }
    values.update(changes)
    return FeatureView(**values)


@dataclass(frozen=True, eq=False)
class FeatureService:
    """A named set of features one model consumes (a model version pins one service)."""

    name: str
    features: Sequence[FeatureView | FeatureViewProjection | OnDemandFeatureView]
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("FeatureService", self.name)
        from shipyard.features.on_demand import OnDemandFeatureView

        items = tuple(self.features)
        if not items:
            raise invalid("FeatureService", self.name, "features", "must be a non-empty list.")
        for item in items:
            if not isinstance(item, FeatureView | FeatureViewProjection | OnDemandFeatureView):
                raise invalid(
                    "FeatureService",
                    self.name,
                    "features",
                    f"must hold views or view[[...]] selections; got {item!r}.",
                )
        object.__setattr__(self, "features", items)
        object.__setattr__(self, "tags", check_tags("FeatureService", self.name, self.tags))

    @property
    def view_names(self) -> list[str]:
        return [item.name for item in self.features]

    @property
    def feature_refs(self) -> list[str]:
        return [ref for item in self.features for ref in item.feature_refs]

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": "feature_service",
            "name": self.name,
            "features": [
                {"view": item.name, "features": [r.split(":", 1)[1] for r in item.feature_refs]}
                for item in self.features
            ],
            "description": self.description,
            "owner": self.owner,
            "tags": self.tags,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureService) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return id(self)


Definition = Entity | FeatureView | FeatureService | PushSource | KafkaSource  # + on-demand views

KINDS = (
    "entity",
    "push_source",
    "kafka_source",
    "feature_view",
    "on_demand_feature_view",
    "feature_service",
)


def view_from_spec(spec: dict[str, Any]) -> FeatureView:
    return FeatureView(
        name=spec["name"],
        entities=spec["entities"],
        schema=[Field.from_spec(f) for f in spec["schema"]],
        source=source_from_spec(spec["source"]),
        ttl=timedelta(seconds=spec["ttl_seconds"]) if spec.get("ttl_seconds") else None,
        online=spec.get("online", True),
        owner=spec.get("owner", ""),
        tags=spec.get("tags", {}),
        description=spec.get("description", ""),
        transform=transform_from_spec(spec.get("transform")),
        entity_columns=tuple(Field.from_spec(c) for c in spec.get("entity_columns", [])),
    )


def definition_from_spec(spec: dict[str, Any], views: dict[str, Any] | None = None) -> Any:
    """Rebuild a stored definition. Services and on-demand views need ``views`` by name."""
    kind = spec["kind"]
    views = views or {}
    if kind == "entity":
        return Entity(
            spec["name"],
            tuple(spec["join_keys"]),
            ValueType(spec["value_type"]),
            spec.get("description", ""),
            spec.get("owner", ""),
            spec.get("tags", {}),
        )
    if kind == "feature_view":
        return view_from_spec(spec)
    if kind in ("push_source", "kafka_source"):
        source = source_from_spec(spec)
        assert isinstance(source, PushSource | KafkaSource)
        return source
    if kind == "on_demand_feature_view":
        from shipyard.features.on_demand import OnDemandFeatureView, RequestSource

        sources: list[Any] = []
        for s in spec["sources"]:
            if s["kind"] == "request_source":
                sources.append(
                    RequestSource(s["name"], tuple(Field.from_spec(f) for f in s["schema"]))
                )
            else:
                view = _lookup(views, s["name"], spec["name"])
                sources.append(view[s["features"]] if s.get("features") else view)
        return OnDemandFeatureView(
            spec["name"],
            sources,
            [Field.from_spec(f) for f in spec["schema"]],
            spec["udf"]["ref"],
            spec.get("mode", "pandas"),
            spec.get("description", ""),
            spec.get("owner", ""),
            spec.get("tags", {}),
        )
    if kind == "feature_service":
        items = [_lookup(views, i["view"], spec["name"])[i["features"]] for i in spec["features"]]
        return FeatureService(
            spec["name"],
            items,
            spec.get("description", ""),
            spec.get("owner", ""),
            spec.get("tags", {}),
        )
    raise ValueError(f"Unknown definition kind {kind!r}.")


def _lookup(views: dict[str, Any], name: str, user: str) -> Any:
    if name not in views:
        raise invalid("FeatureService", user, "features", f"uses unknown view '{name}'.")
    return views[name]


def kind_of(obj: Any) -> str:
    """The registry kind of a definition object."""
    return obj.to_spec()["kind"]


__all__ = [
    "KINDS",
    "Definition",
    "Entity",
    "FeatureService",
    "FeatureView",
    "FeatureViewProjection",
    "Field",
    "FileSource",
    "KafkaSource",
    "Normalize",
    "OnDemandFeatureView",
    "PushSource",
    "RequestSource",
    "SqlSource",
    "ValueType",
    "definition_from_spec",
    "kind_of",
    "on_demand_feature_view",
    "view_from_spec",
]

# Re-exported so every definition is importable from here (defined in their own module).
from shipyard.features.on_demand import (  # noqa: E402
    OnDemandFeatureView,
    RequestSource,
    on_demand_feature_view,
)
