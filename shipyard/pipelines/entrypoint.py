"""``python -m shipyard.pipelines.entrypoint``: run one task of a pipeline where an
orchestrator put it (a KFP container, an Airflow worker), through ``steprun.execute_step``.

Two ways to hand a task its values:

``run`` takes them on the command line, the way KFP placeholders fill them in::

    python -m shipyard.pipelines.entrypoint run --pipeline pkg.flows:training --task train \\
        --param lr=0.1 --input data=/gcs/.../data --output model=/gcs/.../model \\
        --output-param accuracy=/tmp/outputs/accuracy

``task`` reads them from a shared run folder, where earlier tasks left their outputs (how
an Airflow DAG passes data between tasks). ``init`` writes the run's parameters there,
``items`` a ParallelFor's items, and ``condition`` prints whether a ``when`` block runs::

    RUN=/shared/runs/<dag>/<run id>
    python -m shipyard.pipelines.entrypoint init --pipeline REF --run-dir $RUN --params '{...}'
    python -m shipyard.pipelines.entrypoint task --pipeline REF --run-dir $RUN --task train
    python -m shipyard.pipelines.entrypoint items --pipeline REF --run-dir $RUN --loop for-loop-1
    python -m shipyard.pipelines.entrypoint task ... --task fit --iteration 2
    python -m shipyard.pipelines.entrypoint condition --pipeline REF --run-dir $RUN \\
        --group condition-3

Run folder layout: ``run.json`` (params, run id, scheduled time),
``loops/<loop>/<outer iteration>.json`` (items) and
``steps/<task>/<iteration>/outputs.json`` plus ``.../artifacts/<output>``; an iteration is
the indices of the enclosing loops joined by ``_`` (``-`` outside loops).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidArgumentError, PipelineError, ShipyardError
from shipyard.pipelines import graph as g
from shipyard.pipelines.types import is_artifact

__all__ = ["RunFolder", "decode_parameter", "encode_parameter", "main"]

NO_LOOP = "-"


def decode_parameter(text: str, type_name: str) -> Any:
    """A parameter value from its command-line text: strings as they are, everything else
    JSON (KFP writes booleans as ``true``/``false`` and numbers as plain text)."""
    if type_name == "str":
        return text
    if type_name == "bool" and text in ("True", "False"):
        return text == "True"
    try:
        return json.loads(text)
    except ValueError:
        if type_name == "any":
            return text
        raise InvalidArgumentError(
            f"{text[:200]!r} is not a {type_name} value (JSON expected)."
        ) from None


def encode_parameter(value: Any, type_name: str) -> str:
    """The text an output parameter file holds: strings raw, the rest JSON (as KFP reads)."""
    if type_name == "str" and isinstance(value, str):
        return value
    return json.dumps(value)


def _pairs(values: Sequence[str] | None, flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(f"{flag} takes NAME=VALUE, not {item!r}.")
        pairs[key] = value
    return pairs


def _load(reference: str) -> Any:
    from shipyard.pipelines.compile.reference import load_pipeline

    return load_pipeline(reference)


class _Timeout(PipelineError):
    code = "step_timeout"


def _alarm(seconds: float | None, task: str) -> None:
    if not seconds:
        return

    def expired(signum: int, frame: Any) -> None:
        raise _Timeout(f"Step '{task}' ran longer than its timeout of {seconds:g} s.")

    signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _run(args: argparse.Namespace) -> int:
    from shipyard.pipelines.steprun import execute_step

    pipeline = _load(args.pipeline)
    graph = pipeline.graph
    if not graph.has_step(args.task):
        raise InvalidArgumentError(f"Pipeline '{pipeline.name}' has no step '{args.task}'.")
    component = graph.component_of(args.task)
    params: dict[str, Any] = {}
    for name, text in _pairs(args.param, "--param").items():
        port = component.input(name)
        if port is None:
            raise InvalidArgumentError(f"Step '{args.task}' has no input '{name}'.")
        params[name] = decode_parameter(text, port.type)
    inputs = {k: Path(v) for k, v in _pairs(args.input, "--input").items()}
    outputs = {k: Path(v) for k, v in _pairs(args.output, "--output").items()}
    output_files = _pairs(args.output_param, "--output-param")
    _alarm(args.timeout, args.task)
    try:
        values = execute_step(pipeline, args.task, params, inputs, outputs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    for name, target in output_files.items():
        port = component.output(name)
        if port is None or name not in values:
            raise PipelineError(f"Step '{args.task}' produced no parameter output '{name}'.")
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(encode_parameter(values[name], port.type))
    return 0


class RunFolder:
    """The shared folder of one run, and how bindings resolve against it."""

    def __init__(self, pipeline: Any, root: str | os.PathLike[str]) -> None:
        self.pipeline = pipeline
        self.graph: g.Graph = pipeline.graph
        self.root = Path(root)
        run_file = self.root / "run.json"
        self.run: dict[str, Any] = json.loads(run_file.read_text()) if run_file.exists() else {}

    # -- layout --------------------------------------------------------------------------

    def loops_of(self, step: str) -> tuple[str, ...]:
        return tuple(grp.id for grp in self.graph.groups_of(step) if grp.kind == "parallel_for")

    def group_loops(self, group: str) -> tuple[str, ...]:
        return tuple(
            gid for gid in self.graph.scope(group) if self.graph.group(gid).kind == "parallel_for"
        )

    @staticmethod
    def key(indices: Sequence[int]) -> str:
        return "_".join(str(i) for i in indices) if indices else NO_LOOP

    def step_dir(self, step: str, indices: Sequence[int]) -> Path:
        return self.root / "steps" / step / self.key(indices)

    def items_file(self, loop: str, outer: Sequence[int]) -> Path:
        return self.root / "loops" / loop / f"{self.key(outer)}.json"

    # -- values --------------------------------------------------------------------------

    def parameter(self, name: str) -> Any:
        params = self.run.get("params", {})
        if name in params:
            return params[name]
        port = self.graph.parameter(name)
        if port is None or port.required:
            raise InvalidArgumentError(f"Pipeline parameter '{name}' has no value in this run.")
        return port.default

    def items(self, loop: str, ctx: Mapping[str, int]) -> list[Any]:
        parent = self.graph.group(loop).parent
        outer = [ctx[lp] for lp in (self.group_loops(parent) if parent else ())]
        path = self.items_file(loop, outer)
        if not path.exists():
            raise PipelineError(f"The items of ParallelFor '{loop}' were not written yet.")
        return list(json.loads(path.read_text()))

    def _indices(self, loops: Sequence[str], ctx: Mapping[str, int]) -> list[int]:
        return [ctx[loop] for loop in loops]

    def output(self, step: str, output: str, indices: Sequence[int]) -> Any:
        folder = self.step_dir(step, indices)
        port = self.graph.output_port(step, output)
        if port is not None and is_artifact(port.type):
            path = folder / "artifacts" / output
            if not path.exists():
                raise PipelineError(f"Output '{output}' of step '{step}' was not written.")
            return path
        outputs_file = folder / "outputs.json"
        if not outputs_file.exists():
            raise PipelineError(f"Step '{step}' has not finished in this run (no outputs).")
        return json.loads(outputs_file.read_text())[output]

    def resolve(self, binding: g.Binding, ctx: Mapping[str, int]) -> Any:
        """The value ``binding`` has for a task at loop position ``ctx`` (loop id -> index)."""
        match binding:
            case g.Constant(value):
                return value
            case g.ParamRef(name):
                return self.parameter(name)
            case g.PlaceholderRef(name):
                return self.run.get(name, "")
            case g.OutputRef(step, output):
                return self.output(step, output, self._indices(self.loops_of(step), ctx))
            case g.LoopItemRef(loop, key):
                items = self.items(loop, ctx)
                if not 0 <= ctx[loop] < len(items):
                    raise InvalidArgumentError(
                        f"ParallelFor '{loop}' has {len(items)} items; there is no "
                        f"iteration {ctx[loop]}."
                    )
                item = items[ctx[loop]]
                return item if key is None else item[key]
            case g.CollectedRef(step, output):
                loops = self.loops_of(step)
                inner, outer = loops[-1], loops[:-1]
                base = dict(ctx)
                values = []
                for index in range(len(self.items(inner, base))):
                    indices = [*self._indices(outer, base), index]
                    if (self.step_dir(step, indices) / "outputs.json").exists():
                        values.append(self.output(step, output, indices))
                return values
        raise TypeError(f"not a binding: {binding!r}")  # pragma: no cover

    def context(self, loops: Sequence[str], iteration: str | None) -> dict[str, int]:
        indices = [] if not iteration or iteration == NO_LOOP else iteration.split("_")
        if len(indices) != len(loops):
            raise InvalidArgumentError(
                f"--iteration needs {len(loops)} loop indices (for {', '.join(loops) or 'none'}), "
                f"not {iteration!r}."
            )
        return {loop: int(i) for loop, i in zip(loops, indices, strict=True)}


def _task(args: argparse.Namespace) -> int:
    from shipyard.pipelines.steprun import execute_step

    folder = RunFolder(_load(args.pipeline), args.run_dir)
    graph = folder.graph
    if not graph.has_step(args.task):
        raise InvalidArgumentError(f"Pipeline '{graph.name}' has no step '{args.task}'.")
    node = graph.step(args.task)
    component = graph.components[node.component]
    loops = folder.loops_of(args.task)
    ctx = folder.context(loops, args.iteration)
    params: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    for name, binding in node.arguments.items():
        value = folder.resolve(binding, ctx)
        port = component.input(name)
        if port is not None and is_artifact(port.type):
            inputs[name] = value
        else:
            params[name] = value
    out_dir = folder.step_dir(args.task, [ctx[lp] for lp in loops])
    outputs = {
        p.name: out_dir / "artifacts" / p.name for p in component.outputs if is_artifact(p.type)
    }
    _alarm(node.timeout, args.task)
    try:
        values = execute_step(folder.pipeline, args.task, params, inputs, outputs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "outputs.json.tmp"
    tmp.write_text(json.dumps(values))
    tmp.replace(out_dir / "outputs.json")  # written last: its presence means "finished"
    print(json.dumps(values))
    return 0


def _init(args: argparse.Namespace) -> int:
    pipeline = _load(args.pipeline)
    given = json.loads(args.params or "{}")
    params: dict[str, Any] = {}
    for port in pipeline.graph.parameters:
        if port.name in given and given[port.name] is not None:
            params[port.name] = given[port.name]
        elif not port.required:
            params[port.name] = port.default
        else:
            raise InvalidArgumentError(
                f"Pipeline '{pipeline.name}' needs parameter '{port.name}'.",
                hint="Pass it in the run's configuration (params).",
            )
    root = Path(args.run_dir)
    root.mkdir(parents=True, exist_ok=True)
    run = {"params": params, "run_id": args.run_id or "", "scheduled_time": args.scheduled_time}
    (root / "run.json").write_text(json.dumps(run))
    return 0


def _items(args: argparse.Namespace) -> int:
    folder = RunFolder(_load(args.pipeline), args.run_dir)
    group = folder.graph.group(args.loop)
    if not isinstance(group, g.ParallelForGroup):
        raise InvalidArgumentError(f"'{args.loop}' is not a ParallelFor of this pipeline.")
    outer_loops = folder.group_loops(group.parent) if group.parent else ()
    ctx = folder.context(outer_loops, args.iteration)
    items = folder.resolve(group.items, ctx)
    if not isinstance(items, list):
        raise PipelineError(f"The items of ParallelFor '{args.loop}' are not a list: {items!r}.")
    path = folder.items_file(args.loop, [ctx[lp] for lp in outer_loops])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items))
    print(json.dumps(len(items)))
    return 0


def _condition(args: argparse.Namespace) -> int:
    folder = RunFolder(_load(args.pipeline), args.run_dir)
    group = folder.graph.group(args.group)
    if not isinstance(group, g.ConditionGroup):
        raise InvalidArgumentError(f"'{args.group}' is not a `when` block of this pipeline.")
    ctx = folder.context(folder.group_loops(group.parent) if group.parent else (), args.iteration)
    outputs: dict[str, dict[str, Any]] = {}
    items: dict[str, Any] = {}
    for ref in group.condition.refs():
        if isinstance(ref, g.OutputRef):
            outputs.setdefault(ref.step, {})[ref.output] = folder.resolve(ref, ctx)
        elif isinstance(ref, g.LoopItemRef):
            items[ref.loop] = folder.resolve(g.LoopItemRef(ref.loop), ctx)
    params = {p.name: folder.parameter(p.name) for p in folder.graph.parameters}
    placeholders = {name: folder.run.get(name, "") for name in g.PLACEHOLDERS}
    holds = group.condition.evaluate(outputs, params, items, placeholders)
    print(json.dumps(holds))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shipyard.pipelines.entrypoint",
        description="Run one task of a Shipyard pipeline inside an orchestrator.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--pipeline", required=True, help="MODULE:PIPELINE or FILE.py:PIPELINE")
        return cmd

    run = command("run", "run a task with its values on the command line (KFP)")
    run.add_argument("--task", required=True)
    run.add_argument("--param", action="append", metavar="NAME=VALUE")
    run.add_argument("--input", action="append", metavar="NAME=PATH")
    run.add_argument("--output", action="append", metavar="NAME=PATH")
    run.add_argument("--output-param", action="append", metavar="NAME=FILE")
    run.add_argument("--timeout", type=float)
    run.set_defaults(handler=_run)

    init = command("init", "write a run folder's parameters")
    init.add_argument("--run-dir", required=True)
    init.add_argument("--params", help="JSON object of pipeline parameters")
    init.add_argument("--run-id", default="")
    init.add_argument("--scheduled-time", default="")
    init.set_defaults(handler=_init)

    task = command("task", "run a task reading and writing a run folder (Airflow)")
    task.add_argument("--run-dir", required=True)
    task.add_argument("--task", required=True)
    task.add_argument("--iteration", help="loop indices joined by _ (e.g. 2 or 0_1)")
    task.set_defaults(handler=_task)

    items = command("items", "write a ParallelFor's items; prints their count")
    items.add_argument("--run-dir", required=True)
    items.add_argument("--loop", required=True)
    items.add_argument("--iteration")
    items.set_defaults(handler=_items)

    cond = command("condition", "print whether a `when` block's condition holds")
    cond.add_argument("--run-dir", required=True)
    cond.add_argument("--group", required=True)
    cond.add_argument("--iteration")
    cond.set_defaults(handler=_condition)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; known errors print their message and return the
    error's exit code, a failing step function raises."""
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ShipyardError as exc:
        sys.stderr.write(f"{exc.headline}: {exc}\n")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
