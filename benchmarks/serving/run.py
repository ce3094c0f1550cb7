"""Shipyard's model server against plain FastAPI, BentoML, MLServer and `mlflow models serve`.

    .venv/bin/python benchmarks/serving/run.py [--duration 8] [--rounds 2] [--quick]
        [--only NAME,NAME] [--no-write]

BENCHMARKS.md's serving workload: the LogisticRegression and RandomForest models of
``make_classification(20000, 20, ...)``, one row a request, ``wrk -t2 -cN --latency`` at
N = 1, 16, 64 connections (RandomForest at 64), servers one at a time on 127.0.0.1. Every
anchor runs from its own virtualenv under ~/.cache/shipyard-dev (created on first use,
scikit-learn pinned to the .venv's version) and fits the same model with its own
scikit-learn. Each round starts every server afresh, in a rotated order.

Reported per server: requests/s, p50, p99, non-2xx, and server CPU milliseconds per request
(the CPU time of the server's whole process session over the run, divided by requests: it
survives a noisy machine far better than requests/s). Also: the in-process
``predict_proba`` floor for 1 and 64 rows, and an open-loop overload row (2x the measured
capacity) for Shipyard and the plain FastAPI app. Writes benchmarks/serving/RESULTS.md
and results.json. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import _harness as h  # noqa: E402

BENTOML = "1.4.40"
MLSERVER = "1.7.1"
MLFLOW = "3.17.2"
FASTAPI = "0.165.0"
CONNECTIONS = (1, 16, 64)
MAX_LATENCY_MS = 2
OVERLOAD_QUEUE = 64


@dataclass
class Target:
    """One server configuration: how to start it and what one request looks like."""

    name: str
    label: str
    python: Callable[[], Path]
    argv: Callable[[Path, int, str, Path], list[str]]  # python, port, model kind, work dir
    health: str
    path: str
    body: Callable[[dict[str, Any]], Any]
    env: Callable[[str, Path], dict[str, str]] = lambda kind, work: {}
    prepare: Callable[[Path, str, Path], None] | None = None  # python, kind, work dir


def _fit(python: Path, work: Path) -> Path:
    """Fit both models with this interpreter's scikit-learn (once per interpreter)."""
    out = work / f"models-{python.parent.parent.name}"
    if not (out / "requests.json").exists():
        subprocess.run([str(python), str(HERE / "_models.py"), str(out)], check=True)
    return out


def _anchor(name: str, *requirements: str) -> Callable[[], Path]:
    return lambda: h.anchor_python(name, list(requirements))


def _bin(python: Path, tool: str) -> str:
    return str(python.parent / tool)


def _mlserver_prepare(python: Path, kind: str, work: Path) -> None:
    models = _fit(python, work)
    folder = work / f"mlserver-{kind}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    shutil.copy(models / f"{kind}.joblib", folder / "model.joblib")
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "model",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )


def _mlserver_argv(python: Path, port: int, kind: str, work: Path) -> list[str]:
    folder = work / f"mlserver-{kind}"
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": h.free_port(),
                "metrics_port": h.free_port(),
                "parallel_workers": 2,
            }
        )
    )
    return [_bin(python, "mlserver"), "start", str(folder)]


def _mlflow_prepare(python: Path, kind: str, work: Path) -> None:
    models = _fit(python, work)
    target = work / f"mlflow-{kind}"
    if not target.exists():
        subprocess.run(
            [str(python), str(HERE / "mlflow_prepare.py"), str(models / f"{kind}.joblib"), target],
            check=True,
            env=h.side_env(),
        )


def _shipyard_prepare(python: Path, kind: str, work: Path) -> None:
    home = work / "shipyard-home"
    marker = home / f".registered-{kind}"
    if marker.exists():
        return
    models = _fit(python, work)
    subprocess.run(
        [
            str(python),
            str(HERE / "shipyard_prepare.py"),
            str(models / f"{kind}.joblib"),
            str(models / "requests.json"),
            f"bench-{kind}",
        ],
        check=True,
        env=h.side_env({"SHIPYARD_HOME": str(home)}),
    )
    marker.write_text("ok")


def _shipyard_argv(batching: bool) -> Callable[[Path, int, str, Path], list[str]]:
    def argv(python: Path, port: int, kind: str, work: Path) -> list[str]:
        batch = ["--max-batch-size", "64" if batching else "1"]
        batch += ["--max-latency-ms", str(MAX_LATENCY_MS if batching else 0)]
        return [
            _bin(python, "shipyard"),
            "serve",
            f"models:/bench-{kind}@champion",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            *batch,
        ]

    return argv


def targets() -> list[Target]:
    fastapi_py = _anchor(
        f"fastapi-{FASTAPI}",
        f"fastapi=={FASTAPI}",
        "uvicorn[standard]",
        "prometheus-client",
        "pandas",
    )
    bentoml_py = _anchor(f"bentoml-{BENTOML}", f"bentoml=={BENTOML}", "pandas")
    mlserver_py = _anchor(
        f"mlserver-{MLSERVER}",
        f"mlserver=={MLSERVER}",
        f"mlserver-sklearn=={MLSERVER}",
        "uvloop<0.22",
    )
    mlflow_py = _anchor(f"mlflow-{MLFLOW}", f"mlflow=={MLFLOW}")

    def fastapi(workers: int) -> Target:
        return Target(
            name=f"fastapi-{workers}w",
            label=f"plain FastAPI (the guide's app), {workers} worker{'s' * (workers > 1)}",
            python=fastapi_py,
            argv=lambda py, port, kind, work: [
                str(py),
                "-m",
                "uvicorn",
                "fastapi_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--no-access-log",
            ],
            health="/health",
            path="/predict",
            body=lambda req: {"features": req["row"]},
            env=lambda kind, work: {
                "BENCH_MODEL": str(_fit(fastapi_py(), work) / f"{kind}.joblib"),
                "PYTHONPATH": str(HERE),
            },
        )

    def bentoml(batching: bool) -> Target:
        return Target(
            name=f"bentoml{'-batch' if batching else ''}",
            label=f"BentoML {BENTOML}, 2 workers{', adaptive batching' if batching else ''}",
            python=bentoml_py,
            argv=lambda py, port, kind, work: [
                _bin(py, "bentoml"),
                "serve",
                "bentoml_service:Classifier",
                "--working-dir",
                str(HERE),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            health="/readyz",
            path="/predict",
            body=lambda req: {"features": [req["row"]]},
            env=lambda kind, work: {
                "BENCH_MODEL": str(_fit(bentoml_py(), work) / f"{kind}.joblib"),
                "BENCH_BATCHING": "1" if batching else "0",
                "BENCH_WORKERS": "2",
            },
        )

    def shipyard(batching: bool) -> Target:
        return Target(
            name=f"shipyard{'-batch' if batching else ''}",
            label="Shipyard, 2 workers"
            + (f", adaptive batching ({MAX_LATENCY_MS} ms)" if batching else ", no batching"),
            python=h.shipyard_python,
            argv=_shipyard_argv(batching),
            health="/v2/health/ready",
            path="/predict",
            body=lambda req: {"features": req["row"]},
            env=lambda kind, work: {"SHIPYARD_HOME": str(work / "shipyard-home")},
            prepare=_shipyard_prepare,
        )

    return [
        shipyard(False),
        shipyard(True),
        fastapi(1),
        fastapi(2),
        bentoml(False),
        bentoml(True),
        Target(
            name="mlserver",
            label=f"MLServer {MLSERVER} (sklearn runtime, V2), 2 workers",
            python=mlserver_py,
            argv=_mlserver_argv,
            health="/v2/health/ready",
            path="/v2/models/model/infer",
            body=lambda req: {
                "inputs": [
                    {"name": "input-0", "shape": [1, 20], "datatype": "FP64", "data": req["row"]}
                ],
                "outputs": [{"name": "predict_proba"}],
            },
            prepare=_mlserver_prepare,
        ),
        Target(
            name="mlflow",
            label=f"`mlflow models serve` {MLFLOW}, 2 workers",
            python=mlflow_py,
            argv=lambda py, port, kind, work: [
                _bin(py, "mlflow"),
                "models",
                "serve",
                "-m",
                str(work / f"mlflow-{kind}"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--env-manager",
                "local",
                "-w",
                "2",
            ],
            health="/ping",
            path="/invocations",
            body=lambda req: {"inputs": [req["row"]]},
            env=lambda kind, work: {
                "PATH": f"{mlflow_py().parent}:{os.environ.get('PATH', '')}",
            },
            prepare=_mlflow_prepare,
        ),
    ]


# --- load -----------------------------------------------------------------------------------

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}"):read("*a")
done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT {{\\"requests\\": %d, \\"duration_us\\": %d, \\"non2xx\\": %d, "
    .. "\\"errors\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d}}\\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk(url: str, body_file: Path, connections: int, seconds: float) -> dict[str, Any]:
    script = body_file.with_suffix(".lua")
    script.write_text(_WRK_SCRIPT.format(body=body_file))
    threads = min(2, connections)
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
    )
    out = done.stdout
    if done.returncode != 0 or "RESULT " not in out:
        raise h.ChildFailed(f"wrk failed ({done.returncode}): {done.stderr[-1000:]} {out[-1000:]}")
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


@contextlib.contextmanager
def served(
    target: Target, kind: str, work: Path, req: dict, extra_args: Sequence[str] = ()
) -> Iterator[tuple[h.Server, str, Path]]:
    """``target`` serving ``kind``, warmed up: (the server, the request URL, the body file)."""
    python = target.python()
    if target.prepare is not None:
        target.prepare(python, kind, work)
    port = h.free_port()
    body_file = work / f"body-{target.name}-{kind}.json"
    body_file.write_text(json.dumps(target.body(req)))
    run_dir = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=work))
    url = f"http://127.0.0.1:{port}{target.path}"
    with h.Server(
        [*target.argv(python, port, kind, work), *extra_args],
        h.side_env(target.env(kind, work)),
        run_dir,
        [f"http://127.0.0.1:{port}{target.health}"],
    ) as server:
        wrk(url, body_file, 16, 2.0)  # warm-up
        yield server, url, body_file


def measure(
    target: Target, kind: str, conns: tuple[int, ...], seconds: float, work: Path, req: dict
) -> dict[int, dict[str, Any]]:
    results: dict[int, dict[str, Any]] = {}
    with served(target, kind, work, req) as (server, url, body_file):
        for n in conns:
            before = server.mark()
            result = wrk(url, body_file, n, seconds)
            cpu = server.mark() - before
            result["server_cpu_ms_per_request"] = cpu * 1000 / max(result["requests"], 1)
            result["server_rss_mb"] = server.peak_rss_kb / 1024
            results[n] = result
            h.log(
                f"{target.name} {kind} c={n}: {result['rps']:.0f} req/s, "
                f"p99 {result['p99_us'] / 1000:.1f} ms, "
                f"{result['server_cpu_ms_per_request']:.2f} CPU ms/req, "
                f"non-2xx {result['non2xx']}"
            )
    return results


def overload(target: Target, kind: str, rate: float, work: Path, req: dict) -> dict[str, Any]:
    """Open-loop load at ``rate`` requests/s for 10 s (2x the target's measured capacity).

    Run on the RandomForest model: its capacity (a few thousand requests/s at most) is a
    rate one Python load generator can offer twice over on the same machine, which the
    LogisticRegression's ten thousand are not."""
    # Shipyard: 64 waiting requests per worker, fewer than the 256 connections, so the
    # excess is refused with 503 instead of queueing.
    extra = ["--max-queue", str(OVERLOAD_QUEUE)] if target.name.startswith("shipyard") else []
    with served(target, kind, work, req, extra) as (_, url, body_file):
        out = subprocess.run(
            [
                str(h.shipyard_python()),
                str(HERE / "_openloop.py"),
                url,
                str(body_file),
                str(rate),
                "10",
                "256",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    h.log(f"overload {target.name} at {rate:.0f} req/s: {result}")
    return result


def floor(work: Path) -> dict[str, float]:
    """In-process ``predict_proba`` medians (ms) for 1 and 64 rows, in the .venv."""
    models = _fit(h.shipyard_python(), work)
    code = f"""
import json, time, warnings, joblib, numpy as np
warnings.filterwarnings("ignore")
req = json.load(open({str(models / "requests.json")!r}))
out = {{}}
for kind in ("lr", "rf"):
    model = joblib.load({str(models)!r} + f"/{{kind}}.joblib")
    for rows, name in ((np.array([req["row"]]), "1"), (np.array(req["batch"]), "64")):
        times = []
        for _ in range(300):
            t = time.perf_counter()
            model.predict_proba(rows)
            times.append(time.perf_counter() - t)
        out[f"{{kind}}_{{name}}_ms"] = sorted(times)[len(times) // 2] * 1000
print(json.dumps(out))
"""
    done = subprocess.run(
        [str(h.shipyard_python()), "-c", code], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


# --- report ---------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds per (target, model, connections)."""
    cells: dict[str, dict[str, list[float]]] = {}
    for rnd in rounds:
        for key, result in rnd.items():
            cell = cells.setdefault(key, {})
            for field in ("rps", "p50_us", "p99_us", "non2xx", "server_cpu_ms_per_request"):
                cell.setdefault(field, []).append(float(result[field]))
            cell.setdefault("server_rss_mb", []).append(result["server_rss_mb"])
    return {key: {f: _median(v) for f, v in cell.items()} for key, cell in cells.items()}


def render(
    summary: dict[str, Any],
    labels: dict[str, str],
    facts: dict[str, Any],
    floors: dict[str, float],
    overloads: dict[str, Any],
    cmd: str,
) -> str:
    lines = [
        "# Serving benchmark",
        "",
        f"Command: `{cmd}`",
        "",
        f"- {facts.get('date')}, {facts.get('nproc')} cores ({facts.get('cpu', '?')}), load "
        f"average at start {facts.get('loadavg_start')}; Python {facts.get('python')}",
        f"- {facts.get('rounds')} rounds of {facts.get('duration')} s per cell, medians shown; "
        "every server started afresh per round, in rotated order; wrk -t2 on the same machine.",
        "- Server CPU ms/request: CPU time of the server's whole process session over the run "
        "divided by the requests served.",
        "",
        "| server | model | conns | req/s | p50 ms | p99 ms | non-2xx | server CPU ms/req "
        "| server RSS MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in sorted(summary, key=lambda k: (k.split("|")[1], int(k.split("|")[2]))):
        name, kind, conns = key.split("|")
        cell = summary[key]
        lines.append(
            f"| {labels[name]} | {kind.upper()} | {conns} | {cell['rps']:.0f} | "
            f"{cell['p50_us'] / 1000:.2f} | {cell['p99_us'] / 1000:.2f} | {cell['non2xx']:.0f} "
            f"| {cell['server_cpu_ms_per_request']:.2f} | {cell['server_rss_mb']:.0f} |"
        )
    lines += ["", "In-process floor (`predict_proba`, median of 300 calls, .venv):", ""]
    for key, value in sorted(floors.items()):
        lines.append(f"- {key.replace('_ms', '')}: {value:.3f} ms")
    if overloads:
        lines += [
            "",
            "Overload: open-loop load at 2x the server's own measured 64-connection capacity "
            f"(RandomForest; Shipyard with --max-queue {OVERLOAD_QUEUE}), 10 s over 256 "
            "connections, latency counted from each request's "
            "scheduled send time (so queueing counts); achieved = what the load generator "
            "really sent per second:",
            "",
            "| server | offered req/s | achieved req/s | accepted | 503 | other errors "
            "| accepted p50 ms | accepted p99 ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, res in overloads.items():
            lines.append(
                f"| {labels[name]} | {res['offered_rps']:.0f} | {res.get('achieved_rps')} | "
                f"{res['ok']} | "
                f"{res['rejected_503']} | {res['other']} | {res['ok_p50_ms']} | "
                f"{res['ok_p99_ms']} |"
            )
    lines += ["", "## Against the goals", ""]
    lines += goals(summary, floors)
    return "\n".join(lines) + "\n"


def goals(summary: dict[str, Any], floors: dict[str, float]) -> list[str]:
    def cell(name: str, kind: str, conns: int) -> dict[str, Any] | None:
        return summary.get(f"{name}|{kind}|{conns}")

    out = []
    ship = cell("shipyard", "lr", 64) or {}
    ship_batch = cell("shipyard-batch", "lr", 64) or {}
    best_ship = max((ship, ship_batch), key=lambda c: c.get("rps") or 0)
    plain = [c for c in (cell("fastapi-1w", "lr", 64), cell("fastapi-2w", "lr", 64)) if c]
    if best_ship and plain:
        plain_cpu = min(c["server_cpu_ms_per_request"] for c in plain)
        ratio = plain_cpu / best_ship["server_cpu_ms_per_request"]
        out.append(
            f"- Server CPU per request, LR at 64 connections: Shipyard "
            f"{best_ship['server_cpu_ms_per_request']:.2f} ms vs plain FastAPI's best "
            f"{plain_cpu:.2f} ms: {ratio:.1f}x less (goal: >= 3x)."
        )
    bento = [c for c in (cell("bentoml", "lr", 64), cell("bentoml-batch", "lr", 64)) if c]
    if best_ship and bento:
        best_bento = max(bento, key=lambda c: c["rps"])
        out.append(
            f"- Requests/s, LR at 64 connections: Shipyard {best_ship['rps']:.0f} vs BentoML's "
            f"best {best_bento['rps']:.0f}: {best_ship['rps'] / best_bento['rps']:.1f}x (goal: "
            f">= 3x), p99 {best_ship['p99_us'] / 1000:.1f} ms vs "
            f"{best_bento['p99_us'] / 1000:.1f} ms."
        )
    rf = cell("shipyard-batch", "rf", 64)
    if rf and "rf_64_ms" in floors:
        floor_rows = 64 / (floors["rf_64_ms"] / 1000)
        out.append(
            f"- RandomForest with batching at 64 connections: {rf['rps']:.0f} rows/s vs the "
            f"in-process batch-64 floor of {floor_rows:.0f} rows/s: "
            f"{floor_rows / rf['rps']:.1f}x slower (goal: within 2x)."
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3 s cells, one round")
    parser.add_argument("--only", default="", help="comma-separated target names")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = 3.0, 1
    chosen = [t for t in targets() if not args.only or t.name in args.only.split(",")]
    labels = {t.name: t.label for t in targets()}
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-serving-"))
    facts = h.machine_facts(None) | {"rounds": args.rounds, "duration": args.duration}
    try:
        req = json.loads((_fit(h.shipyard_python(), work) / "requests.json").read_text())
        floors = floor(work)
        h.log(f"floor: {floors}")
        rounds: list[dict[str, Any]] = []
        for i in range(args.rounds):
            order = chosen[i % len(chosen) :] + chosen[: i % len(chosen)]
            rnd: dict[str, Any] = {}
            for target in order:
                for kind, conns in (("lr", CONNECTIONS), ("rf", (64,))):
                    try:
                        for n, res in measure(
                            target, kind, conns, args.duration, work, req
                        ).items():
                            rnd[f"{target.name}|{kind}|{n}"] = res
                    except (h.ChildFailed, subprocess.CalledProcessError, SystemExit) as exc:
                        h.log(f"{target.name} {kind}: FAILED {exc}")
            rounds.append(rnd)
        summary = summarize(rounds)
        overloads: dict[str, Any] = {}
        for name in ("shipyard-batch", "fastapi-2w"):
            target = next((t for t in chosen if t.name == name), None)
            capacity = (summary.get(f"{name}|rf|64") or {}).get("rps")
            if target is not None and capacity:
                try:
                    overloads[name] = overload(target, "rf", 2 * capacity, work, req)
                except (h.ChildFailed, subprocess.CalledProcessError) as exc:
                    h.log(f"overload {name}: FAILED {exc}")
        cmd = "python benchmarks/serving/run.py " + " ".join(sys.argv[1:])
        text = render(summary, labels, facts, floors, overloads, cmd.strip())
        print(text)
        if not args.no_write:
            (HERE / "RESULTS.md").write_text(text)
            (HERE / "results.json").write_text(
                json.dumps(
                    {"facts": facts, "floors": floors, "rounds": rounds, "overload": overloads},
                    indent=1,
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
