"""Shipyard's local pipeline executor against KFP's local runner, Prefect and Metaflow.

    .venv/bin/python benchmarks/pipelines/run.py [--pairs 3] [--quick] [--only TOOL,TOOL]
        [--no-write]

BENCHMARKS.md's pipeline workloads: W1 a chain of 10 steps adding 1; W2 one step making
``list(range(20))``, 20 parallel steps adding 1 and a sum (210); W3 a 50 MiB float64 array
handed from one step to the next, which sums it; W4 W1 again with every step cached. Each
tool runs from its own virtualenv under ~/.cache/shipyard-dev (created on first use),
Shipyard from the .venv. Per workload and tool, alternating fresh child processes:

- ``first``: one run in a fresh process, timed end to end (interpreter start to exit);
- ``steady``: a warm-up run, then the median of three runs in the same process.

Writes benchmarks/pipelines/RESULTS.md and results.json. Not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import _harness as h  # noqa: E402

TOOLS: dict[str, tuple[str, Callable[[], Path]]] = {
    "shipyard": ("shipyard_side.py", h.shipyard_python),
    "kfp": (
        "kfp_side.py",
        lambda: h.anchor_python("kfp-bench-2.17.3", ["kfp==2.17.3", "numpy"], pin_sklearn=False),
    ),
    "prefect": (
        "prefect_side.py",
        lambda: h.anchor_python("prefect-3.9.1", ["prefect==3.9.1", "numpy"], pin_sklearn=False),
    ),
    "metaflow": (
        "metaflow_side.py",
        lambda: h.anchor_python(
            "metaflow-2.19.39", ["metaflow==2.19.39", "numpy"], pin_sklearn=False
        ),
    ),
}
LABELS = {
    "shipyard": "Shipyard (local executor, each step its own process)",
    "kfp": "KFP 2.17.3 local SubprocessRunner (no runtime pip)",
    "prefect": "Prefect 3.9.1 (tasks in threads)",
    "metaflow": "Metaflow 2.19.39 (local)",
}
WORKLOADS = {
    "chain": "W1 10-step chain",
    "fanout": "W2 20-way fan-out/fan-in",
    "handoff": "W3 50 MiB hand-off",
    "cached": "W4 cached rerun of W1",
}


def measure(tool: str, workload: str, mode: str, work: Path) -> dict[str, Any]:
    script, python = TOOLS[tool]
    run_dir = Path(tempfile.mkdtemp(prefix=f"{tool}-{workload}-", dir=work))
    argv = [str(python()), str(HERE / script), str(run_dir), workload, mode]
    env = h.side_env({"SHIPYARD_HOME": str(run_dir / "home")})
    try:
        res = h.run_child(argv, env=env, cwd=run_dir, timeout=900)
    except h.ChildFailed as exc:
        h.log(f"{tool} {workload} {mode}: FAILED {str(exc)[-1500:]}")
        return {"error": str(exc)[-300:]}
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    out = {**res.data, "wall_s": res.wall, "peak_rss_mb": res.peak_rss_mb}
    h.log(f"{tool} {workload} {mode}: {out}")
    return out


def _med(runs: list[dict[str, Any]], field: str) -> float | None:
    values = [r[field] for r in runs if field in r]
    return statistics.median(values) if values else None


def render(results: dict[str, Any], facts: dict[str, Any], cmd: str) -> str:
    lines = [
        "# Pipelines benchmark",
        "",
        f"Command: `{cmd}`",
        "",
        f"- {facts.get('date')}, {facts.get('nproc')} cores ({facts.get('cpu', '?')}), load "
        f"average at start {facts.get('loadavg_start')}; {facts.get('pairs')} alternating "
        "runs per cell, medians shown.",
        "- first run: a fresh process, interpreter start to exit. steady: median of three "
        "runs after a warm-up in the same process; per step = steady / steps.",
        "",
        "| workload | tool | first run, fresh process (s) | steady run (ms) | per step (ms) "
        "| result | peak RSS MB |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for workload, label in WORKLOADS.items():
        for tool in results:
            cell = results[tool].get(workload)
            if not cell:
                continue
            first, steady = cell["first"], cell["steady"]
            errors = [r.get("error") or r.get("skipped") for r in first + steady]
            errors = [e for e in errors if e]
            if errors and not _med(steady, "steady_s"):
                lines.append(f"| {label} | {LABELS[tool]} | — | — | — | {errors[0][:80]} | — |")
                continue
            wall = _med(first, "wall_s")
            steady_s = _med(steady, "steady_s")
            steps = next((r["steps"] for r in steady if "steps" in r), None)
            per_step = steady_s * 1000 / steps if steady_s and steps else None
            result = next((r.get("result") for r in steady if "result" in r), "")
            lines.append(
                f"| {label} | {LABELS[tool]} | {(wall and f'{wall:.2f}') or '—'} | "
                f"{(steady_s and f'{steady_s * 1000:.1f}') or '—'} | "
                f"{(per_step and f'{per_step:.1f}') or '—'} | {result} | "
                f"{_med(first + steady, 'peak_rss_mb') or 0:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one run per cell")
    parser.add_argument("--only", default=",".join(TOOLS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.pairs = 1
    tools = [t for t in TOOLS if t in args.only.split(",")]
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-pipelines-"))
    facts = h.machine_facts(None) | {"pairs": args.pairs}
    results: dict[str, Any] = {t: {} for t in tools}
    try:
        for workload in WORKLOADS:
            for _ in range(args.pairs):
                for tool in tools:
                    cell = results[tool].setdefault(workload, {"first": [], "steady": []})
                    for mode in ("first", "steady"):
                        cell[mode].append(measure(tool, workload, mode, work))
        cmd = ("python benchmarks/pipelines/run.py " + " ".join(sys.argv[1:])).strip()
        text = render(results, facts, cmd)
        print(text)
        if not args.no_write:
            (HERE / "RESULTS.md").write_text(text)
            (HERE / "results.json").write_text(
                json.dumps({"facts": facts, "results": results}, indent=1, default=str)
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
