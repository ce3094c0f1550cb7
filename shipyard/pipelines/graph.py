"""The pipeline graph: steps with typed inputs and outputs, the bindings that wire them, the
``when``/``ParallelFor``/``ExitHandler`` groups around them, and the edges derived from all of it.

Everything here is frozen plain data, built by ``dsl.py`` when a pipeline is traced and read by
validation, the executor and the compilers. Dependencies are derived, never stored twice: a step
depends on the producers of its arguments, on its ``.after()`` steps, on the steps its enclosing
conditions and loops read, and an exit step on every step of its handler's body.
"""

from __future__ import annotations

import hashlib
import heapq
import inspect
import math
import operator
import re
import sys
import textwrap
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal

from shipyard.errors import PipelineDefinitionError
from shipyard.pipelines.types import ANY, list_item, value_type

__all__ = [
    "NO_DEFAULT",
    "PLACEHOLDERS",
    "And",
    "Binding",
    "CollectedRef",
    "Comparison",
    "Component",
    "Condition",
    "ConditionGroup",
    "Constant",
    "Edge",
    "ExitHandlerGroup",
    "Graph",
    "Group",
    "LoopItemRef",
    "Not",
    "Operand",
    "Or",
    "OutputRef",
    "ParallelForGroup",
    "ParamRef",
    "PlaceholderRef",
    "Port",
    "Resources",
    "RetryPolicy",
    "StepNode",
    "binding_to_dict",
    "code_fingerprint",
    "parse_cpu",
    "parse_memory",
    "render_operand",
]

# Placeholders the executor and compilers fill in per run, with their types.
PLACEHOLDERS: dict[str, str] = {"run_id": "str", "scheduled_time": "str"}


def where(source_file: str, line: int) -> str:
    """``file:line`` for messages; ``<unknown>`` when a hand-built graph has no location."""
    return f"{source_file}:{line}" if source_file else "<unknown>"


# --- bindings: where an input's value comes from ------------------------------------------------


@dataclass(frozen=True)
class Constant:
    """A literal JSON value written in the pipeline."""

    value: Any


@dataclass(frozen=True)
class ParamRef:
    """A pipeline parameter."""

    name: str


@dataclass(frozen=True)
class OutputRef:
    """One output of an upstream step."""

    step: str
    output: str


@dataclass(frozen=True)
class PlaceholderRef:
    """A value known only when the run starts: ``run_id`` or ``scheduled_time``."""

    name: str


@dataclass(frozen=True)
class LoopItemRef:
    """The current item of an enclosing ParallelFor, or one key of it when items are dicts."""

    loop: str
    key: str | None = None


@dataclass(frozen=True)
class CollectedRef:
    """Fan-in: the list of one output over every iteration of the producer's innermost loop."""

    step: str
    output: str


Operand = Constant | ParamRef | OutputRef | PlaceholderRef | LoopItemRef
Binding = Constant | ParamRef | OutputRef | PlaceholderRef | LoopItemRef | CollectedRef


def binding_to_dict(binding: Binding) -> dict[str, Any]:
    """The JSON form of a binding: one key naming its kind."""
    match binding:
        case Constant(value):
            return {"constant": value}
        case ParamRef(name):
            return {"parameter": name}
        case OutputRef(step, output):
            return {"output": {"step": step, "name": output}}
        case PlaceholderRef(name):
            return {"placeholder": name}
        case LoopItemRef(loop, key):
            return {"loop_item": {"loop": loop, "key": key}}
        case CollectedRef(step, output):
            return {"collected": {"step": step, "name": output}}
    raise TypeError(f"not a binding: {binding!r}")


def render_operand(ref: Operand) -> str:
    """The default Python rendering of an operand, read by ``Condition.to_python``."""
    match ref:
        case Constant(value):
            if isinstance(value, float) and not math.isfinite(value):
                return f"float({str(value)!r})"
            return repr(value)
        case OutputRef(step, output):
            return f"outputs[{step!r}][{output!r}]"
        case ParamRef(name):
            return f"params[{name!r}]"
        case PlaceholderRef(name):
            return f"placeholders[{name!r}]"
        case LoopItemRef(loop, key):
            return f"items[{loop!r}]" + (f"[{key!r}]" if key is not None else "")
    raise TypeError(f"not an operand: {ref!r}")


# --- conditions ------------------------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Condition(ABC):
    """A boolean expression over step outputs, parameters and loop items, built with comparison
    operators on handles and combined with ``&``, ``|`` and ``~``.

    Example:
        >>> c = Comparison(">", OutputRef("train", "acc"), ParamRef("min")) | ~Comparison(
        ...     "==", ParamRef("mode"), Constant("prod"))
        >>> c.to_python()
        "(outputs['train']['acc'] > params['min']) or (not (params['mode'] == 'prod'))"
    """

    def __and__(self, other: object) -> Condition:
        return And(self, _as_condition(other, "&"))

    def __or__(self, other: object) -> Condition:
        return Or(self, _as_condition(other, "|"))

    def __rand__(self, other: object) -> Condition:
        return And(_as_condition(other, "&"), self)

    def __ror__(self, other: object) -> Condition:
        return Or(_as_condition(other, "|"), self)

    def __invert__(self) -> Condition:
        return Not(self)

    def __bool__(self) -> bool:
        caller = sys._getframe(1)
        raise PipelineDefinitionError(
            "A pipeline condition has no truth value while the pipeline is being defined "
            f"({where(caller.f_code.co_filename, caller.f_lineno)}): outputs are only known "
            "when it runs.",
            hint="Use `with when(condition):` instead of `if`, and combine conditions with "
            "& | ~ and parentheses, e.g. (a > 1) & (b < 2), instead of and/or/not or a < b < c.",
        )

    @abstractmethod
    def refs(self) -> tuple[Operand, ...]:
        """Every operand, left to right."""

    @abstractmethod
    def to_python(self, render: Callable[[Operand], str] = render_operand) -> str:
        """A Python expression; ``render`` maps each operand (default: ``outputs[step][name]``,
        ``params[name]``, ``items[loop]``, ``placeholders[name]``)."""

    def evaluate(
        self,
        outputs: Mapping[str, Mapping[str, Any]],
        params: Mapping[str, Any],
        items: Mapping[str, Any] | None = None,
        placeholders: Mapping[str, Any] | None = None,
    ) -> bool:
        """The condition's value, given the outputs of upstream steps and the run's values."""
        env = _Env(outputs, params, items or {}, placeholders or {})
        return bool(self._eval(env))

    @abstractmethod
    def _eval(self, env: _Env) -> Any: ...

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The structured form compilers render (to CEL for KFP, to Python for Airflow)."""


@dataclass(frozen=True)
class _Env:
    outputs: Mapping[str, Mapping[str, Any]]
    params: Mapping[str, Any]
    items: Mapping[str, Any]
    placeholders: Mapping[str, Any]

    def value(self, ref: Operand) -> Any:
        match ref:
            case Constant(value):
                return value
            case OutputRef(step, output):
                return self.outputs[step][output]
            case ParamRef(name):
                return self.params[name]
            case PlaceholderRef(name):
                return self.placeholders[name]
            case LoopItemRef(loop, key):
                item = self.items[loop]
                return item if key is None else item[key]
        raise TypeError(f"not an operand: {ref!r}")


def _as_condition(value: object, op: str) -> Condition:
    if isinstance(value, Condition):
        return value
    raise PipelineDefinitionError(
        f"Cannot combine a condition with {value!r} using '{op}'.",
        hint="Both sides of & and | must be comparisons; wrap each in parentheses: "
        "(a > 1) & (b < 2).",
    )


@dataclass(frozen=True)
class Comparison(Condition):
    """``left op right``, with op one of == != < <= > >=."""

    op: Literal["==", "!=", "<", "<=", ">", ">="]
    left: Operand
    right: Operand

    def refs(self) -> tuple[Operand, ...]:
        return (self.left, self.right)

    def to_python(self, render: Callable[[Operand], str] = render_operand) -> str:
        return f"{render(self.left)} {self.op} {render(self.right)}"

    def _eval(self, env: _Env) -> Any:
        return _OPS[self.op](env.value(self.left), env.value(self.right))

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "left": binding_to_dict(self.left),
            "right": binding_to_dict(self.right),
        }


@dataclass(frozen=True)
class _Junction(Condition):
    """``left op right`` for the boolean ``op`` its subclass names."""

    left: Condition
    right: Condition
    op: ClassVar[str]

    def refs(self) -> tuple[Operand, ...]:
        return self.left.refs() + self.right.refs()

    def to_python(self, render: Callable[[Operand], str] = render_operand) -> str:
        return f"({self.left.to_python(render)}) {self.op} ({self.right.to_python(render)})"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "left": self.left.to_dict(), "right": self.right.to_dict()}


@dataclass(frozen=True)
class And(_Junction):
    op: ClassVar[str] = "and"

    def _eval(self, env: _Env) -> Any:
        return self.left._eval(env) and self.right._eval(env)


@dataclass(frozen=True)
class Or(_Junction):
    op: ClassVar[str] = "or"

    def _eval(self, env: _Env) -> Any:
        return self.left._eval(env) or self.right._eval(env)


@dataclass(frozen=True)
class Not(Condition):
    operand: Condition

    def refs(self) -> tuple[Operand, ...]:
        return self.operand.refs()

    def to_python(self, render: Callable[[Operand], str] = render_operand) -> str:
        return f"not ({self.operand.to_python(render)})"

    def _eval(self, env: _Env) -> Any:
        return not self.operand._eval(env)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "not", "operand": self.operand.to_dict()}


# --- components and steps --------------------------------------------------------------------


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()


@dataclass(frozen=True)
class Port:
    """A typed input or output of a step, or a pipeline parameter."""

    name: str
    type: str
    default: Any = NO_DEFAULT

    @property
    def required(self) -> bool:
        return self.default is NO_DEFAULT

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.type}
        if not self.required:
            data["default"] = self.default
        return data


@dataclass(frozen=True)
class Component:
    """The function behind one or more steps: its signature as ports, and its code fingerprint.

    ``returns`` says how the function's return value maps to outputs: ``none``, ``single`` (one
    output named ``output``) or ``named`` (a NamedTuple, tuple or dict of the named outputs).
    """

    name: str
    function: str
    fingerprint: str
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    returns: Literal["none", "single", "named"] = "none"
    description: str = ""
    source_file: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        return where(self.source_file, self.line)

    def input(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output(self, name: str) -> Port | None:
        return next((p for p in self.outputs if p.name == name), None)

    def to_dict(self, locations: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "function": self.function,
            "fingerprint": self.fingerprint,
            "description": self.description,
            "inputs": [p.to_dict() for p in self.inputs],
            "outputs": [p.to_dict() for p in self.outputs],
            "returns": self.returns,
        }
        if locations:
            data["source"] = {"file": self.source_file, "line": self.line}
        return data


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$")
_MEMORY_FACTORS = {
    None: 1,
    **{s: 1000**i for i, s in enumerate(("k", "M", "G", "T", "P", "E"), start=1)},
    "K": 1000,
    **{s: 1024**i for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), start=1)},
}


def parse_cpu(value: str) -> float:
    """Cores from a Kubernetes CPU quantity (``'2'``, ``'0.5'``, ``'500m'``).

    Raises:
        ValueError: Not a positive quantity.
    """
    match = _CPU.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a CPU quantity")
    cores = float(match.group(1)) / (1000 if match.group(2) else 1)
    if cores <= 0:
        raise ValueError(f"{value!r} is not a positive CPU quantity")
    return cores


def parse_memory(value: str) -> int:
    """Bytes from a Kubernetes memory quantity (``'8G'`` = 8e9, ``'512Mi'`` = 512 * 2**20).

    Raises:
        ValueError: Not a positive quantity.
    """
    match = _MEMORY.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a memory quantity")
    size = round(float(match.group(1)) * _MEMORY_FACTORS[match.group(2)])
    if size <= 0:
        raise ValueError(f"{value!r} is not a positive memory quantity")
    return size


@dataclass(frozen=True)
class Resources:
    """What a step asks of the machine. CPU and memory are Kubernetes quantities as written
    (``'500m'``, ``'8G'``, ``'512Mi'``); parse them with ``parse_cpu``/``parse_memory``.

    ``gpu`` is the accelerator count; setting ``accelerator`` (a type such as
    ``'nvidia-tesla-k80'``) without a count means one.
    """

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    gpu: int | None = None
    accelerator: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu_request": self.cpu_request,
            "cpu_limit": self.cpu_limit,
            "memory_request": self.memory_request,
            "memory_limit": self.memory_limit,
            "gpu": self.gpu,
            "accelerator": self.accelerator,
            "node_selector": dict(sorted(self.node_selector.items())),
        }


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a failed step ``max_retries`` times; the n-th retry waits
    ``min(backoff_seconds * backoff_factor ** (n - 1), max_backoff_seconds)``."""

    max_retries: int
    backoff_seconds: float = 0.0
    backoff_factor: float = 2.0
    max_backoff_seconds: float = 3600.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return min(
            self.backoff_seconds * self.backoff_factor ** (attempt - 1), self.max_backoff_seconds
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_retries": self.max_retries,
            "backoff_seconds": self.backoff_seconds,
            "backoff_factor": self.backoff_factor,
            "max_backoff_seconds": self.max_backoff_seconds,
        }


@dataclass(frozen=True)
class StepNode:
    """One call of a component in the pipeline; ``group`` is its innermost enclosing group."""

    name: str
    component: str
    arguments: Mapping[str, Binding] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    group: str | None = None
    resources: Resources = field(default_factory=Resources)
    retry: RetryPolicy | None = None
    timeout: float | None = None
    cache: bool = True
    source_file: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        return where(self.source_file, self.line)

    def to_dict(self, locations: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "component": self.component,
            "arguments": {k: binding_to_dict(v) for k, v in sorted(self.arguments.items())},
            "after": sorted(self.after),
            "group": self.group,
            "cache": self.cache,
            "retry": self.retry.to_dict() if self.retry else None,
            "timeout_seconds": self.timeout,
            "resources": self.resources.to_dict(),
        }
        if locations:
            data["source"] = {"file": self.source_file, "line": self.line}
        return data


# --- groups ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionGroup:
    """Steps inside ``with when(condition):``; they run only when the condition holds."""

    kind: ClassVar[str] = "condition"
    id: str
    condition: Condition
    parent: str | None = None
    source_file: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        return where(self.source_file, self.line)

    def to_dict(self, locations: bool = False) -> dict[str, Any]:
        data = {"id": self.id, "kind": self.kind, "parent": self.parent}
        data["condition"] = self.condition.to_dict()
        return _with_source(data, self, locations)


@dataclass(frozen=True)
class ExitHandlerGroup:
    """Steps inside ``with ExitHandler(exit_step):``; ``exit_step`` runs after them, always."""

    kind: ClassVar[str] = "exit_handler"
    id: str
    exit_step: str
    parent: str | None = None
    source_file: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        return where(self.source_file, self.line)

    def to_dict(self, locations: bool = False) -> dict[str, Any]:
        data = {"id": self.id, "kind": self.kind, "parent": self.parent}
        data["exit_step"] = self.exit_step
        return _with_source(data, self, locations)


@dataclass(frozen=True)
class ParallelForGroup:
    """Steps inside ``with ParallelFor(items) as item:``; they run once per item, at most
    ``parallelism`` at a time (None: no limit)."""

    kind: ClassVar[str] = "parallel_for"
    id: str
    items: Binding
    parent: str | None = None
    parallelism: int | None = None
    source_file: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        return where(self.source_file, self.line)

    def to_dict(self, locations: bool = False) -> dict[str, Any]:
        data = {"id": self.id, "kind": self.kind, "parent": self.parent}
        data["items"] = binding_to_dict(self.items)
        data["parallelism"] = self.parallelism
        return _with_source(data, self, locations)


Group = ConditionGroup | ExitHandlerGroup | ParallelForGroup


def _with_source(data: dict[str, Any], group: Group, locations: bool) -> dict[str, Any]:
    if locations:
        data["source"] = {"file": group.source_file, "line": group.line}
    return data


EdgeKind = Literal["data", "after", "condition", "items", "exit"]


@dataclass(frozen=True)
class Edge:
    """``target`` waits for ``source``; ``kind`` says why (``exit`` edges wait for any end)."""

    source: str
    target: str
    kind: EdgeKind

    def to_dict(self) -> dict[str, str]:
        return {"from": self.source, "to": self.target, "kind": self.kind}


# --- the graph -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Graph:
    """A traced pipeline. Steps keep their definition order, which breaks every tie, so the
    topological order and ``to_dict()`` are the same on every machine and every run."""

    name: str
    steps: tuple[StepNode, ...]
    components: Mapping[str, Component]
    parameters: tuple[Port, ...] = ()
    groups: tuple[Group, ...] = ()
    description: str = ""
    source_file: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        return where(self.source_file, self.line)

    @cached_property
    def _index(self) -> dict[str, int]:
        index: dict[str, int] = {}
        for i, node in enumerate(self.steps):
            index.setdefault(node.name, i)
        return index

    @cached_property
    def _groups(self) -> dict[str, Group]:
        return {g.id: g for g in self.groups}

    def step(self, name: str) -> StepNode:
        """The step called ``name``; KeyError when there is none."""
        return self.steps[self._index[name]]

    def has_step(self, name: str) -> bool:
        return name in self._index

    def component_of(self, step: str) -> Component:
        return self.components[self.step(step).component]

    def group(self, group_id: str) -> Group:
        return self._groups[group_id]

    def has_group(self, group_id: str) -> bool:
        return group_id in self._groups

    def output_port(self, step: str, output: str) -> Port | None:
        """The declared output ``output`` of step ``step``; None when either does not exist."""
        if not self.has_step(step):
            return None
        component = self.components.get(self.step(step).component)
        return component.output(output) if component else None

    def parameter(self, name: str) -> Port | None:
        return next((p for p in self.parameters if p.name == name), None)

    def scope(self, group_id: str | None) -> tuple[str, ...]:
        """Ids of ``group_id`` and every group around it, outermost first."""
        chain: list[str] = []
        while group_id is not None and group_id in self._groups and group_id not in chain:
            chain.append(group_id)
            group_id = self._groups[group_id].parent
        return tuple(reversed(chain))

    def groups_of(self, step: str) -> tuple[Group, ...]:
        """The groups around a step, outermost first."""
        return tuple(self._groups[g] for g in self.scope(self.step(step).group))

    def body(self, group_id: str) -> tuple[str, ...]:
        """Every step inside a group, nested groups included, in definition order."""
        return tuple(s.name for s in self.steps if group_id in self.scope(s.group))

    def loop_item_type(self, loop: str, key: str | None = None) -> str:
        """The type of a ParallelFor's item (or of one key of it): ``any`` when unknown."""
        group = self._groups.get(loop)
        if not isinstance(group, ParallelForGroup):
            return ANY
        items = group.items
        if key is not None:
            if isinstance(items, Constant) and isinstance(items.value, list) and items.value:
                types = {
                    value_type(i[key]) if isinstance(i, dict) and key in i else ANY
                    for i in items.value
                }
                return types.pop() if len(types) == 1 else ANY
            return ANY
        return list_item(self.type_of(items)) or ANY

    def type_of(self, binding: Binding) -> str:
        """The canonical type of the value a binding delivers; ``?`` when it dangles."""
        match binding:
            case Constant(value):
                return value_type(value)
            case ParamRef(name):
                param = self.parameter(name)
                return param.type if param else "?"
            case OutputRef(step, output) | CollectedRef(step, output):
                port = self.output_port(step, output)
                if port is None:
                    return "?"
                return f"list[{port.type}]" if isinstance(binding, CollectedRef) else port.type
            case PlaceholderRef(name):
                return PLACEHOLDERS.get(name, "?")
            case LoopItemRef(loop, key):
                return self.loop_item_type(loop, key)
        raise TypeError(f"not a binding: {binding!r}")

    @cached_property
    def edges(self) -> tuple[Edge, ...]:
        """Every dependency, deduplicated, ordered by (source, target) definition order."""
        found: set[Edge] = set()
        for node in self.steps:
            for binding in node.arguments.values():
                if isinstance(binding, OutputRef | CollectedRef):
                    found.add(Edge(binding.step, node.name, "data"))
            for name in node.after:
                found.add(Edge(name, node.name, "after"))
            for group in (self._groups[g] for g in self.scope(node.group)):
                if isinstance(group, ConditionGroup):
                    for ref in group.condition.refs():
                        if isinstance(ref, OutputRef):
                            found.add(Edge(ref.step, node.name, "condition"))
                elif isinstance(group, ParallelForGroup) and isinstance(group.items, OutputRef):
                    found.add(Edge(group.items.step, node.name, "items"))
        for group in self.groups:
            if isinstance(group, ExitHandlerGroup):
                for name in self.body(group.id):
                    found.add(Edge(name, group.exit_step, "exit"))
        known = [e for e in found if e.source in self._index and e.target in self._index]
        order = {"data": 0, "after": 1, "condition": 2, "items": 3, "exit": 4}
        return tuple(
            sorted(
                known,
                key=lambda e: (self._index[e.source], self._index[e.target], order[e.kind]),
            )
        )

    @cached_property
    def _predecessors(self) -> dict[str, tuple[str, ...]]:
        preds: dict[str, list[str]] = {s.name: [] for s in self.steps}
        for e in self.edges:
            if e.source not in preds[e.target]:
                preds[e.target].append(e.source)
        return {k: tuple(sorted(v, key=self._index.__getitem__)) for k, v in preds.items()}

    @cached_property
    def _successors(self) -> dict[str, tuple[str, ...]]:
        succs: dict[str, list[str]] = {s.name: [] for s in self.steps}
        for e in self.edges:
            if e.target not in succs[e.source]:
                succs[e.source].append(e.target)
        return {k: tuple(sorted(v, key=self._index.__getitem__)) for k, v in succs.items()}

    def upstream(self, step: str, *, transitive: bool = False) -> tuple[str, ...]:
        """The steps ``step`` waits for: direct ones, or all ancestors with ``transitive``."""
        return self._walk(step, self._predecessors, transitive)

    def downstream(self, step: str, *, transitive: bool = False) -> tuple[str, ...]:
        """The steps that wait for ``step``: direct ones, or all descendants."""
        return self._walk(step, self._successors, transitive)

    def _walk(
        self, step: str, neighbours: dict[str, tuple[str, ...]], transitive: bool
    ) -> tuple[str, ...]:
        if not transitive:
            return neighbours[step]
        seen: set[str] = set()
        todo = list(neighbours[step])
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(neighbours[name])
        return tuple(sorted(seen, key=self._index.__getitem__))

    def find_cycle(self) -> tuple[str, ...] | None:
        """A cycle as a path that ends where it starts (``('a', 'b', 'a')``), or None."""
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for root in self._index:
            if root in state:
                continue
            path = [root]
            stack = [iter(self._successors[root])]
            state[root] = 1
            while stack:
                nxt = next(stack[-1], None)
                if nxt is None:
                    state[path.pop()] = 2
                    stack.pop()
                elif state.get(nxt) == 1:
                    return (*path[path.index(nxt) :], nxt)
                elif nxt not in state:
                    state[nxt] = 1
                    path.append(nxt)
                    stack.append(iter(self._successors[nxt]))
        return None

    def topological_order(self) -> tuple[str, ...]:
        """Every step after all it waits for; ties go to the step defined first.

        Raises:
            PipelineDefinitionError: The graph has a cycle.
        """
        missing = {name: len(preds) for name, preds in self._predecessors.items()}
        ready = [self._index[n] for n, count in missing.items() if count == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            name = self.steps[heapq.heappop(ready)].name
            order.append(name)
            for succ in self._successors[name]:
                missing[succ] -= 1
                if missing[succ] == 0:
                    heapq.heappush(ready, self._index[succ])
        if len(order) < len(missing):
            cycle = self.find_cycle() or ()
            raise PipelineDefinitionError(
                f"Pipeline '{self.name}' has a cycle: {' -> '.join(cycle)}.",
                hint="Remove one of the .after() calls that close the loop.",
            )
        return tuple(order)

    def levels(self) -> tuple[tuple[str, ...], ...]:
        """Steps grouped by depth: each level only waits for earlier levels, so the steps of
        one level may run in parallel."""
        depth: dict[str, int] = {}
        for name in self.topological_order():
            depth[name] = 1 + max((depth[p] for p in self._predecessors[name]), default=-1)
        levels: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for name in self._index:
            levels[depth[name]].append(name)
        return tuple(tuple(level) for level in levels)

    def to_dict(self, locations: bool = False) -> dict[str, Any]:
        """Plain JSON data, stable across machines: no file paths or line numbers unless
        ``locations`` is set, arguments and components sorted by name, steps in definition
        order."""
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": [p.to_dict() for p in self.parameters],
            "components": {
                name: self.components[name].to_dict(locations) for name in sorted(self.components)
            },
            "steps": [s.to_dict(locations) for s in self.steps],
            "groups": [g.to_dict(locations) for g in self.groups],
            "edges": [e.to_dict() for e in self.edges],
        }
        if locations:
            data["source"] = {"file": self.source_file, "line": self.line}
        return data


def code_fingerprint(func: Callable[..., Any]) -> str:
    """sha256 of a function's qualified name and its dedented source: changes exactly when the
    step's own code (or its decorator line) changes, and is the same in every process.

    Raises:
        PipelineDefinitionError: The source cannot be read (e.g. the function was built with
            ``exec``).
    """
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError) as exc:
        raise PipelineDefinitionError(
            f"Cannot read the source code of step function '{func.__qualname__}': {exc}.",
            hint="Define steps with `def` in a .py file or notebook cell, so their code can be "
            "fingerprinted for caching.",
        ) from exc
    return hashlib.sha256(f"{func.__qualname__}\n{source}".encode()).hexdigest()
