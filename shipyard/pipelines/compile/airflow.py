"""Compile a pipeline to an Airflow DAG file.

Every step is a ``PythonOperator`` that runs ``python -m shipyard.pipelines.entrypoint task``
in a subprocess (the interpreter where Shipyard is installed, which need not be Airflow's).
Data moves through a shared run folder (``<run root>/<dag id>/<run id>``): a first task
writes the run's parameters there, each step reads its inputs from and writes its outputs
to it. ``when`` blocks become ``ShortCircuitOperator`` tasks in front of their steps,
``ParallelFor`` blocks a task writing the items followed by mapped tasks (``.expand``), and
an exit step runs with ``trigger_rule="all_done"``. Retries, retry delays and timeouts come
from each step; owner, schedule, catchup and tags from the compile options.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from shipyard.errors import NotSupportedError
from shipyard.pipelines import graph as g
from shipyard.pipelines.compile.reference import pipeline_reference
from shipyard.pipelines.dsl import Pipeline
from shipyard.pipelines.types import list_item

__all__ = ["DEFAULT_RUN_ROOT", "DONE_TASK", "INIT_TASK", "compile_airflow", "write_airflow"]

#: Where run folders go unless the compile options or ``SHIPYARD_AIRFLOW_RUN_ROOT`` say
#: otherwise; on a cluster it must be a folder every worker shares.
DEFAULT_RUN_ROOT = "/tmp/shipyard-airflow-runs"
INIT_TASK = "shipyard-init"
#: With an exit handler: the task that carries the body's failure to the run's state.
DONE_TASK = "shipyard-done"

_PARAM_TYPES = {
    "int": "integer",
    "float": "number",
    "str": "string",
    "bool": "boolean",
    "dict": "object",
}

_PRELUDE = '''\
from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime, timedelta, timezone

try:  # Airflow 3
    from airflow.sdk import DAG, Param, get_current_context
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models.param import Param
    from airflow.operators.python import get_current_context
try:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.providers.standard.operators.python import PythonOperator, ShortCircuitOperator
except ImportError:  # Airflow 2 without the standard provider
    from airflow.operators.empty import EmptyOperator
    from airflow.operators.python import PythonOperator, ShortCircuitOperator

PIPELINE = {reference}
PYTHON = {python}
RUN_ROOT = os.environ.get("SHIPYARD_AIRFLOW_RUN_ROOT", {run_root})
ENV = {env}


def _run_dir(context) -> str:
    run_id = re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
    return os.path.join(RUN_ROOT, context["dag"].dag_id, run_id)


def _entrypoint(command: str, *args: str) -> str:
    """Run the Shipyard entrypoint for this run; its last output line is the result."""
    context = get_current_context()
    argv = [PYTHON, "-m", "shipyard.pipelines.entrypoint", command, "--pipeline", PIPELINE]
    argv += ["--run-dir", _run_dir(context), *args]
    done = subprocess.run(argv, env={{**os.environ, **ENV}}, capture_output=True, text=True)
    print(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{{' '.join(argv)}} exited with {{done.returncode}}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def init_run() -> None:
    context = get_current_context()
    when = (
        context.get("logical_date")
        or context.get("data_interval_start")
        or getattr(context.get("dag_run"), "run_after", None)
        or datetime.now(timezone.utc)
    )
    params = json.dumps(dict(context["params"]), default=str)
    _entrypoint(
        "init", "--params", params, "--run-id", context["run_id"],
        "--scheduled-time", when.isoformat(),
    )


# (argument names avoid Airflow's context keys such as ``task`` and ``params``)
def run_step(step_name: str, iteration: int | None = None) -> None:
    args = ["--task", step_name]
    if iteration is not None:
        args += ["--iteration", str(iteration)]
    _entrypoint("task", *args)


def loop_items(loop_id: str) -> list[dict]:
    count = json.loads(_entrypoint("items", "--loop", loop_id))
    return [{{"iteration": i}} for i in range(count)]


def condition_holds(group_id: str) -> bool:
    return bool(json.loads(_entrypoint("condition", "--group", group_id)))

'''


def _var(task_id: str) -> str:
    """The DAG file's variable for a task: ``t_`` and the id with ``_`` for other characters
    (the prefix keeps it clear of keywords and of the file's own functions)."""
    return "t_" + re.sub(r"\W", "_", task_id)


def _delta(seconds: float) -> str:
    return f"timedelta(seconds={seconds:g})"


def _param(port: g.Port) -> str:
    kind = "array" if port.type == "list" or list_item(port.type) else _PARAM_TYPES.get(port.type)
    if kind is None:
        raise NotSupportedError(
            f"Pipeline parameter '{port.name}' ({port.type}) cannot be an Airflow param.",
            hint="Pass a path or URI as a str parameter and read it in a step.",
        )
    if port.required:
        return f"Param(type={kind!r})"
    return f"Param({port.default!r}, type={kind!r})"


class _DagBuilder:
    def __init__(self, graph: g.Graph) -> None:
        self.graph = graph
        self.lines: list[str] = []
        self.edges: list[tuple[str, str]] = []
        for group in graph.groups:
            chain = [graph.group(gid) for gid in graph.scope(group.id)]
            loops = [grp for grp in chain if isinstance(grp, g.ParallelForGroup)]
            if len(loops) > 1:
                raise NotSupportedError(
                    f"ParallelFor '{group.id}' is nested in another ParallelFor; the Airflow "
                    "compiler maps one loop level.",
                    hint="Flatten the grid into one list of dict items.",
                )
            if isinstance(group, g.ConditionGroup | g.ExitHandlerGroup) and loops:
                raise NotSupportedError(
                    f"Block '{group.id}' sits inside ParallelFor '{loops[0].id}'; the Airflow "
                    "compiler supports only steps directly inside a loop.",
                    hint="Move the condition into the step, or out of the loop.",
                )

    def task_of(self, step: str) -> str:
        return step

    def loop_of(self, step: str) -> g.ParallelForGroup | None:
        for group in self.graph.groups_of(step):
            if isinstance(group, g.ParallelForGroup):
                return group
        return None

    def gate_of(self, group: g.Group) -> str | None:
        if isinstance(group, g.ConditionGroup):
            return group.id
        if isinstance(group, g.ParallelForGroup):
            return f"{group.id}-items"
        return None

    def add(self, source: str, target: str) -> None:
        if source != target and (source, target) not in self.edges:
            self.edges.append((source, target))

    def build(self) -> None:
        graph = self.graph
        exit_steps = {grp.exit_step for grp in graph.groups if isinstance(grp, g.ExitHandlerGroup)}
        gates: list[str] = []
        for group in graph.groups:
            gate = self.gate_of(group)
            if gate is None:
                continue
            gates.append(gate)
            var = _var(gate)
            if isinstance(group, g.ConditionGroup):
                self.lines.append(
                    f"    {var} = ShortCircuitOperator(task_id={gate!r}, "
                    f"python_callable=condition_holds, op_args=[{group.id!r}], "
                    "ignore_downstream_trigger_rules=False)"
                )
                refs = [r.step for r in group.condition.refs() if isinstance(r, g.OutputRef)]
            else:
                assert isinstance(group, g.ParallelForGroup)
                self.lines.append(
                    f"    {var} = PythonOperator(task_id={gate!r}, "
                    f"python_callable=loop_items, op_args=[{group.id!r}])"
                )
                refs = [group.items.step] if isinstance(group.items, g.OutputRef) else []
            # a gate waits for what its condition or items read, for its enclosing gates,
            # and for everything outside the block that the block's steps read
            for step in refs:
                self.add(step, gate)
            outer = [self.gate_of(graph.group(gid)) for gid in graph.scope(group.parent)]
            for outer_gate in outer:
                if outer_gate:
                    self.add(outer_gate, gate)
            body = set(graph.body(group.id))
            for step in body:
                for upstream in graph.upstream(step):
                    if upstream not in body:
                        self.add(upstream, gate)
        for node in graph.steps:
            var = _var(node.name)
            options = [f"task_id={node.name!r}", "python_callable=run_step"]
            options.append(f"op_args=[{node.name!r}]")
            if node.retry is not None:
                options.append(f"retries={node.retry.max_retries}")
                options.append(f"retry_delay={_delta(node.retry.backoff_seconds)}")
                if node.retry.backoff_factor > 1:
                    options.append("retry_exponential_backoff=True")
                    options.append(f"max_retry_delay={_delta(node.retry.max_backoff_seconds)}")
            if node.timeout is not None:
                options.append(f"execution_timeout={_delta(node.timeout)}")
            if node.name in exit_steps:
                options.append('trigger_rule="all_done"')
            loop = self.loop_of(node.name)
            if loop is not None:
                if node.group != loop.id:
                    raise NotSupportedError(f"Step '{node.name}' is nested too deep in a loop.")
                self.lines.append(
                    f"    {var} = PythonOperator.partial({', '.join(options)}).expand("
                    f"op_kwargs={_var(loop.id + '-items')}.output)"
                )
            else:
                self.lines.append(f"    {var} = PythonOperator({', '.join(options)})")
            for upstream in graph.upstream(node.name):
                self.add(upstream, node.name)
            for gid in graph.scope(node.group):
                gate = self.gate_of(graph.group(gid))
                if gate:
                    self.add(gate, node.name)
        has_upstream = {target for _, target in self.edges}
        for task in [*gates, *(s.name for s in graph.steps)]:
            if task not in has_upstream:
                self.add(INIT_TASK, task)
        if exit_steps:
            # The exit step is the last task, and Airflow judges a run by its last tasks: this
            # one fails the run when any other step failed, as Shipyard and KFP do.
            self.lines.append(f"    {_var(DONE_TASK)} = EmptyOperator(task_id={DONE_TASK!r})")
            for node in graph.steps:
                if node.name not in exit_steps:
                    self.add(node.name, DONE_TASK)


def compile_airflow(
    pipeline: Pipeline,
    *,
    reference: str | None = None,
    dag_id: str | None = None,
    python: str = "python3",
    owner: str = "shipyard",
    retries: int = 0,
    retry_delay: timedelta = timedelta(minutes=5),
    schedule: str | None = None,
    start_date: datetime | None = None,
    catchup: bool = False,
    tags: Sequence[str] = ("shipyard",),
    max_active_runs: int | None = None,
    run_root: str = DEFAULT_RUN_ROOT,
    env: Mapping[str, str] | None = None,
) -> str:
    """The source of an Airflow DAG file that runs ``pipeline``.

    Args:
        pipeline: the traced pipeline.
        reference: ``module:attribute`` the entrypoint imports it from (default: where it
            was defined).
        dag_id: the DAG id (default: the pipeline name).
        python: the interpreter with Shipyard installed that runs each step.
        owner, retries, retry_delay: ``default_args``; a step's own ``.retries()`` wins.
        schedule: a cron expression or preset (``@daily``), or None for manual runs.
        start_date: first interval (default 2024-01-01 UTC).
        catchup: whether Airflow runs the intervals missed since ``start_date``.
        tags: DAG tags.
        max_active_runs: most concurrent runs of the DAG.
        run_root: folder shared by all workers where run folders are made.
        env: extra environment of each step's subprocess (``SHIPYARD_DB``...).

    Raises:
        NotSupportedError: the pipeline nests loops or puts blocks inside a loop.
    """
    graph = pipeline.graph
    ref = reference or pipeline_reference(pipeline)
    builder = _DagBuilder(graph)
    builder.build()
    start = start_date or datetime(2024, 1, 1)
    dag_args = [
        f"dag_id={dag_id or graph.name!r}",
        f"description={graph.description or graph.name!r}",
        f"schedule={schedule!r}",
        f"start_date=datetime({start.year}, {start.month}, {start.day}, tzinfo=timezone.utc)",
        f"catchup={bool(catchup)!r}",
        f"tags={list(tags)!r}",
        "default_args={"
        f'"owner": {owner!r}, "retries": {int(retries)}, '
        f'"retry_delay": {_delta(retry_delay.total_seconds())}'
        "}",
    ]
    if max_active_runs is not None:
        dag_args.append(f"max_active_runs={int(max_active_runs)}")
    params = ", ".join(f"{p.name!r}: {_param(p)}" for p in graph.parameters)
    dag_args.append(f"params={{{params}}}")
    header = (
        f'"""Airflow DAG for the Shipyard pipeline {graph.name!r} ({ref}).\n\n'
        "Generated by `shipyard pipelines compile --target airflow`; edit the pipeline, not "
        'this file.\n"""\n'
    )
    body = [
        header,
        _PRELUDE.format(
            reference=json.dumps(ref),
            python=json.dumps(python),
            run_root=json.dumps(run_root),
            env=json.dumps(dict(sorted((env or {}).items()))),
        ),
        "with DAG(",
        *(f"    {arg}," for arg in dag_args),
        ") as dag:",
        f"    {_var(INIT_TASK)} = PythonOperator(task_id={INIT_TASK!r}, python_callable=init_run)",
        *builder.lines,
        "",
        *(f"    {_var(a)} >> {_var(b)}" for a, b in builder.edges),
        "",
    ]
    return "\n".join(body)


def write_airflow(pipeline: Pipeline, path: str | Path, **options: Any) -> Path:
    """Write ``compile_airflow(pipeline, **options)`` to ``path``; returns the path."""
    target = Path(path)
    target.write_text(compile_airflow(pipeline, **options))
    return target
