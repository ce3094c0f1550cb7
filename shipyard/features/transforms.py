"""Row transforms a feature view applies to raw stream events, stored as versionable specs.

A transform is data, not pickled code: ``Normalize(means=..., stds=...)`` is saved in the
registry as ``{"kind": "normalize", "means": ..., "stds": ...}`` so a changed mean shows up
in ``shipyard features plan`` as a new version. Custom code is referenced by import path
(``PythonTransform("pkg.module:function")``) with a digest of its source.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pyarrow as pa


@runtime_checkable
class Transform(Protocol):
    """What a view's ``transform`` does: turn a table of raw events into feature rows."""

    kind: str

    def apply(self, table: pa.Table) -> pa.Table: ...

    def to_spec(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Normalize:
    """Standardize columns: ``(x - mean) / std`` per output feature.

    Args:
        means: Output feature name -> mean.
        stds: Output feature name -> standard deviation (non-zero).
        from_list: Raw column holding a list of values (the seed's ``features`` array);
            its i-th element feeds the i-th key of ``means``. Without it, each output
            feature is read from the raw column of the same name.

    Example::

        Normalize(means={"speed": 50.0}, stds={"speed": 12.5})
    """

    means: Mapping[str, float]
    stds: Mapping[str, float]
    from_list: str | None = None
    kind: str = field(default="normalize", init=False)

    def __post_init__(self) -> None:
        means = {str(k): float(v) for k, v in dict(self.means).items()}
        stds = {str(k): float(v) for k, v in dict(self.stds).items()}
        if set(means) != set(stds):
            raise InvalidArgumentError(
                f"Normalize: 'means' and 'stds' name different features: "
                f"{sorted(set(means) ^ set(stds))}."
            )
        bad = [k for k, s in stds.items() if s == 0 or not math.isfinite(s)]
        if bad:
            raise InvalidArgumentError(f"Normalize: 'stds' must be finite and non-zero for {bad}.")
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "stds", {k: stds[k] for k in means})

    def apply(self, table: pa.Table) -> pa.Table:
        import pyarrow as pa
        import pyarrow.compute as pc

        names = list(self.means)
        if self.from_list is not None:
            lists = table.column(self.from_list)
            inputs = [pc.list_element(lists, i) for i in range(len(names))]
            table = table.drop_columns([self.from_list])
        else:
            missing = [n for n in names if n not in table.column_names]
            if missing:
                raise InvalidArgumentError(f"Normalize: raw events lack columns {missing}.")
            inputs = [table.column(n) for n in names]
        for name, values in zip(names, inputs, strict=True):
            scaled = pc.divide(
                pc.subtract(pc.cast(values, pa.float64()), self.means[name]), self.stds[name]
            )
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, scaled)
            else:
                table = table.append_column(name, scaled)
        return table

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": self.kind, "means": self.means, "stds": self.stds}
        if self.from_list is not None:
            spec["from_list"] = self.from_list
        return spec


def _source_digest(function: Callable[..., Any]) -> str:
    try:
        text = inspect.getsource(function)
    except (OSError, TypeError):
        text = getattr(function, "__qualname__", repr(function))
    return hashlib.sha256(text.encode()).hexdigest()


def import_callable(ref: str) -> Callable[..., Any]:
    """The callable at ``"package.module:qualified.name"``."""
    module_name, sep, qualname = ref.partition(":")
    if not sep or not module_name or not qualname:
        raise InvalidArgumentError(
            f"Callable reference {ref!r} is not 'module:function'.",
            hint="Write it like 'my_features.transforms:scale'.",
        )
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgumentError(
            f"Cannot import {ref!r}: {exc}.",
            hint="Make sure the module is importable (on PYTHONPATH) where features are read.",
        ) from exc
    # ``@on_demand_feature_view`` puts the view under the function's name: use its UDF.
    target = getattr(target, "udf", target)
    if not callable(target):
        raise InvalidArgumentError(f"{ref!r} is not callable.")
    return target


def callable_ref(function: Callable[..., Any]) -> str:
    """``"module:qualname"`` of a function defined at module level."""
    qualname = getattr(function, "__qualname__", "")
    if not qualname or "<" in qualname:
        raise InvalidArgumentError(
            f"{function!r} has no importable name.",
            hint="Define the function at module level (no lambdas or nested functions).",
        )
    return f"{function.__module__}:{qualname}"


@dataclass(frozen=True)
class PythonTransform:
    """A transform written in Python, referenced by import path.

    The function takes and returns a ``pyarrow.Table`` (or a pandas DataFrame, converted).
    The digest of its source is part of the spec, so editing the function is a new version.
    """

    ref: str
    digest: str = ""
    kind: str = field(default="python", init=False)

    @classmethod
    def of(cls, function: Callable[..., Any]) -> PythonTransform:
        return cls(callable_ref(function), _source_digest(function))

    def apply(self, table: pa.Table) -> pa.Table:
        import pyarrow as pa

        result = import_callable(self.ref)(table)
        if not isinstance(result, pa.Table):
            result = pa.Table.from_pandas(result, preserve_index=False)
        return result

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "digest": self.digest}


def as_transform(value: Any) -> Transform | None:
    """Accept a Transform, a ``"module:function"`` string or a function; None stays None."""
    if value is None or isinstance(value, Normalize | PythonTransform):
        return value
    if isinstance(value, str):
        return PythonTransform(value, _source_digest(import_callable(value)))
    if isinstance(value, Transform):
        return value
    if callable(value):
        return PythonTransform.of(value)
    raise InvalidArgumentError(
        f"Cannot use {value!r} as a transform.",
        hint="Pass Normalize(means=..., stds=...), a 'module:function' string or a function.",
    )


def transform_from_spec(spec: Mapping[str, Any] | None) -> Transform | None:
    """Rebuild a transform from its stored spec."""
    if not spec:
        return None
    kind = spec.get("kind")
    if kind == "normalize":
        return Normalize(spec["means"], spec["stds"], spec.get("from_list"))
    if kind == "python":
        return PythonTransform(spec["ref"], spec.get("digest", ""))
    raise InvalidArgumentError(f"Unknown transform kind {kind!r}. Known: normalize, python.")


def apply_to_rows(transform: Transform | None, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply a transform to a batch of decoded events (dicts), e.g. one Kafka poll."""
    if transform is None or not rows:
        return rows
    import pyarrow as pa

    return transform.apply(pa.Table.from_pylist(rows)).to_pylist()


__all__ = [
    "Normalize",
    "PythonTransform",
    "Transform",
    "apply_to_rows",
    "as_transform",
    "callable_ref",
    "import_callable",
    "transform_from_spec",
]
