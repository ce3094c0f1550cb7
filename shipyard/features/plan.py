"""What applying a set of definitions would change: added, changed, removed, unchanged.

Pure functions over JSON specs (no database), so every rule is tested directly. A change
is *incompatible* when data written under the old definition would be misread under the
new one (an entity's join keys, a field's dtype) or when something still in use would
disappear (a view a service reads, an entity a view uses); apply refuses those unless
forced. References to objects that exist nowhere are plain errors, forced or not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shipyard.errors import InvalidArgumentError

Action = Literal["added", "changed", "removed", "unchanged"]
Key = tuple[str, str]  # (kind, name)

_ORDER = {
    "entity": 0,
    "push_source": 1,
    "kafka_source": 1,
    "feature_view": 2,
    "on_demand_feature_view": 3,
    "feature_service": 4,
}


def canonical_json(spec: Mapping[str, Any]) -> str:
    """The stored form of a spec: sorted keys, no spaces, so equal specs hash equal."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def spec_digest(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


@dataclass(frozen=True)
class PlanItem:
    """One object's fate. ``version`` is the stored version, ``new_version`` the one
    apply would write; ``changes`` describe the diff, ``problems`` why it is refused."""

    kind: str
    name: str
    action: Action
    version: int | None = None
    new_version: int | None = None
    changes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    spec: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "version": self.version,
            "new_version": self.new_version,
            "changes": list(self.changes),
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class Plan:
    """The diff between stored definitions and the ones given."""

    items: tuple[PlanItem, ...]

    def of(self, action: Action) -> list[PlanItem]:
        return [i for i in self.items if i.action == action]

    @property
    def added(self) -> list[PlanItem]:
        return self.of("added")

    @property
    def changed(self) -> list[PlanItem]:
        return self.of("changed")

    @property
    def removed(self) -> list[PlanItem]:
        return self.of("removed")

    @property
    def unchanged(self) -> list[PlanItem]:
        return self.of("unchanged")

    @property
    def has_changes(self) -> bool:
        return any(i.action != "unchanged" for i in self.items)

    @property
    def problems(self) -> list[str]:
        return [f"{i.kind} '{i.name}': {p}" for i in self.items for p in i.problems]

    def summary(self) -> str:
        counts = {a: len(self.of(a)) for a in ("added", "changed", "removed", "unchanged")}
        return ", ".join(f"{n} {a}" for a, n in counts.items())

    def to_dict(self) -> dict[str, Any]:
        return {"items": [i.to_dict() for i in self.items], "problems": self.problems}


def _fields(spec: Mapping[str, Any], key: str) -> dict[str, str]:
    return {f["name"]: f["dtype"] for f in spec.get(key) or []}


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    changes: list[str] = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if key in ("schema", "entity_columns"):
            a, b = _fields(old, key), _fields(new, key)
            changes.extend(f"{key}: added field '{n}' ({b[n]})" for n in b if n not in a)
            changes.extend(f"{key}: removed field '{n}'" for n in a if n not in b)
            changes.extend(
                f"{key}: field '{n}' dtype {a[n]} -> {b[n]}" for n in a if n in b and a[n] != b[n]
            )
            if not any(c.startswith(key) for c in changes):
                changes.append(f"{key}: changed (descriptions, tags or order)")
        else:
            changes.append(f"{key}: {_short(before)} -> {_short(after)}")
    return changes


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _incompatible(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if kind == "entity":
        if old["join_keys"] != new["join_keys"]:
            problems.append(
                f"join keys change {old['join_keys']} -> {new['join_keys']}; stored features "
                "are keyed by the old ones"
            )
        types = {old["value_type"], new["value_type"]}
        if len(types) > 1 and "UNKNOWN" not in types:
            problems.append(f"value type changes {old['value_type']} -> {new['value_type']}")
    elif kind == "feature_view":
        a, b = _fields(old, "entity_columns"), _fields(new, "entity_columns")
        if a and b and list(a) != list(b):
            problems.append(f"join keys change {list(a)} -> {list(b)}")
        old_schema, new_schema = _fields(old, "schema"), _fields(new, "schema")
        for name, dtype in old_schema.items():
            if name in new_schema and new_schema[name] != dtype:
                problems.append(
                    f"field '{name}' changes dtype {dtype} -> {new_schema[name]}; "
                    "stored values would be misread"
                )
    return problems


def _uses(spec: Mapping[str, Any]) -> list[tuple[Key, list[str] | None]]:
    """Objects a spec depends on, with the features it reads from each (views)."""
    kind = spec["kind"]
    if kind == "feature_view":
        uses: list[tuple[Key, list[str] | None]] = [(("entity", e), None) for e in spec["entities"]]
        source = spec["source"]
        if source["kind"] in ("push_source", "kafka_source"):
            uses.append(((source["kind"], source["name"]), None))
        return uses
    if kind == "feature_service":
        return [(_view_key(i["view"]), i["features"]) for i in spec["features"]]
    if kind == "on_demand_feature_view":
        return [
            (_view_key(s["name"]), s.get("features"))
            for s in spec["sources"]
            if s["kind"] == "feature_view_ref"
        ]
    return []


def _view_key(name: str) -> Key:
    # Services and on-demand views name views without saying which kind; resolved later.
    return ("view", name)


def _features_of(spec: Mapping[str, Any]) -> set[str]:
    keys = {c["name"] for c in spec.get("entity_columns") or []}
    return {f["name"] for f in spec.get("schema") or []} - keys


def compute_plan(
    stored: Mapping[Key, tuple[int, Mapping[str, Any]]],
    desired: Iterable[Mapping[str, Any]],
    *,
    prune: bool = False,
) -> Plan:
    """Compare stored ``{(kind, name): (version, spec)}`` with the desired specs.

    Args:
        stored: What the registry holds.
        desired: Specs to apply (each with ``kind`` and ``name``).
        prune: Whether stored objects missing from ``desired`` are removed (a repo is
            the whole truth) or kept (applying a few objects from Python).

    Raises:
        InvalidArgumentError: two desired objects share a kind and name, or a reference
            points at nothing.
    """
    wanted: dict[Key, Mapping[str, Any]] = {}
    for spec in desired:
        key = (spec["kind"], spec["name"])
        if key in wanted and wanted[key] != spec:
            raise InvalidArgumentError(
                f"Two different definitions of {key[0]} '{key[1]}'.",
                hint="Give each object a unique name.",
            )
        wanted[key] = spec
    items: dict[Key, PlanItem] = {}
    for key, spec in wanted.items():
        if key not in stored:
            items[key] = PlanItem(key[0], key[1], "added", None, 1, spec=dict(spec))
            continue
        version, old = stored[key]
        if spec_digest(old) == spec_digest(spec):
            items[key] = PlanItem(key[0], key[1], "unchanged", version, version, spec=dict(spec))
        else:
            items[key] = PlanItem(
                key[0],
                key[1],
                "changed",
                version,
                version + 1,
                tuple(_diff(old, spec)),
                tuple(_incompatible(key[0], old, spec)),
                spec=dict(spec),
            )
    for key, (version, old) in stored.items():
        if key not in wanted:
            action: Action = "removed" if prune else "unchanged"
            items[key] = PlanItem(key[0], key[1], action, version, None, spec=dict(old))

    final = {k: i.spec for k, i in items.items() if i.action != "removed" and i.spec}
    _check_references(items, final)
    ordered = sorted(items.values(), key=lambda i: (_ORDER.get(i.kind, 9), i.name))
    return Plan(tuple(ordered))


def _check_references(items: dict[Key, PlanItem], final: dict[Key, Any]) -> None:
    views = {name: spec for (kind, name), spec in final.items() if kind.endswith("feature_view")}
    for key, spec in final.items():
        for (kind, name), features in _uses(spec):
            target = views.get(name) if kind == "view" else final.get((kind, name))
            if target is not None:
                missing = sorted(set(features or []) - _features_of(target))
                if missing and target["kind"] == "feature_view":
                    _refuse(items, key, f"reads features {missing} that view '{name}' lacks")
                continue
            label = "view" if kind == "view" else kind.replace("_", " ")
            removed = [
                k
                for k, i in items.items()
                if k[1] == name
                and i.action == "removed"
                and (k[0] == kind or (kind == "view" and k[0].endswith("feature_view")))
            ]
            if removed:
                _refuse(items, removed[0], f"is still used by {key[0]} '{key[1]}'")
                continue
            if items[key].action == "unchanged":
                continue  # stored data already inconsistent; apply does not make it worse
            raise InvalidArgumentError(
                f"{key[0]} '{key[1]}' uses {label} '{name}', which is neither in the repo "
                "nor in the registry.",
                hint=f"Define {label} '{name}' or remove the reference.",
            )


def _refuse(items: dict[Key, PlanItem], key: Key, problem: str) -> None:
    item = items[key]
    items[key] = PlanItem(
        item.kind,
        item.name,
        item.action,
        item.version,
        item.new_version,
        item.changes,
        (*item.problems, problem),
        spec=item.spec,
    )


__all__ = ["Plan", "PlanItem", "canonical_json", "compute_plan", "spec_digest"]
