"""Shipyard against MLflow: tracking, HTTP server, registry and import time, side by side.

    .venv/bin/python benchmarks/run.py [--quick] [--only tracking|registry|server|import]

Each measurement is a fresh child process with a fresh temporary home and database;
Shipyard runs from the project's .venv, MLflow from its own virtualenv under
~/.cache/shipyard-dev/mlflow-<version> (created on first use). Pairs alternate Shipyard,
MLflow, Shipyard, MLflow ...; the tables give each side's median, the median of the
per-pair MLflow/Shipyard ratios and peak RSS. Not a test: nothing here asserts a time.
Progress goes to stderr; the tables go to stdout and benchmarks/results/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

AREAS = ("import", "tracking", "server", "registry")


@dataclass(frozen=True)
class Sizes:
    """How many operations each side runs; MLflow runs smaller where it is slow, scaled."""

    t1: int = 10_000
    t1_mlflow: int = 10_000
    t2: int = 100_000
    t2_mlflow: int = 100_000
    t3: int = 10_000
    t4: int = 200
    t4b: int = 10_000
    s_t1: int = 10_000
    s_t1_mlflow: int = 1_000
    s_t2: int = 100_000
    s_t2_mlflow: int = 100_000
    full_check: bool = True  # one MLflow run at full size where pairs ran it reduced


FULL = Sizes()
QUICK = Sizes(t1_mlflow=1_000, s_t1_mlflow=500, s_t2_mlflow=10_000, full_check=False)


@dataclass
class Ctx:
    pairs: int
    sizes: Sizes
    sides: tuple[str, ...]
    ship_py: Path
    mlflow_py: Path | None
    tmp: Path

    def python(self, side: str) -> Path:
        if side == "shipyard":
            return self.ship_py
        assert self.mlflow_py is not None
        return self.mlflow_py


# --- children ---------------------------------------------------------------------------


def _script(area: str, side: str) -> Path:
    return h.BENCH / area / f"{side}_side.py"


def _env(side: str, home: Path, url: str = "") -> dict[str, str]:
    extra = {"SHIPYARD_HOME": str(home)} if side == "shipyard" else {}
    if url and side == "shipyard":
        extra["SHIPYARD_URL"] = url
    return h.side_env(extra)


def tracking_child(
    ctx: Ctx, side: str, workload: str, n: int, home: Path, url: str = ""
) -> h.Measurement:
    argv = [str(ctx.python(side)), str(_script("tracking", side)), workload]
    argv += ["--home", str(home), "--n", str(n)]
    if url:
        argv += ["--url", url]
    result = h.run_child(argv, env=_env(side, home, url), cwd=home)
    return h.Measurement(result.data, result.wall, result.peak_rss_mb, n=n, cpu=result.cpu)


def server(ctx: Ctx, side: str, home: Path) -> h.Server:
    port = h.free_port()
    if side == "shipyard":
        cli = ctx.ship_py.parent / "shipyard"
        if cli.exists() and (h.REPO / "shipyard" / "cli" / "main.py").exists():
            argv = [str(cli), "server"]
        else:
            argv = [str(ctx.ship_py), "-m", "shipyard.server.runner"]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        health = [f"http://127.0.0.1:{port}/api/v1/health", f"http://127.0.0.1:{port}/health"]
    else:
        assert ctx.mlflow_py is not None
        argv = [str(ctx.mlflow_py.parent / "mlflow"), "server"]
        argv += ["--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}"]
        argv += ["--default-artifact-root", (home / "artifacts").as_uri()]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        health = [f"http://127.0.0.1:{port}/health"]
    env = _env(side, home)
    if side == "mlflow":
        # The GenAI job runner (a supervisor and seven huey consumers) has no part in
        # tracking; left on, it would cost MLflow CPU and ~1.2 GB during the measurement.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env["PATH"] = f"{ctx.python(side).parent}{os.pathsep}{env.get('PATH', '')}"
    return h.Server(argv, env, home, health, url=f"http://127.0.0.1:{port}")


def served_child(ctx: Ctx, side: str, workload: str, n: int, home: Path) -> h.Measurement:
    """A fresh server on the home's database, one client child against it, then stop."""
    client_home = home / "client"
    client_home.mkdir()
    with server(ctx, side, home) as srv:
        cpu_before = srv.mark()
        m = tracking_child(ctx, side, workload, n, client_home, url=srv.url)
        cpu_after = srv.mark()
    m.server_rss_mb = srv.peak_rss_kb / 1024
    m.server_cpu_s = cpu_after - cpu_before
    return m


# --- the T4b store: 10,000 runs built once per store version and copied per pair -----------


def _db_name(side: str) -> str:
    return "shipyard.db" if side == "shipyard" else "mlflow.db"


def _schema_key(ctx: Ctx, side: str) -> str:
    if side == "mlflow":
        assert ctx.mlflow_py is not None
        return ctx.mlflow_py.parents[1].name
    digest = hashlib.sha256()
    pkg = h.REPO / "shipyard"
    files = sorted(pkg.glob("**/schema.py")) + sorted(pkg.glob("store/migrations/**/*.py"))
    files += [pkg / "tracking" / "sql.py", h.BENCH / "tracking" / "_data.py"]
    for path in files:
        if path.exists():
            digest.update(path.read_bytes())
    return "shipyard-" + digest.hexdigest()[:12]


def _copy_db(src: Path, dst: Path) -> None:
    """A consistent single-file copy, WAL included (sqlite's online backup)."""
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def t4b_store(ctx: Ctx, side: str) -> Path:
    n = ctx.sizes.t4b
    cached = h.CACHE / "bench-stores" / f"t4b-{n}-{_schema_key(ctx, side)}.db"
    if cached.exists():
        return cached
    h.log(f"building the {n:,}-run store for {side} once (cached at {cached})")
    with h.fresh_home(ctx.tmp, f"build-{side}") as home:
        m = tracking_child(ctx, side, "build", n, home)
        h.log(f"built in {m.raw['seconds']:.1f} s")
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial")
        _copy_db(home / _db_name(side), partial)
        partial.rename(cached)
    return cached


def _home_with_store(ctx: Ctx, side: str, home: Path, store: Path) -> Path:
    _copy_db(store, home / _db_name(side))
    return home


# --- areas ------------------------------------------------------------------------------


def _pairs(
    ctx: Ctx, key: str, run: Callable[[str, int], h.Measurement], field: str = "seconds"
) -> h.Outcome:
    def side_fn(side: str) -> Callable[[int], h.Measurement] | None:
        return (lambda i: run(side, i)) if side in ctx.sides else None

    return h.alternate(ctx.pairs, side_fn("shipyard"), side_fn("mlflow"), h.Outcome(key), field)


def _full_check(ctx: Ctx, outcome: h.Outcome, run: Callable[[], h.Measurement]) -> None:
    """One MLflow run at full size, next to the pairs that ran it reduced and scaled."""
    if not ctx.sizes.full_check or "mlflow" not in ctx.sides or outcome.error:
        return
    h.log(f"{outcome.key}: one full-size MLflow run")
    try:
        m = run()
    except h.ChildFailed as exc:
        outcome.extra["mlflow_full_error"] = str(exc)
        return
    outcome.extra["mlflow_full"] = {"seconds": m.raw["seconds"], "n": m.n, "rss": m.peak_rss_mb}


def area_import(ctx: Ctx) -> dict[str, h.Outcome]:
    def runner(suffix: str) -> Callable[[str, int], h.Measurement]:
        def run(side: str, _i: int) -> h.Measurement:
            argv = [str(ctx.python(side)), str(h.BENCH / "_import_side.py"), side + suffix]
            with h.fresh_home(ctx.tmp, f"import-{side}") as home:
                got = h.run_child(argv, env=_env(side, home), cwd=home)
            return h.Measurement(got.data, got.wall, got.peak_rss_mb, cpu=got.cpu)

        return run

    for side in ctx.sides:  # warm-up: byte-compile, fill the OS page cache
        runner("-api")(side, -1)
    return {
        "import": _pairs(ctx, "import", runner("")),
        "import_api": _pairs(ctx, "import_api", runner("-api")),
    }


def area_tracking(ctx: Ctx) -> dict[str, h.Outcome]:
    s = ctx.sizes
    out: dict[str, h.Outcome] = {}

    def plain(workload: str, n_ship: int, n_mlflow: int) -> Callable[[str, int], h.Measurement]:
        def run(side: str, _i: int) -> h.Measurement:
            n = n_ship if side == "shipyard" else n_mlflow
            with h.fresh_home(ctx.tmp, f"{workload}-{side}") as home:
                return tracking_child(ctx, side, workload, n, home)

        return run

    for side in ctx.sides:  # warm-up
        with h.fresh_home(ctx.tmp, f"warm-{side}") as home:
            tracking_child(ctx, side, "t1", 50, home)

    out["t1"] = _pairs(ctx, "t1", plain("t1", s.t1, s.t1_mlflow))
    if s.t1_mlflow < s.t1:
        _full_check(ctx, out["t1"], lambda: plain("t1", s.t1, s.t1)("mlflow", 0))
    out["t2"] = _pairs(ctx, "t2", plain("t2", s.t2, s.t2_mlflow))
    out["t3"] = _pairs(ctx, "t3", plain("t3", s.t3, s.t3))
    out["t4"] = _pairs(ctx, "t4", plain("t4", s.t4, s.t4))

    stores = {side: t4b_store(ctx, side) for side in ctx.sides}

    def t4b(side: str, _i: int) -> h.Measurement:
        with h.fresh_home(ctx.tmp, f"t4b-{side}") as home:
            _home_with_store(ctx, side, home, stores[side])
            return tracking_child(ctx, side, "search", s.t4b, home)

    out["t4b"] = _pairs(ctx, "t4b", t4b)
    return out


def area_server(ctx: Ctx) -> dict[str, h.Outcome]:
    s = ctx.sizes
    out: dict[str, h.Outcome] = {}

    def served(workload: str, n_ship: int, n_mlflow: int) -> Callable[[str, int], h.Measurement]:
        def run(side: str, _i: int) -> h.Measurement:
            n = n_ship if side == "shipyard" else n_mlflow
            with h.fresh_home(ctx.tmp, f"s{workload}-{side}") as home:
                return served_child(ctx, side, workload, n, home)

        return run

    out["s_t1"] = _pairs(ctx, "s_t1", served("t1", s.s_t1, s.s_t1_mlflow))
    if s.s_t1_mlflow < s.s_t1:
        _full_check(ctx, out["s_t1"], lambda: served("t1", s.s_t1, s.s_t1)("mlflow", 0))
    out["s_t2"] = _pairs(ctx, "s_t2", served("t2", s.s_t2, s.s_t2_mlflow))
    out["s_t3"] = _pairs(ctx, "s_t3", served("t3", s.t3, s.t3))
    out["s_t4"] = _pairs(ctx, "s_t4", served("t4", s.t4, s.t4))

    stores = {side: t4b_store(ctx, side) for side in ctx.sides}

    def t4b(side: str, _i: int) -> h.Measurement:
        with h.fresh_home(ctx.tmp, f"st4b-{side}") as home:
            _home_with_store(ctx, side, home, stores[side])
            return served_child(ctx, side, "search", s.t4b, home)

    out["s_t4b"] = _pairs(ctx, "s_t4b", t4b)
    return out


def area_registry(ctx: Ctx) -> dict[str, h.Outcome]:
    loads = h.Outcome("registry_load")
    floor = h.Outcome("registry_floor")

    def run(side: str, i: int) -> h.Measurement:
        script = str(_script("registry", side))
        py = str(ctx.python(side))
        with h.fresh_home(ctx.tmp, f"registry-{side}") as home:
            env = _env(side, home)
            logged = h.run_child([py, script, "log", "--home", str(home)], env=env, cwd=home)
            loaded = h.run_child([py, script, "load", "--home", str(home)], env=env, cwd=home)
            if side == "shipyard" and i >= 0:  # the same pickle, no framework, in .venv
                bare = [str(ctx.ship_py), str(h.BENCH / "registry" / "floor.py")]
                got = h.run_child([*bare, "--home", str(home)], env=env, cwd=home)
                floor.shipyard.append(
                    h.Measurement(got.data, got.wall, got.peak_rss_mb, cpu=got.cpu)
                )
        if i >= 0:
            getattr(loads, side).append(
                h.Measurement(loaded.data, loaded.wall, loaded.peak_rss_mb, cpu=loaded.cpu)
            )
        return h.Measurement(logged.data, logged.wall, logged.peak_rss_mb, cpu=logged.cpu)

    for side in ctx.sides:  # warm-up: byte-compile, fill the OS page cache
        try:
            run(side, -1)
        except h.ChildFailed as exc:
            h.log(f"registry warm-up of {side} failed:\n{exc}")
    logs = _pairs(ctx, "registry_log", run)
    loads.error = logs.error
    for side in ("shipyard", "mlflow"):
        preds = {str(m.raw.get("prediction")) for m in getattr(loads, side)}
        loads.extra[f"{side}_predictions"] = sorted(preds)
    return {"registry_log": logs, "registry_load": loads, "registry_floor": floor}


AREA_RUNNERS = {
    "import": area_import,
    "tracking": area_tracking,
    "server": area_server,
    "registry": area_registry,
}


# --- tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    area: str
    outcome: str
    label: str
    field: str
    full_n: int | None = None  # scale reduced MLflow runs to this size
    goal: str = "—"
    check: Callable[[dict[str, Any]], bool | None] | None = None


def _ratio_at_least(x: float) -> Callable[[dict[str, Any]], bool | None]:
    return lambda s: None if s["ratio_median"] is None else s["ratio_median"] >= x


def _ship_at_most(seconds: float) -> Callable[[dict[str, Any]], bool | None]:
    return lambda s: None if not s["shipyard"] else s["shipyard"]["median"] <= seconds


def rows(sizes: Sizes) -> list[Row]:
    return [
        Row("import", "import", "`import shipyard` / `import mlflow`", "seconds",
            goal="< 0.3 s", check=_ship_at_most(0.3)),
        Row("import", "import_api",
            "`from shipyard import Client, log_metric, start_run` / same from mlflow", "seconds"),
        Row("tracking", "t1", f"T1 {sizes.t1:,} `log_metric` calls (fluent)", "seconds",
            sizes.t1, ">= 50x", _ratio_at_least(50)),
        Row("tracking", "t2", f"T2 {sizes.t2:,} points via `log_batch` (1,000/call)", "seconds",
            sizes.t2, ">= 20x", _ratio_at_least(20)),
        Row("tracking", "t3", f"T3 read a {sizes.t3:,}-point history (median of 5 reads)",
            "seconds", None, ">= 10x", _ratio_at_least(10)),
        Row("tracking", "t4", f"T4 create {sizes.t4} runs (5 params + 5 metrics each)",
            "create_seconds"),
        Row("tracking", "t4", f"T4 search `metrics.m1 > 0.5` by m2 over {sizes.t4} runs",
            "search_seconds"),
        Row("tracking", "t4b", f"T4b the same search over {sizes.t4b:,} runs", "search_seconds",
            None, "< 100 ms", _ship_at_most(0.1)),
        Row("server", "s_t1", f"T5-T1 {sizes.s_t1:,} `log_metric` calls via server", "seconds",
            sizes.s_t1),
        Row("server", "s_t2", f"T5-T2 {sizes.s_t2:,} points via `log_batch` via server",
            "seconds", sizes.s_t2),
        Row("server", "s_t3", f"T5-T3 read a {sizes.t3:,}-point history via server", "seconds"),
        Row("server", "s_t4", f"T5-T4 create {sizes.t4} runs via server", "create_seconds"),
        Row("server", "s_t4", f"T5-T4 search over {sizes.t4} runs via server", "search_seconds"),
        Row("server", "s_t4b", f"T5-T4b search over {sizes.t4b:,} runs via server",
            "search_seconds"),
        Row("registry", "registry_log", "log + register a LogisticRegression (`log_model`)",
            "log_seconds", None, "<= 0.5 s", _ship_at_most(0.5)),
        Row("registry", "registry_log", "create 50 more versions", "versions_seconds"),
        Row("registry", "registry_log", "51 alias moves", "alias_seconds"),
        Row("registry", "registry_load",
            "fresh process: import, load `models:/bench@champion`, predict 1 row (wall)", "wall",
            None, "<= 1 s", _ship_at_most(1.0)),
        Row("registry", "registry_load", "same, CPU time of the process (user + sys)", "cpu"),
        Row("registry", "registry_floor",
            "floor: fresh process unpickling the same model + predict, no framework (wall)",
            "wall"),
        Row("registry", "registry_floor", "floor, CPU time of the process (user + sys)", "cpu"),
    ]  # fmt: skip


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s"


def _fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    return f"{ratio:.3g}x" if ratio >= 1 else f"{ratio:.2g}x"


def render(facts: dict[str, Any], outcomes: dict[str, h.Outcome], sizes: Sizes, cmd: str) -> str:
    lines = [
        f"Run: {facts['date']}, command `{cmd}`",
        "",
        f"- machine: {facts['nproc']} cores ({facts.get('cpu', '?')}), "
        f"{facts.get('mem_gb', '?')} GB RAM, {facts['platform']}",
        f"- load average (1/5/15 min): start {_load(facts['loadavg_start'])}, "
        f"end {_load(facts.get('loadavg_end', []))}",
        f"- Shipyard {facts['shipyard']} (git {facts.get('git_commit', '?')}"
        f"{', uncommitted changes' if facts.get('git_dirty') else ''}), Python "
        f"{facts['python']}, SQLAlchemy {facts.get('shipyard_venv_sqlalchemy')}, scikit-learn "
        f"{facts.get('shipyard_venv_scikit-learn')}, FastAPI {facts.get('shipyard_venv_fastapi')}"
        f", uvicorn {facts.get('shipyard_venv_uvicorn')}",
        f"- MLflow {facts.get('mlflow_venv_mlflow', '—')} in its own virtualenv (SQLAlchemy "
        f"{facts.get('mlflow_venv_sqlalchemy', '—')}, scikit-learn "
        f"{facts.get('mlflow_venv_scikit-learn', '—')}, pandas "
        f"{facts.get('mlflow_venv_pandas', '—')}), SQLite backend",
        f"- pairs: {facts['pairs']} (Shipyard, MLflow alternating; each a fresh process and "
        "fresh home/database)",
        "",
    ]
    notes: list[str] = []
    current = ""
    for row in rows(sizes):
        if row.outcome not in outcomes:
            continue
        if row.area != current:
            current = row.area
            lines += [
                "",
                f"**{row.area}**",
                "",
                "| workload | Shipyard median | MLflow median | median ratio (MLflow/Shipyard) "
                "| goal | met | peak RSS Shipyard / MLflow"
                + (
                    " (server: peak RSS, median CPU seconds while the client ran)"
                    if row.area == "server"
                    else ""
                )
                + " |",
                "| --- | ---: | ---: | ---: | --- | --- | ---: |",
            ]
        outcome = outcomes[row.outcome]
        s = h.summarize(outcome, row.field, row.full_n)
        label = row.label
        mlf = s["mlflow"]
        if row.full_n and mlf and mlf["n"] and mlf["n"] != row.full_n:
            label += f" [MLflow ran {mlf['n']:,}, scaled x{row.full_n / mlf['n']:g}]"
            full = outcome.extra.get("mlflow_full")
            if full and row.field == "seconds":
                notes.append(
                    f"{row.label}: one full-size MLflow run took {_fmt_s(full['seconds'])} "
                    f"(scaled pairs' median {_fmt_s(mlf['median'])})."
                )
        met = "—"
        if s["error"]:
            met = "error"
            notes.append(f"{row.label}: failed: {s['error'].splitlines()[0][:200]}")
        elif row.check is not None and (verdict := row.check(s)) is not None:
            met = "met" if verdict else "**not met**"
        rss = f"{_rss(s['shipyard'])} / {_rss(mlf)}"
        lines.append(
            f"| {label} | {_fmt_s(s['shipyard'].get('median'))} | {_fmt_s(mlf.get('median'))} "
            f"| {_fmt_ratio(s['ratio_median'])} | {row.goal} | {met} | {rss} |"
        )
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def _load(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values) or "?"


def _rss(side: dict[str, Any]) -> str:
    if not side:
        return "—"
    text = f"{side['peak_rss_mb']:.0f} MB"
    if "server_peak_rss_mb" in side:
        text += (
            f" (server {side['server_peak_rss_mb']:.0f} MB, "
            f"{side['server_cpu_s_median']:.3g} CPU-s)"
        )
    return text


# --- main -------------------------------------------------------------------------------

README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"


def write_readme(markdown: str) -> None:
    readme = h.BENCH / "README.md"
    text = readme.read_text()
    head, _, rest = text.partition(README_START)
    _, _, tail = rest.partition(README_END)
    readme.write_text(f"{head}{README_START}\n{markdown}{README_END}{tail}")


def rerender(path: Path, readme: bool) -> int:
    """Tables from a saved results JSON (after a change to the table layout)."""
    payload = json.loads(path.read_text())
    facts = payload["facts"]
    outcomes = {}
    for key, raw in payload["outcomes"].items():
        outcome = h.Outcome(key, error=raw.get("error", ""))
        for side in ("shipyard", "mlflow"):
            getattr(outcome, side).extend(h.Measurement(**m) for m in raw[side])
        outcome.extra = {
            k: v for k, v in raw.items() if k not in ("key", "shipyard", "mlflow", "error")
        }
        outcomes[key] = outcome
    markdown = render(facts, outcomes, Sizes(**facts["sizes"]), facts.get("command", "?"))
    if readme:
        write_readme(markdown)
    sys.stdout.write(markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="MLflow's slow workloads reduced")
    parser.add_argument(
        "--only", action="append", choices=AREAS, help="run only this area (repeatable)"
    )
    parser.add_argument("--pairs", type=int, default=3, help="alternating pairs (default 3)")
    parser.add_argument("--sides", choices=("both", "shipyard", "mlflow"), default="both")
    parser.add_argument("--mlflow-version", help="default: the newest release that installs")
    parser.add_argument(
        "--write-readme", action="store_true", help="put the tables into benchmarks/README.md"
    )
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="only re-render the tables of a saved run"
    )
    args = parser.parse_args(argv)
    if args.render:
        return rerender(args.render, args.write_readme)

    sides = ("shipyard", "mlflow") if args.sides == "both" else (args.sides,)
    mlflow_py = h.mlflow_python(args.mlflow_version) if "mlflow" in sides else None
    sizes = QUICK if args.quick else FULL
    areas = [a for a in AREAS if not args.only or a in args.only]
    cmd = "python benchmarks/run.py" + "".join(
        f" {a}" for a in sys.argv[1:] if a != "--write-readme"
    )
    facts = h.machine_facts(mlflow_py)
    facts["pairs"] = args.pairs
    facts["command"] = shlex.join(cmd.split())
    facts["sizes"] = sizes.__dict__
    h.log(f"areas {areas}, pairs {args.pairs}, sides {sides}, load {facts['loadavg_start']}")

    outcomes: dict[str, h.Outcome] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as tmp:
        ctx = Ctx(args.pairs, sizes, sides, h.shipyard_python(), mlflow_py, Path(tmp))
        for area in areas:
            h.log(f"=== {area}")
            outcomes.update(AREA_RUNNERS[area](ctx))
    facts["loadavg_end"] = list(os.getloadavg())
    facts["duration_s"] = round(time.perf_counter() - started, 1)

    markdown = render(facts, outcomes, sizes, shlex.join(cmd.split()))
    results = h.BENCH / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    payload = {"facts": facts, "outcomes": {k: o.to_json() for k, o in outcomes.items()}}
    (results / f"{stamp}.json").write_text(json.dumps(payload, indent=1, default=str))
    (results / f"{stamp}.md").write_text(markdown)
    if args.write_readme:
        write_readme(markdown)
        (results / "README-run.json").write_text(json.dumps(payload, indent=1, default=str))
    sys.stdout.write(markdown)
    h.log(f"done in {facts['duration_s']} s; raw results in {results / stamp}.json")
    return 1 if any(o.error for o in outcomes.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
