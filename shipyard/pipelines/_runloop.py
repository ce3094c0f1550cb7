"""The scheduling loop of one local run: which step instances exist, which may start, and
what each finished attempt means for the rest.

A step inside ParallelFor loops has one instance per combination of loop indexes (``train[2]``
or ``score[0][1]``); an instance waits for the instances of its upstream steps that share its
indexes on the loops both are in, and for all of them on the loops only the upstream step is
in (that is how ``Collected`` and ``.after()`` on a loop step wait for every iteration).
Decisions are pure functions of the instances' states; processes, the database and tracking
are reached through the ``LocalExecutor`` the loop belongs to.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.pipelines import graph as g
from shipyard.pipelines.cache import cache_key
from shipyard.pipelines.logs import attempt_prefix, cas_prefix
from shipyard.pipelines.state import DONE_STATES, TERMINAL_STATES
from shipyard.pipelines.steprun import coerce_parameter
from shipyard.pipelines.types import is_artifact
from shipyard.store.db import now_ms

if TYPE_CHECKING:
    from shipyard.pipelines.executor import LocalExecutor

log = logging.getLogger(__name__)

_FAILED = frozenset({"failed", "upstream_failed", "cancelled"})
_CANCEL_POLL = 0.25


@dataclass
class Instance:
    """One run of one task at one loop index."""

    key: str
    task: str
    idx: tuple[int, ...]
    state: str = "pending"
    attempts: int = 0
    earlier_attempts: int = 0  # made before a resume; retries count from there
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    cache_key: str = ""
    started_ms: int | None = None
    next_try: float = 0.0
    deadline: float | None = None
    timed_out: bool = False
    killed: bool = False  # stopped by a cancel
    resolved: bool = False
    error: str = ""

    @property
    def values(self) -> dict[str, Any]:
        return dict(self.outputs.get("params", {}))


def _key(task: str, idx: tuple[int, ...]) -> str:
    return task + "".join(f"[{i}]" for i in idx)


class RunLoop:
    """Schedules the steps of one run until all of them have finished."""

    def __init__(
        self,
        executor: LocalExecutor,
        run_id: str,
        params: dict[str, Any],
        placeholders: dict[str, Any],
        done: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        self.ex = executor
        self.graph = executor.pipeline.graph
        self.run_id = run_id
        self.params = params
        self.placeholders = placeholders
        self.insts: dict[str, Instance] = {}
        self.by_task: dict[str, list[Instance] | None] = {s.name: None for s in self.graph.steps}
        self.items: dict[tuple[str, tuple[int, ...]], list[Any]] = {}
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.running: dict[str, Instance] = {}
        self.known_rows = set(done or ())
        self.restored = dict(done or {})
        self.updates: dict[str, dict[str, Any]] = {}
        self.new_rows: list[dict[str, Any]] = []
        self.cache_puts: list[tuple[str, str, dict[str, Any]]] = []
        self.cancelling = False
        self.chains = {s.name: self._chain(s.group) for s in self.graph.steps}
        self.exit_steps = {
            grp.exit_step: grp for grp in self.graph.groups if isinstance(grp, g.ExitHandlerGroup)
        }

    # -- structure ---------------------------------------------------------------------

    def _chain(self, group: str | None) -> tuple[str, ...]:
        return tuple(
            gid
            for gid in self.graph.scope(group)
            if isinstance(self.graph.group(gid), g.ParallelForGroup)
        )

    def _matching(
        self, producer: str, chain: tuple[str, ...], idx: tuple[int, ...]
    ) -> list[Instance] | None:
        insts = self.by_task[producer]
        if insts is None:
            return None
        pchain = self.chains[producer]
        common = 0
        while common < min(len(pchain), len(chain)) and pchain[common] == chain[common]:
            common += 1
        return [i for i in insts if i.idx[:common] == idx[:common]]

    def _value(self, binding: g.Binding, chain: tuple[str, ...], idx: tuple[int, ...]) -> Any:
        """A parameter value; artifacts come back as their stored reference."""
        match binding:
            case g.Constant(value):
                return value
            case g.ParamRef(name):
                return self.params[name]
            case g.PlaceholderRef(name):
                return self.placeholders[name]
            case g.LoopItemRef(loop, key):
                pos = chain.index(loop)
                item = self.items[(loop, idx[:pos])][idx[pos]]
                return item if key is None else item[key]
            case g.OutputRef(step, output):
                (producer,) = self._matching(step, chain, idx) or [None]
                assert producer is not None
                return self._output(producer, output)
            case g.CollectedRef(step, output):
                found = self._matching(step, chain, idx) or []
                return [
                    self._output(p, output)
                    for p in sorted(found, key=lambda i: i.idx)
                    if p.state in ("succeeded", "cached")
                ]
        raise TypeError(f"not a binding: {binding!r}")

    def _output(self, inst: Instance, name: str) -> Any:
        artifacts = inst.outputs.get("artifacts", {})
        if name in artifacts:
            return {**artifacts[name], "source": f"{inst.key}.{name}"}
        return inst.outputs.get("params", {}).get(name)

    def _loop_items(self, loop: str, prefix: tuple[int, ...]) -> list[Any] | None:
        cached = self.items.get((loop, prefix))
        if cached is not None:
            return cached
        group = self.graph.group(loop)
        assert isinstance(group, g.ParallelForGroup)
        chain = self._chain(group.parent)
        binding = group.items
        if isinstance(binding, g.OutputRef | g.CollectedRef):
            producers = self._matching(binding.step, chain, prefix)
            if producers is None or any(p.state not in TERMINAL_STATES for p in producers):
                return None
            if isinstance(binding, g.OutputRef) and producers[0].state not in (
                "succeeded",
                "cached",
            ):
                self.items[(loop, prefix)] = []
                return []
        value = self._value(binding, chain, prefix)
        items = list(value) if isinstance(value, list | tuple) else []
        self.items[(loop, prefix)] = items
        return items

    def _expand(self, task: str) -> list[tuple[int, ...]] | None:
        prefixes: list[tuple[int, ...]] = [()]
        for loop in self.chains[task]:
            grown = []
            for prefix in prefixes:
                items = self._loop_items(loop, prefix)
                if items is None:
                    return None
                grown += [(*prefix, i) for i in range(len(items))]
            prefixes = grown
        return prefixes

    def expand_all(self) -> bool:
        changed = False
        for task, insts in self.by_task.items():
            if insts is not None:
                continue
            idxs = self._expand(task)
            if idxs is None:
                continue
            made = []
            for idx in idxs:
                key = _key(task, idx)
                inst = Instance(key, task, idx)
                old = self.restored.get(key)
                if old is not None and old["state"] in DONE_STATES:
                    inst.state = old["state"]
                    inst.outputs = old["outputs"]
                    inst.attempts = old["attempts"]
                elif key not in self.known_rows:
                    self.new_rows.append(
                        {"step_key": key, "task": task, "iteration": list(idx), "state": "pending"}
                    )
                    self.known_rows.add(key)
                else:
                    # Attempt numbers go on from the earlier ones, so their logs are kept.
                    inst.attempts = inst.earlier_attempts = old["attempts"] if old else 0
                    self.updates.setdefault(key, {}).update(
                        state="pending", error="", started_at=None, ended_at=None
                    )
                self.insts[key] = inst
                made.append(inst)
            self.by_task[task] = made
            changed = True
        return changed

    # -- decisions ---------------------------------------------------------------------

    def _decide(self, inst: Instance) -> str:
        """``wait``, ``run``, or the final state when the step cannot run."""
        node = self.graph.step(inst.task)
        chain = self.chains[inst.task]
        collected = {b.step for b in node.arguments.values() if isinstance(b, g.CollectedRef)}
        strict = {b.step for b in node.arguments.values() if isinstance(b, g.OutputRef)}
        skip = False
        failed = False
        for producer in self.graph.upstream(inst.task):
            found = self._matching(producer, chain, inst.idx)
            if found is None or any(p.state not in TERMINAL_STATES for p in found):
                return "wait"
            exit_only = inst.task in self.exit_steps and producer in self.graph.body(
                self.exit_steps[inst.task].id
            )
            if exit_only:
                continue
            states = {p.state for p in found}
            if states & _FAILED:
                failed = True
            if "skipped" in states and (producer not in collected or producer in strict):
                skip = True
        if failed:
            return "upstream_failed"
        if skip:
            return "skipped"
        if self.cancelling and inst.task not in self.exit_steps:
            return "cancelled"
        for group in self.graph.groups_of(inst.task):
            if isinstance(group, g.ConditionGroup) and not self._holds(group.condition, inst):
                return "skipped"
        return "run"

    def _holds(self, condition: g.Condition, inst: Instance) -> bool:
        chain = self.chains[inst.task]
        outputs: dict[str, dict[str, Any]] = {}
        for ref in condition.refs():
            if isinstance(ref, g.OutputRef):
                (producer,) = self._matching(ref.step, chain, inst.idx) or [None]
                assert producer is not None
                outputs[ref.step] = producer.values
        items = {}
        for pos, loop in enumerate(chain):
            items[loop] = self.items[(loop, inst.idx[:pos])][inst.idx[pos]]
        return condition.evaluate(outputs, self.params, items, self.placeholders)

    def _parallelism_ok(self, inst: Instance) -> bool:
        chain = self.chains[inst.task]
        for pos, loop in enumerate(chain):
            group = self.graph.group(loop)
            limit = group.parallelism if isinstance(group, g.ParallelForGroup) else None
            if limit is None:
                continue
            busy = {
                r.idx[pos]
                for r in self.running.values()
                if loop in self.chains[r.task][: pos + 1] and r.idx[:pos] == inst.idx[:pos]
            }
            if inst.idx[pos] not in busy and len(busy) >= limit:
                return False
        return True

    def _resolve(self, inst: Instance) -> None:
        node = self.graph.step(inst.task)
        component = self.graph.components[node.component]
        chain = self.chains[inst.task]
        inst.params, inst.inputs = {}, {}
        for port in component.inputs:
            binding = node.arguments.get(port.name)
            if binding is None:
                if not port.required:
                    inst.params[port.name] = port.default
                continue
            value = self._value(binding, chain, inst.idx)
            if is_artifact(port.type):
                inst.inputs[port.name] = value
            else:
                inst.params[port.name] = coerce_parameter(
                    value, port.type, f"Input '{port.name}' of step '{inst.key}'"
                )
        digests = {
            k: [r["digest"] for r in v] if isinstance(v, list) else v["digest"]
            for k, v in inst.inputs.items()
        }
        inst.cache_key = cache_key(component, inst.params, digests)

    # -- one tick ----------------------------------------------------------------------

    def advance(self) -> None:
        """Decide every pending step that can be decided; start what may start."""
        now = time.monotonic()
        progress = True
        while progress:
            progress = self.expand_all()
            for inst in list(self.insts.values()):
                if inst.state not in ("pending", "retrying") or inst.next_try > now:
                    continue
                if inst.state == "retrying" or inst.resolved:
                    decision = "run"
                    if self.cancelling and inst.task not in self.exit_steps:
                        decision = "cancelled"
                else:
                    try:
                        decision = self._decide(inst)
                    except Exception as exc:  # e.g. a condition comparing None with a number
                        self._finish(inst, "failed", error=f"{type(exc).__name__}: {exc}")
                        progress = True
                        continue
                if decision == "wait":
                    continue
                if decision != "run":
                    self._finish(inst, decision)
                    progress = True
                    continue
                if not inst.resolved:
                    inst.resolved = True
                    try:
                        self._resolve(inst)
                    except Exception as exc:
                        self._finish(inst, "failed", error=f"{type(exc).__name__}: {exc}")
                        progress = True
                        continue
                    if self.ex.use_cache(inst.task) and self._from_cache(inst):
                        progress = True
                        continue
                if len(self.running) >= self.ex.max_workers or not self._parallelism_ok(inst):
                    continue
                self._launch(inst)

    def _from_cache(self, inst: Instance) -> bool:
        hit = self.ex.cache.get(inst.cache_key)
        if hit is None:
            return False
        outputs, source_run = hit
        inst.outputs = outputs
        now = now_ms()
        self._finish(
            inst,
            "cached",
            cached_from=source_run,
            started_at=now,
            outputs=outputs,
        )
        return True

    def _launch(self, inst: Instance) -> None:
        for value in inst.inputs.values():
            for ref in value if isinstance(value, list) else [value]:
                if not self.ex.available(ref["key"]):
                    self._finish(
                        inst,
                        "failed",
                        error=f"Input {ref.get('source', '')} is missing from the artifact "
                        f"store ({ref['key']}).",
                    )
                    return
        pool = self.ex.pool()
        node = self.graph.step(inst.task)
        component = self.graph.components[node.component]
        inst.attempts += 1
        prefix = attempt_prefix(self.ex.workspace, self.run_id, inst.key, inst.attempts)
        folder = self.ex.root / prefix
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        request = {
            "task": inst.task,
            "params": inst.params,
            "inputs": {
                k: [str(self.ex.root / r["key"]) for r in v]
                if isinstance(v, list)
                else str(self.ex.root / v["key"])
                for k, v in inst.inputs.items()
            },
            "outputs": {
                p.name: str(folder / "out" / p.name)
                for p in component.outputs
                if is_artifact(p.type)
            },
            "log": str(folder / "log.txt"),
            "result": str(folder / "result.json"),
            "cas": str(self.ex.root / cas_prefix(self.ex.workspace)),
        }
        inst.state = "running"
        inst.timed_out = False
        inst.started_ms = now_ms()
        inst.deadline = time.monotonic() + node.timeout if node.timeout else None
        task_id = f"{self.run_id}/{inst.key}/{inst.attempts}"
        self.running[task_id] = inst
        self.updates.setdefault(inst.key, {}).update(
            state="running",
            attempts=inst.attempts,
            started_at=inst.started_ms,
            cache_key=inst.cache_key,
            inputs={"params": inst.params, "artifacts": inst.inputs},
            log_key=f"{prefix}/log.txt",
            error="",
        )
        # Everything up to this start is on record before the step runs, so a crash right
        # after it never leaves a finished upstream step (or this one) looking unstarted.
        self.flush()
        pool.submit(task_id, request, self.events.put)

    def _finish(self, inst: Instance, state: str, **values: Any) -> None:
        inst.state = state
        if "error" in values:
            inst.error = values["error"]
        self.updates.setdefault(inst.key, {}).update(state=state, ended_at=now_ms(), **values)

    def on_exit(self, event: dict[str, Any]) -> None:
        inst = self.running.pop(event["id"], None)
        if inst is None:
            return
        node = self.graph.step(inst.task)
        folder = self.ex.root / attempt_prefix(
            self.ex.workspace, self.run_id, inst.key, inst.attempts
        )
        result: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            result = json.loads((folder / "result.json").read_text())
        end = now_ms()
        if result.get("ok") and not inst.timed_out:
            inst.outputs = {
                "params": result["outputs"],
                "artifacts": {
                    name: {
                        "key": f"{cas_prefix(self.ex.workspace)}/{a['digest'][:2]}/{a['digest']}",
                        "digest": a["digest"],
                        "size": a["size"],
                        "format": a.get("format", ""),
                        "type": self.graph.components[node.component].output(name).type,  # type: ignore[union-attr]
                        **({"metrics": a["metrics"]} if "metrics" in a else {}),
                    }
                    for name, a in result["artifacts"].items()
                },
            }
            if self.ex.use_cache(inst.task):
                self.cache_puts.append((inst.cache_key, inst.task, inst.outputs))
            self._finish(
                inst, "succeeded", outputs=inst.outputs, details=result.get("details") or {}
            )
            self._track(inst, "succeeded", end, folder)
            return
        if inst.killed:
            self._finish(inst, "cancelled", error="cancelled while running")
            self._track(inst, "cancelled", end, folder)
            return
        if inst.timed_out:
            error = f"timed out after {node.timeout:g}s (attempt {inst.attempts})"
        elif result.get("error"):
            error = result["error"]
        else:
            status = event.get("status")
            error = f"the step process exited ({status}) without a result"
        details = result.get("details") or {}
        retry = node.retry
        tries = inst.attempts - inst.earlier_attempts
        if retry and tries <= retry.max_retries and not self.cancelling:
            inst.state = "retrying"
            inst.next_try = time.monotonic() + retry.delay(tries)
            self.updates.setdefault(inst.key, {}).update(state="retrying", error=error)
            return
        self._finish(inst, "failed", error=error, details=details)
        self._track(inst, "failed", end, folder)

    def _track(self, inst: Instance, state: str, end: int, folder: Path) -> None:
        try:
            for ref in inst.outputs.get("artifacts", {}).values() if state == "succeeded" else ():
                self.ex.upload(ref["key"])
            self.ex.upload(str((folder / "log.txt").relative_to(self.ex.root)))
        except Exception as exc:
            if state == "succeeded":  # an output that is not stored is not an output
                inst.state = "failed"
                inst.error = f"could not upload the outputs: {type(exc).__name__}: {exc}"
                self.updates[inst.key].update(state="failed", error=inst.error)
                self.cache_puts = [c for c in self.cache_puts if c[0] != inst.cache_key]
                state = "failed"
        if self.ex.tracking is None:
            return
        try:
            nested = self.ex.tracking.after_step_run(
                pipeline=self.ex.pipeline.name,
                run_id=self.run_id,
                step_key=inst.key,
                state=state,
                start_ms=inst.started_ms or end,
                end_ms=end,
                params=inst.params,
                inputs=inst.inputs,
                outputs=inst.outputs,
                log_path=folder / "log.txt",
                root=self.ex.root,
            )
        except Exception:  # tracking must never fail the pipeline
            log.exception("could not record step %s of run %s in tracking", inst.key, self.run_id)
            return
        self.updates.setdefault(inst.key, {})["tracking_run_id"] = nested

    def flush(self) -> None:
        """Write every transition since the last flush in one transaction."""
        if not (self.new_rows or self.updates or self.cache_puts):
            return
        with self.ex.engine.begin() as conn:
            self.ex.state.insert_steps(conn, self.run_id, self.new_rows)
            self.ex.state.update_steps(conn, self.run_id, self.updates)
            for key, task, outputs in self.cache_puts:
                self.ex.cache.put(conn, key, self.ex.pipeline.name, task, outputs, self.run_id)
        self.new_rows, self.updates, self.cache_puts = [], {}, []

    # -- the loop ----------------------------------------------------------------------

    def finished(self) -> bool:
        return all(v is not None for v in self.by_task.values()) and all(
            i.state in TERMINAL_STATES for i in self.insts.values()
        )

    def run(self) -> str:
        last_poll = time.monotonic()
        while True:
            self.advance()
            self.flush()
            if self.finished():
                break
            if not self.running and not any(i.state == "retrying" for i in self.insts.values()):
                # Nothing runs and nothing can start: only possible with unresolvable items.
                for inst in self.insts.values():
                    if inst.state not in TERMINAL_STATES:
                        self._finish(inst, "upstream_failed", error="its inputs never resolved")
                for task, insts in self.by_task.items():
                    if insts is None:
                        self.by_task[task] = []
                self.flush()
                break
            now = time.monotonic()
            wake = [i.next_try for i in self.insts.values() if i.state == "retrying"]
            wake += [i.deadline for i in self.running.values() if i.deadline is not None]
            timeout = min([*wake, last_poll + _CANCEL_POLL]) - now
            try:
                event = self.events.get(timeout=max(timeout, 0.0))
            except queue.Empty:
                event = None
            while event is not None:
                if event.get("event") == "exited":
                    self.on_exit(event)
                try:
                    event = self.events.get_nowait()
                except queue.Empty:
                    event = None
            now = time.monotonic()
            for task_id, inst in list(self.running.items()):
                if inst.deadline is not None and now >= inst.deadline and not inst.timed_out:
                    inst.timed_out = True
                    self.ex.pool().kill(task_id)
            if now - last_poll >= _CANCEL_POLL:
                last_poll = now
                if not self.cancelling and self.ex.state.cancel_requested(self.run_id):
                    self.cancel()
        states = {i.state for i in self.insts.values()}
        if self.cancelling:
            return "cancelled"
        return "failed" if states & {"failed", "upstream_failed"} else "succeeded"

    def cancel(self) -> None:
        self.cancelling = True
        for task_id, inst in list(self.running.items()):
            if inst.task not in self.exit_steps:
                inst.killed = True
                self.ex.pool().kill(task_id)
        for inst in self.insts.values():
            if inst.state == "retrying":
                self._finish(inst, "cancelled", error="cancelled")

    def first_error(self) -> str:
        for inst in self.insts.values():
            if inst.state == "failed":
                return f"Step '{inst.key}' failed: {inst.error}"
        return ""
