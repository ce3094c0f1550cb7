"""Define pipelines in Python: ``@step`` functions called inside a ``@pipeline`` function.

The pipeline function runs once, when it is decorated, with handles in place of its parameters.
Calling a step there does not run it: it records a ``Task`` and returns it, and the task's
``outputs`` are handles to pass to later steps. ``with when(...)``, ``with ParallelFor(...)``
and ``with ExitHandler(...)`` record groups around the steps called inside them. The result is
a frozen ``Graph``, validated before the decorator returns, so a broken pipeline fails at
import time with the step, the parameter and the line to fix::

    @step
    def train(data: Dataset, lr: float = 0.1) -> Outputs(model=Model, accuracy=float): ...

    @pipeline
    def training(data_path: str, threshold: float = 0.85):
        prep = prepare(path=data_path).resources(memory="4G")
        model = train(data=prep.output).retries(3, backoff=30)
        with when(model.outputs["accuracy"] > threshold):
            deploy(model=model.outputs["model"], version=RUN_ID)
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from datetime import timedelta
from types import TracebackType
from typing import Any, overload

from shipyard.errors import PipelineDefinitionError, did_you_mean
from shipyard.pipelines import graph as g
from shipyard.pipelines.types import (
    named_output_fields,
    type_name,
)
from shipyard.pipelines.validate import validate

__all__ = [
    "RUN_ID",
    "SCHEDULED_TIME",
    "Collected",
    "ExitHandler",
    "LoopItem",
    "OutputHandle",
    "ParallelFor",
    "Pipeline",
    "PipelineParam",
    "Placeholder",
    "Step",
    "Task",
    "pipeline",
    "step",
    "when",
]

_TRACE: ContextVar[_Trace | None] = ContextVar("shipyard_pipeline_trace", default=None)
_Location = tuple[str, int]


def _user_location() -> _Location:
    """The first frame outside this module: the line of the user's pipeline code."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return frame.f_code.co_filename, frame.f_lineno


def _at(loc: _Location) -> str:
    return g.where(*loc)


def _dns_name(name: str) -> str:
    """``train_model`` -> ``train-model``: the form Kubernetes, KFP and Airflow all accept."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _quantity(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --- handles: what the pipeline function sees instead of values ------------------------------


class _Handle(ABC):
    """A value known only at run time. Comparisons build conditions for ``when()``."""

    _trace: _Trace | None

    @property
    @abstractmethod
    def _ref(self) -> g.Operand: ...

    def _check_trace(self) -> None:
        current = _TRACE.get()
        if self._trace is not None and self._trace is not current:
            where = f"pipeline '{current.name}'" if current else "code outside any pipeline"
            raise PipelineDefinitionError(
                f"{self!r} belongs to pipeline '{self._trace.name}' and was used in {where} "
                f"({_at(_user_location())}).",
                hint="Use the outputs and parameters of a pipeline only inside its own "
                "pipeline function.",
            )

    def _compare(self, op: str, other: object) -> g.Comparison:
        self._check_trace()
        return g.Comparison(op, self._ref, _operand(other))  # type: ignore[arg-type]

    def __eq__(self, other: object) -> g.Comparison:  # type: ignore[override]
        return self._compare("==", other)

    def __ne__(self, other: object) -> g.Comparison:  # type: ignore[override]
        return self._compare("!=", other)

    def __lt__(self, other: object) -> g.Comparison:
        return self._compare("<", other)

    def __le__(self, other: object) -> g.Comparison:
        return self._compare("<=", other)

    def __gt__(self, other: object) -> g.Comparison:
        return self._compare(">", other)

    def __ge__(self, other: object) -> g.Comparison:
        return self._compare(">=", other)

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self) -> bool:
        raise PipelineDefinitionError(
            f"{self!r} has no value while the pipeline is being defined ({_at(_user_location())}).",
            hint="Branch with `with when(...):` instead of `if`; combine conditions with & | ~.",
        )

    def __iter__(self) -> Iterator[Any]:
        raise PipelineDefinitionError(
            f"Cannot iterate over {self!r} while the pipeline is being defined "
            f"({_at(_user_location())}).",
            hint="Fan out with `with ParallelFor(items) as item:` or step.map(...).",
        )

    def __format__(self, spec: str) -> str:
        raise PipelineDefinitionError(
            f"Cannot format {self!r} into a string while the pipeline is being defined "
            f"({_at(_user_location())}).",
            hint="Pass it to a step as its own argument and build the string inside the step.",
        )

    def __and__(self, other: object) -> Any:
        raise _parenthesize()

    __rand__ = __or__ = __ror__ = __and__


def _parenthesize() -> PipelineDefinitionError:
    return PipelineDefinitionError(
        f"'&' or '|' was applied to an output or parameter ({_at(_user_location())}).",
        hint="Wrap each comparison in parentheses: (a > 1) & (b < 2); & binds tighter than >.",
    )


class OutputHandle(_Handle):
    """One output of a task, e.g. ``train.outputs["model"]``."""

    def __init__(self, task: Task, name: str) -> None:
        self.task = task
        self.name = name
        self._trace = task._trace

    @property
    def _ref(self) -> g.OutputRef:
        return g.OutputRef(self.task.name, self.name)

    @property
    def type(self) -> str:
        port = self.task.step.component.output(self.name)
        return port.type if port else "?"

    def __repr__(self) -> str:
        return f"<output '{self.name}' of step '{self.task.name}'>"


class PipelineParam(_Handle):
    """A pipeline parameter inside the pipeline function."""

    def __init__(self, trace: _Trace, name: str, type: str) -> None:
        self._trace = trace
        self.name = name
        self.type = type

    @property
    def _ref(self) -> g.ParamRef:
        return g.ParamRef(self.name)

    def __repr__(self) -> str:
        return f"<pipeline parameter '{self.name}': {self.type}>"


class Placeholder(_Handle):
    """A value the platform fills in per run: ``RUN_ID`` or ``SCHEDULED_TIME`` (ISO 8601)."""

    def __init__(self, name: str) -> None:
        self._trace = None
        self.name = name
        self.type = g.PLACEHOLDERS[name]

    @property
    def _ref(self) -> g.PlaceholderRef:
        return g.PlaceholderRef(self.name)

    def __repr__(self) -> str:
        return self.name.upper()


RUN_ID = Placeholder("run_id")
SCHEDULED_TIME = Placeholder("scheduled_time")


class LoopItem(_Handle):
    """The current item of a ParallelFor; ``item["key"]`` reads one key of a dict item."""

    def __init__(
        self, trace: _Trace, loop: str, items: list[Any] | None, key: str | None = None
    ) -> None:
        self._trace = trace
        self.loop = loop
        self._items = items
        self.key = key

    @property
    def _ref(self) -> g.LoopItemRef:
        return g.LoopItemRef(self.loop, self.key)

    def __getitem__(self, key: str) -> LoopItem:
        if self.key is not None:
            raise PipelineDefinitionError(
                f"{self!r} is already one key of the loop item ({_at(_user_location())}).",
                hint="Read one level of keys from a loop item: item['lr'], not item['a']['b'].",
            )
        for position, item in enumerate(self._items or ()):
            if not isinstance(item, dict) or key not in item:
                raise PipelineDefinitionError(
                    f"Item {position} of ParallelFor '{self.loop}' has no key {key!r}: "
                    f"{item!r} ({_at(_user_location())}).",
                    hint="Give every item the same keys, or loop over plain values.",
                )
        return LoopItem(self._trace, self.loop, self._items, key)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        suffix = f"[{self.key!r}]" if self.key is not None else ""
        return f"<item of ParallelFor '{self.loop}'>{suffix}"


class Collected:
    """Fan-in: ``Collected(train.outputs["accuracy"])`` passes the list of that output over
    every iteration of the ParallelFor the producing step runs in."""

    def __init__(self, output: OutputHandle | Task) -> None:
        if isinstance(output, Task):
            output = output.output
        if not isinstance(output, OutputHandle):
            raise PipelineDefinitionError(
                f"Collected() takes a step output, not {output!r} ({_at(_user_location())}).",
                hint="Pass an output of a step called inside a ParallelFor, "
                "e.g. Collected(train.outputs['accuracy']).",
            )
        self.output = output

    def __repr__(self) -> str:
        return f"Collected({self.output!r})"


def _operand(value: object) -> g.Operand:
    if isinstance(value, Task):
        value = value.output
    if isinstance(value, _Handle):
        value._check_trace()
        return value._ref
    if isinstance(value, g.Condition | Collected | Step):
        raise PipelineDefinitionError(
            f"Cannot compare with {value!r} ({_at(_user_location())}).",
            hint="Compare an output or parameter with a literal, another output or a parameter.",
        )
    return g.Constant(_plain(value))


def _plain(value: Any) -> Any:
    """Tuples become lists, recursively, so a literal is the same after a JSON round trip."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _holds_handle(value: object) -> bool:
    if isinstance(value, _Handle | Task | Collected | g.Condition):
        return True
    if isinstance(value, list | tuple):
        return any(_holds_handle(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_handle(v) for v in value.values())
    return False


# --- tasks: one call of a step inside a pipeline ---------------------------------------------


class _Outputs(Mapping[str, OutputHandle]):
    def __init__(self, task: Task) -> None:
        self._task = task

    def __getitem__(self, name: str) -> OutputHandle:
        if name not in self:
            task = self._task
            names = [p.name for p in task.step.component.outputs]
            known = (
                f"Its outputs are: {', '.join(names)}."
                if names
                else (
                    "It declares no outputs; add a return annotation such as "
                    "`-> Outputs(model=Model)`."
                )
            )
            raise PipelineDefinitionError(
                f"Step '{task.name}' has no output '{name}' ({_at(_user_location())})."
                + did_you_mean(name, names),
                hint=known,
            )
        return OutputHandle(self._task, name)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self._task.step.component.outputs)

    def __iter__(self) -> Iterator[str]:
        return iter(p.name for p in self._task.step.component.outputs)

    def __len__(self) -> int:
        return len(self._task.step.component.outputs)


class Task:
    """One call of a step inside a pipeline: configure it, wire its outputs to later steps.

    Every setter returns the task, so calls chain::

        train(data=prep.output).resources(cpu=4, memory="8G", gpu=1).retries(3).cache(False)
    """

    def __init__(
        self,
        trace: _Trace,
        step: Step,
        name: str,
        component: str,
        arguments: dict[str, g.Binding],
        group: str | None,
        loc: _Location,
    ) -> None:
        self._trace = trace
        self.step = step
        self.name = name
        self._component = component
        self._arguments = arguments
        self._group = group
        self._loc = loc
        self._after: list[Task] = []
        self._resources: dict[str, Any] = {}
        self._retry: g.RetryPolicy | None = None
        self._timeout: float | None = None
        self._cache = True

    def __repr__(self) -> str:
        return f"<task '{self.name}' of pipeline '{self._trace.name}'>"

    @property
    def outputs(self) -> Mapping[str, OutputHandle]:
        """Handles to this task's outputs by name; unknown names fail with the list."""
        return _Outputs(self)

    @property
    def output(self) -> OutputHandle:
        """The only output; fails when the step has none or several."""
        names = [p.name for p in self.step.component.outputs]
        if len(names) != 1:
            have = f"has outputs {', '.join(names)}" if names else "has no outputs"
            raise PipelineDefinitionError(
                f"Step '{self.name}' {have}, so .output is ambiguous ({_at(_user_location())}).",
                hint=f"Pick one with {self.name}.outputs['<name>']."
                if names
                else "Declare an output with a return annotation, e.g. `-> Dataset`.",
            )
        return OutputHandle(self, names[0])

    def _mutable(self) -> None:
        if self._trace.closed:
            raise PipelineDefinitionError(
                f"Task '{self.name}' belongs to pipeline '{self._trace.name}', which is already "
                f"defined ({_at(_user_location())}).",
                hint="Configure steps inside the pipeline function.",
            )

    def resources(
        self,
        *,
        cpu: float | str | None = None,
        cpu_request: float | str | None = None,
        cpu_limit: float | str | None = None,
        memory: int | str | None = None,
        memory_request: int | str | None = None,
        memory_limit: int | str | None = None,
        gpu: int | None = None,
        accelerator: str | None = None,
        node_selector: Mapping[str, str] | None = None,
    ) -> Task:
        """Set what the step asks of the machine; later calls update only what they name.

        Args:
            cpu: Cores (``2``, ``0.5``, ``'500m'``) as both request and limit.
            cpu_request, cpu_limit: Set one side only.
            memory: Bytes or a Kubernetes quantity (``'8G'``, ``'512Mi'``) as request and limit.
            memory_request, memory_limit: Set one side only.
            gpu: Accelerator count; with ``accelerator`` alone it is 1.
            accelerator: Accelerator type, e.g. ``'nvidia-tesla-k80'`` or ``'nvidia.com/gpu'``.
            node_selector: Kubernetes node labels the step must run on.
        """
        self._mutable()
        updates: dict[str, Any] = {}
        if cpu is not None:
            updates["cpu_request"] = updates["cpu_limit"] = _quantity(cpu)
        if memory is not None:
            updates["memory_request"] = updates["memory_limit"] = _quantity(memory)
        for key, value in (
            ("cpu_request", cpu_request),
            ("cpu_limit", cpu_limit),
            ("memory_request", memory_request),
            ("memory_limit", memory_limit),
        ):
            if value is not None:
                updates[key] = _quantity(value)
        if gpu is not None:
            updates["gpu"] = gpu
        if accelerator is not None:
            updates["accelerator"] = accelerator
        if node_selector is not None:
            updates["node_selector"] = {**self._resources.get("node_selector", {}), **node_selector}
        self._resources.update(updates)
        return self

    def retries(
        self,
        n: int,
        backoff: float | timedelta = 0.0,
        *,
        factor: float = 2.0,
        max_backoff: float | timedelta = 3600.0,
    ) -> Task:
        """Retry a failed run ``n`` times, waiting ``backoff`` seconds, times ``factor`` after
        each retry, at most ``max_backoff``; ``factor=1`` gives Airflow's fixed retry delay."""
        self._mutable()
        self._retry = g.RetryPolicy(n, _seconds(backoff), factor, _seconds(max_backoff))
        return self

    def timeout(self, seconds: float | timedelta) -> Task:
        """Stop and fail the step when one attempt runs longer than this."""
        self._mutable()
        self._timeout = _seconds(seconds)
        return self

    def cache(self, enabled: bool = True) -> Task:
        """Reuse outputs of an earlier run with the same code, inputs and parameters (default
        on); turn it off for steps with side effects, such as a deploy."""
        self._mutable()
        self._cache = bool(enabled)
        return self

    def after(self, *tasks: Task | list[Task]) -> Task:
        """Run after ``tasks`` even though no output flows between them."""
        self._mutable()
        for task in (t for item in tasks for t in (item if isinstance(item, list) else [item])):
            if not isinstance(task, Task):
                raise PipelineDefinitionError(
                    f"Step '{self.name}'.after() takes tasks, not {task!r} "
                    f"({_at(_user_location())}).",
                    hint="Pass the value a step call returned, e.g. train.after(prepare_task).",
                )
            if task._trace is not self._trace:
                raise PipelineDefinitionError(
                    f"Step '{self.name}' cannot run after {task!r}, which belongs to another "
                    f"pipeline ({_at(_user_location())}).",
                    hint="Order only steps called in the same pipeline function.",
                )
            self._after.append(task)
        return self

    def __rshift__(self, other: Task | list[Task]) -> Task | list[Task]:
        """``a >> b``: b runs after a (Airflow's notation); returns b so chains read left to
        right."""
        for task in other if isinstance(other, list) else [other]:
            self._as_task(task).after(self)
        return other

    def __rrshift__(self, other: list[Task]) -> Task:
        """``[a, b] >> c``."""
        return self.after(other)

    def __lshift__(self, other: Task | list[Task]) -> Task | list[Task]:
        """``b << a``: b runs after a."""
        self.after(other)
        return other

    def __rlshift__(self, other: list[Task]) -> Task:
        """``[b, c] << a``."""
        for task in other:
            self._as_task(task).after(self)
        return self

    def _as_task(self, value: object) -> Task:
        if isinstance(value, Task):
            return value
        raise PipelineDefinitionError(
            f"Only step calls can be ordered with >> and <<, not {value!r} "
            f"({_at(_user_location())}).",
            hint="Order the tasks step calls return, e.g. validate_task >> train_task.",
        )

    def _node(self) -> g.StepNode:
        resources = dict(self._resources)
        if resources.get("accelerator") is not None and resources.get("gpu") is None:
            resources["gpu"] = 1
        return g.StepNode(
            name=self.name,
            component=self._component,
            arguments=dict(self._arguments),
            after=tuple(dict.fromkeys(t.name for t in self._after)),
            group=self._group,
            resources=g.Resources(**resources),
            retry=self._retry,
            timeout=self._timeout,
            cache=self._cache,
            source_file=self._loc[0],
            line=self._loc[1],
        )


# --- steps -----------------------------------------------------------------------------------


def _def_location(func: Callable[..., Any]) -> _Location:
    """The file and the line of ``def`` (not of the first decorator) of a function."""
    code = func.__code__
    try:
        lines, start = inspect.getsourcelines(func)
    except (OSError, TypeError):
        return code.co_filename, code.co_firstlineno
    offset = next(
        (i for i, text in enumerate(lines) if text.lstrip().startswith(("def ", "async def "))),
        0,
    )
    return code.co_filename, start + offset


def _resolve_annotations(func: Callable[..., Any], what: str, loc: _Location) -> dict[str, Any]:
    try:
        return inspect.get_annotations(func, eval_str=True)
    except Exception as exc:
        raise PipelineDefinitionError(
            f"Cannot resolve the type annotations of {what} ({_at(loc)}): {exc}.",
            hint="Import every type used in an annotation at module level.",
        ) from exc


def _port_type(annotation: Any, what: str, loc: _Location) -> str:
    try:
        return type_name(annotation)
    except ValueError as exc:
        raise PipelineDefinitionError(f"{what} ({_at(loc)}): {exc}") from exc


def _input_ports(
    func: Callable[..., Any], annotations: dict[str, Any], what: str, loc: _Location
) -> tuple[g.Port, ...]:
    ports = []
    for param in inspect.signature(func).parameters.values():
        label = f"Parameter '{param.name}' of {what}"
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise PipelineDefinitionError(
                f"{label} ({_at(loc)}) is {param.kind.description}; steps and pipelines take "
                "named parameters only.",
                hint="Replace *args, **kwargs and positional-only parameters with named ones.",
            )
        if param.name not in annotations:
            raise PipelineDefinitionError(
                f"{label} ({_at(loc)}) has no type annotation.",
                hint="Annotate it with int, float, str, bool, list, dict or an artifact type "
                "(Dataset, Model, Metrics, Artifact), e.g. `data: Dataset`.",
            )
        default = g.NO_DEFAULT if param.default is param.empty else param.default
        ports.append(g.Port(param.name, _port_type(annotations[param.name], label, loc), default))
    return tuple(ports)


def _output_ports(annotation: Any, what: str, loc: _Location) -> tuple[tuple[g.Port, ...], str]:
    if annotation is inspect.Signature.empty or annotation is None or annotation is type(None):
        return (), "none"
    try:
        fields = named_output_fields(annotation)
    except ValueError as exc:
        raise PipelineDefinitionError(
            f"The return annotation of {what} ({_at(loc)}): {exc}.",
            hint="Import every type used in an annotation at module level.",
        ) from exc
    named = fields if fields is not None else {"output": annotation}
    ports = []
    for name, field_annotation in named.items():
        label = f"Output '{name}' of {what}"
        port_type = _port_type(field_annotation, label, loc)
        if port_type.startswith("list[") and port_type[5:-1] in (
            "Artifact",
            "Dataset",
            "Model",
            "Metrics",
        ):
            raise PipelineDefinitionError(
                f"{label} ({_at(loc)}) is a list of artifacts; a step outputs one artifact per "
                "name.",
                hint="Declare one named output per artifact with Outputs(...), or fan out with "
                "ParallelFor and gather with Collected(...).",
            )
        ports.append(g.Port(name, port_type))
    return tuple(ports), "named" if fields is not None else "single"


def _component(func: Callable[..., Any], name: str | None) -> g.Component:
    loc = _def_location(func)
    what = f"step function '{func.__qualname__}'"
    annotations = _resolve_annotations(func, what, loc)
    outputs, returns = _output_ports(annotations.get("return", inspect.Signature.empty), what, loc)
    dns = _dns_name(name or func.__name__)
    if not dns:
        raise PipelineDefinitionError(
            f"Step function '{func.__qualname__}' ({_at(loc)}) has no usable step name.",
            hint="Name it with @step(name='my-step').",
        )
    return g.Component(
        name=dns,
        function=f"{func.__module__}:{func.__qualname__}",
        fingerprint=g.code_fingerprint(func),
        inputs=_input_ports(func, annotations, what, loc),
        outputs=outputs,
        returns=returns,  # type: ignore[arg-type]
        description=(inspect.getdoc(func) or "").split("\n", 1)[0],
        source_file=loc[0],
        line=loc[1],
    )


class Step:
    """A function made into a pipeline step by ``@step``.

    Inside a ``@pipeline`` function a call records a ``Task``; anywhere else it simply runs the
    function, so steps stay unit-testable. ``component`` holds the typed signature and the code
    fingerprint.
    """

    def __init__(self, func: Callable[..., Any], *, name: str | None = None) -> None:
        if isinstance(func, Step) or not inspect.isfunction(func):
            raise TypeError(f"@step decorates a plain function, not {func!r}")
        functools.update_wrapper(self, func)
        self.func = func
        self.component = _component(func, name)

    @property
    def name(self) -> str:
        return self.component.name

    def __repr__(self) -> str:
        return f"<step '{self.name}' ({self.component.function})>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        trace = _TRACE.get()
        if trace is None:
            return self.func(*args, **kwargs)
        return trace.call(self, args, kwargs, _user_location())

    def map(self, **kwargs: Any) -> Task:
        """Fan out: call the step once per item of the one argument given a list for a
        non-list input, inside a new ParallelFor; gather the results with ``Collected``.

        Example:
            ``scores = train.map(lr=[0.1, 0.01], data=prep.output)`` then
            ``pick(accuracies=Collected(scores.outputs["accuracy"]))``.
        """
        loc = _user_location()
        trace = _require_trace("step.map()", loc)
        mapped = [k for k, v in kwargs.items() if self._maps_over(k, v)]
        if len(mapped) != 1:
            found = f"got {len(mapped)} ({', '.join(mapped)})" if mapped else "got none"
            raise PipelineDefinitionError(
                f"{self.name}.map() iterates over exactly one argument that passes a list to a "
                f"non-list input; {found} ({_at(loc)}).",
                hint="Map over one argument and pass the others as they are; for a grid, nest "
                "`with ParallelFor(...)` blocks.",
            )
        loop = ParallelFor.__new__(ParallelFor)
        loop._setup(trace, kwargs[mapped[0]], None, loc)
        with loop as item:
            return trace.call(self, (), {**kwargs, mapped[0]: item}, loc)

    def _maps_over(self, name: str, value: object) -> bool:
        port = self.component.input(name)
        if port is None or port.type.startswith("list"):
            return False
        if isinstance(value, Task) and len(value.step.component.outputs) == 1:
            value = value.output
        if isinstance(value, OutputHandle | PipelineParam):
            return value.type.startswith("list")
        return isinstance(value, list | tuple)


@overload
def step(func: Callable[..., Any], /) -> Step: ...
@overload
def step(*, name: str | None = None) -> Callable[[Callable[..., Any]], Step]: ...
def step(
    func: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a typed function a pipeline step: ``@step`` or ``@step(name="load-data")``.

    Parameters are the step's inputs: int, float, str, bool, list, dict (JSON parameters) or
    Dataset, Model, Metrics, Artifact (files). The return annotation declares the outputs: one
    type (an output named ``output``), ``Outputs(model=Model, accuracy=float)``, a NamedTuple
    or a dict of names to types.

    Raises:
        PipelineDefinitionError: A parameter lacks an annotation or has an unsupported type.
    """
    if func is not None:
        return Step(func, name=name)
    return lambda f: Step(f, name=name)


# --- groups ----------------------------------------------------------------------------------


def _require_trace(what: str, loc: _Location) -> _Trace:
    trace = _TRACE.get()
    if trace is None:
        raise PipelineDefinitionError(
            f"{what} was used outside a pipeline function ({_at(loc)}).",
            hint="Use it inside a function decorated with @pipeline.",
        )
    return trace


class _Block(ABC):
    """Pushes a group on enter and pops it on exit; the group gets its id on enter."""

    _prefix = ""  # group ids are "<prefix>-<n>", numbered across kinds as KFP does
    _trace: _Trace
    _loc: _Location
    _id: str | None = None

    @abstractmethod
    def _make_group(self, group_id: str, parent: str | None) -> g.Group: ...

    def _enter(self) -> str:
        trace = self._trace
        if trace.closed:
            raise PipelineDefinitionError(
                f"This block belongs to pipeline '{trace.name}', which is already defined "
                f"({_at(self._loc)}).",
                hint="Use when/ParallelFor/ExitHandler blocks inside the pipeline function.",
            )
        trace.counter += 1
        self._id = f"{self._prefix}-{trace.counter}"
        trace.groups.append(self._make_group(self._id, trace.stack[-1] if trace.stack else None))
        trace.stack.append(self._id)
        return self._id

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._trace.stack and self._trace.stack[-1] == self._id:
            self._trace.stack.pop()


class _ConditionBlock(_Block):
    _prefix = "condition"

    def __init__(self, trace: _Trace, condition: g.Condition, loc: _Location) -> None:
        self._trace = trace
        self._condition = condition
        self._loc = loc

    def _make_group(self, group_id: str, parent: str | None) -> g.Group:
        return g.ConditionGroup(group_id, self._condition, parent, *self._loc)

    def __enter__(self) -> g.Condition:
        self._enter()
        return self._condition


def when(condition: g.Condition | OutputHandle | PipelineParam | LoopItem) -> _ConditionBlock:
    """``with when(train.outputs["accuracy"] > threshold):`` runs the steps inside only when the
    condition holds at run time. Conditions compare outputs, parameters, loop items and literals
    with == != < <= > >=, and combine with & (and), | (or) and ~ (not). A bool output or
    parameter is a condition by itself.
    """
    loc = _user_location()
    trace = _require_trace("when()", loc)
    if isinstance(condition, _Handle) and not isinstance(condition, Placeholder):
        condition = condition._compare("==", True)
    if not isinstance(condition, g.Condition):
        raise PipelineDefinitionError(
            f"when() takes a condition on a step output or pipeline parameter, not "
            f"{condition!r} ({_at(loc)}).",
            hint="Compare a handle, e.g. when(train.outputs['accuracy'] > 0.9); a plain Python "
            "value is known already, so use a normal `if` for it.",
        )
    return _ConditionBlock(trace, condition, loc)


class ParallelFor(_Block):
    """``with ParallelFor(items) as item:`` runs the steps inside once per item, in parallel
    (at most ``parallelism`` at a time). ``items`` is a literal list, a list parameter or a
    list output of an upstream step; gather results after the block with ``Collected``.
    """

    _prefix = "for-loop"

    def __init__(self, items: object, parallelism: int | None = None) -> None:
        loc = _user_location()
        self._setup(_require_trace("ParallelFor", loc), items, parallelism, loc)

    def _setup(self, trace: _Trace, items: object, parallelism: int | None, loc: _Location) -> None:
        self._trace = trace
        self._loc = loc
        self._items = trace.binding(items, "The items of ParallelFor", loc)
        self._parallelism = parallelism

    def _make_group(self, group_id: str, parent: str | None) -> g.Group:
        return g.ParallelForGroup(group_id, self._items, parent, self._parallelism, *self._loc)

    def __enter__(self) -> LoopItem:
        loop = self._enter()
        literal = self._items.value if isinstance(self._items, g.Constant) else None
        return LoopItem(self._trace, loop, literal if isinstance(literal, list) else None)


class ExitHandler(_Block):
    """``with ExitHandler(cleanup()):`` runs ``cleanup`` after every step inside the block has
    finished, whether they succeeded, failed or were skipped. Use it at the top level of the
    pipeline, once per exit step.
    """

    _prefix = "exit-handler"

    def __init__(self, exit_step: Task) -> None:
        loc = _user_location()
        trace = _require_trace("ExitHandler", loc)
        if not isinstance(exit_step, Task) or exit_step._trace is not trace:
            raise PipelineDefinitionError(
                f"ExitHandler takes a step call of this pipeline, not {exit_step!r} ({_at(loc)}).",
                hint="Call the cleanup step first: `with ExitHandler(cleanup()):`.",
            )
        self._trace = trace
        self._loc = loc
        self._exit_step = exit_step

    def _make_group(self, group_id: str, parent: str | None) -> g.Group:
        return g.ExitHandlerGroup(group_id, self._exit_step.name, parent, *self._loc)

    def __enter__(self) -> Task:
        self._enter()
        return self._exit_step


# --- pipelines -------------------------------------------------------------------------------


class _Trace:
    """What one run of a pipeline function records."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tasks: list[Task] = []
        self.task_names: set[str] = set()
        self.components: dict[str, Step] = {}
        self.groups: list[g.Group] = []
        self.stack: list[str] = []
        self.counter = 0
        self.closed = False

    def _unique(self, base: str, taken: Mapping[str, object] | set[str]) -> str:
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        return name

    def component_key(self, step: Step) -> str:
        for key, known in self.components.items():
            if known is step:
                return key
        key = self._unique(step.component.name, self.components)
        self.components[key] = step
        return key

    def binding(self, value: object, what: str, loc: _Location) -> g.Binding:
        if isinstance(value, Task):
            value = value.output
        if isinstance(value, Collected):
            value.output._check_trace()
            return g.CollectedRef(value.output.task.name, value.output.name)
        if isinstance(value, _Handle):
            value._check_trace()
            return value._ref
        if isinstance(value, g.Condition):
            raise PipelineDefinitionError(
                f"{what} ({_at(loc)}) is a condition, which has no value until the pipeline runs.",
                hint="Use conditions in `with when(...):`; to pass a flag, compute it in a step.",
            )
        if isinstance(value, Step):
            raise PipelineDefinitionError(
                f"{what} ({_at(loc)}) is the step function '{value.name}' itself.",
                hint=f"Call it and pass one of its outputs: {value.func.__name__}(...).output.",
            )
        if _holds_handle(value):
            raise PipelineDefinitionError(
                f"{what} ({_at(loc)}) is a list or dict holding step outputs or parameters; "
                "only literal values can be nested.",
                hint="Pass each output to its own input, or fan out with ParallelFor and gather "
                "with Collected(...).",
            )
        return g.Constant(_plain(value))

    def call(
        self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any], loc: _Location
    ) -> Task:
        inputs = step.component.inputs
        if len(args) > len(inputs):
            raise PipelineDefinitionError(
                f"Step '{step.name}' takes {len(inputs)} arguments but {len(args)} were given "
                f"({_at(loc)}).",
                hint="Pass arguments by keyword, e.g. train(data=prep.output).",
            )
        given = {port.name: value for port, value in zip(inputs, args, strict=False)}
        for key, value in kwargs.items():
            if key in given:
                raise PipelineDefinitionError(
                    f"Step '{step.name}' got two values for input '{key}' ({_at(loc)}).",
                    hint="Pass each input once, by position or by keyword.",
                )
            given[key] = value
        component = self.component_key(step)
        name = self._unique(component, self.task_names)
        arguments = {
            key: self.binding(value, f"Argument '{key}' of step '{name}'", loc)
            for key, value in given.items()
        }
        group = self.stack[-1] if self.stack else None
        task = Task(self, step, name, component, arguments, group, loc)
        self.tasks.append(task)
        self.task_names.add(name)
        return task


class Pipeline:
    """A traced, validated pipeline: ``graph`` is its plain-data form, ``step_functions`` maps
    each component name in the graph to its ``Step`` (and so to the function to run).

    Example:
        >>> @pipeline(name="nightly")  # doctest: +SKIP
        ... def nightly(data_path: str, threshold: float = 0.85): ...
        >>> nightly.graph.topological_order()  # doctest: +SKIP
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> None:
        if not inspect.isfunction(func):
            raise TypeError(f"@pipeline decorates a plain function, not {func!r}")
        functools.update_wrapper(self, func)
        self.func = func
        self.name = _dns_name(name or func.__name__)
        self.description = (
            description
            if description is not None
            else (inspect.getdoc(func) or "").split("\n", 1)[0]
        )
        loc = _def_location(func)
        what = f"pipeline '{self.name}'"
        parameters = _input_ports(func, _resolve_annotations(func, what, loc), what, loc)
        trace = _Trace(self.name)
        token = _TRACE.set(trace)
        try:
            func(**{p.name: PipelineParam(trace, p.name, p.type) for p in parameters})
        finally:
            _TRACE.reset(token)
            trace.closed = True
        self.step_functions: dict[str, Step] = dict(trace.components)
        self.graph = g.Graph(
            name=self.name,
            steps=tuple(task._node() for task in trace.tasks),
            components={
                key: dataclasses.replace(s.component, name=key)
                for key, s in self.step_functions.items()
            },
            parameters=parameters,
            groups=tuple(trace.groups),
            description=self.description,
            source_file=loc[0],
            line=loc[1],
        )
        validate(self.graph)

    @property
    def parameters(self) -> tuple[g.Port, ...]:
        return self.graph.parameters

    def to_dict(self, locations: bool = False) -> dict[str, Any]:
        """The graph as JSON data; see ``Graph.to_dict``."""
        return self.graph.to_dict(locations)

    def __repr__(self) -> str:
        return f"<pipeline '{self.name}' with {len(self.graph.steps)} steps>"


@overload
def pipeline(func: Callable[..., Any], /) -> Pipeline: ...
@overload
def pipeline(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Pipeline]: ...
def pipeline(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Trace a function of steps into a validated ``Pipeline``, right away.

    The function's parameters become pipeline parameters (typed, with optional defaults); it
    runs once with handles for them. The name defaults to the function's name with ``_`` as
    ``-``; the description to the first docstring line.

    Raises:
        PipelineDefinitionError: The pipeline is invalid; the message names the step, the
            parameter and the line, and says what to change.
    """
    if func is not None:
        return Pipeline(func, name=name, description=description)
    return lambda f: Pipeline(f, name=name, description=description)
