"""On-demand feature views: features computed at read time from request data and the
features of other views, by a Python UDF stored as an import path plus a source digest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shipyard.features._validate import check_name, check_tags, invalid
from shipyard.features.definitions import FeatureView, FeatureViewProjection, Field, _Selectable
from shipyard.features.transforms import (
    PythonTransform,
    as_transform,
    callable_ref,
    import_callable,
)


@dataclass(frozen=True)
class RequestSource:
    """Values that come with the request (not stored), used by on-demand feature views."""

    name: str
    schema: tuple[Field, ...]

    def __post_init__(self) -> None:
        check_name("RequestSource", self.name)
        object.__setattr__(self, "schema", tuple(self.schema))

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": "request_source",
            "name": self.name,
            "schema": [f.to_spec() for f in self.schema],
        }


@dataclass(frozen=True, eq=False)
class OnDemandFeatureView(_Selectable):
    """Features computed at read time from request data and other views' features.

    ``udf`` is a module-level function taking a pandas DataFrame (``mode="pandas"``) or a
    pyarrow Table (``mode="arrow"``) with the source features (named ``feature`` or
    ``view__feature`` when names clash) and request fields, and returning the ``schema``
    columns. It is stored by import path plus a digest of its source.
    """

    name: str
    sources: Sequence[FeatureView | FeatureViewProjection | RequestSource]
    schema: Sequence[Field]
    udf: Callable[..., Any] | str
    mode: Literal["pandas", "arrow"] = "pandas"
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("OnDemandFeatureView", self.name)
        set_ = object.__setattr__
        sources = tuple(self.sources)
        if not sources:
            raise invalid("OnDemandFeatureView", self.name, "sources", "must be a non-empty list.")
        for s in sources:
            if not isinstance(s, FeatureView | FeatureViewProjection | RequestSource):
                raise invalid(
                    "OnDemandFeatureView",
                    self.name,
                    "sources",
                    f"must hold views, view[[...]] selections or RequestSources; got {s!r}.",
                )
        set_(self, "sources", sources)
        set_(self, "schema", tuple(self.schema))
        if not self.schema:
            raise invalid("OnDemandFeatureView", self.name, "schema", "declares no features.")
        if self.mode not in ("pandas", "arrow"):
            raise invalid(
                "OnDemandFeatureView",
                self.name,
                "mode",
                f"must be 'pandas' or 'arrow'; got {self.mode!r}.",
            )
        transform = as_transform(self.udf)
        assert isinstance(transform, PythonTransform)
        set_(self, "_udf_spec", transform)
        set_(self, "tags", check_tags("OnDemandFeatureView", self.name, self.tags))

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.schema]

    @property
    def features(self) -> list[Field]:
        return list(self.schema)

    @property
    def udf_ref(self) -> str:
        return self._udf_spec.ref  # type: ignore[attr-defined]

    def call_udf(self, data: Any) -> Any:
        """Run the UDF on a DataFrame / Table of inputs."""
        function = self.udf if callable(self.udf) else import_callable(self.udf_ref)
        return function(data)

    @property
    def request_fields(self) -> list[Field]:
        return [f for s in self.sources if isinstance(s, RequestSource) for f in s.schema]

    @property
    def source_refs(self) -> list[str]:
        """Feature references of the stored features the UDF reads."""
        refs: list[str] = []
        for s in self.sources:
            if isinstance(s, FeatureView | FeatureViewProjection):
                refs.extend(s.feature_refs)
        return refs

    def to_spec(self) -> dict[str, Any]:
        sources: list[dict[str, Any]] = []
        for s in self.sources:
            if isinstance(s, RequestSource):
                sources.append(s.to_spec())
            else:
                features = list(s.features) if isinstance(s, FeatureViewProjection) else None
                sources.append({"kind": "feature_view_ref", "name": s.name, "features": features})
        return {
            "kind": "on_demand_feature_view",
            "name": self.name,
            "sources": sources,
            "schema": [f.to_spec() for f in self.schema],
            "udf": self._udf_spec.to_spec(),  # type: ignore[attr-defined]
            "mode": self.mode,
            "description": self.description,
            "owner": self.owner,
            "tags": self.tags,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OnDemandFeatureView) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return id(self)


def on_demand_feature_view(
    *,
    sources: Sequence[Any],
    schema: Sequence[Field],
    mode: Literal["pandas", "arrow"] = "pandas",
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], OnDemandFeatureView]:
    """Decorator form, as in Feast: the function becomes the view's UDF and names it."""

    def wrap(function: Callable[..., Any]) -> OnDemandFeatureView:
        callable_ref(function)
        return OnDemandFeatureView(function.__name__, sources, schema, function, mode, **kwargs)

    return wrap


__all__ = ["OnDemandFeatureView", "RequestSource", "on_demand_feature_view"]
