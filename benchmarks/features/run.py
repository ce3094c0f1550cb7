"""Shipyard's feature store against Feast, side by side on BENCH-DATA-features' data.

    .venv/bin/python benchmarks/features/run.py [--size large] [--pairs 3] [--quick]
        [--only pit,materialize,online,push] [--no-file-store] [--no-write]

Data: the driver_stats (7.2M rows) and customer_stats (1.2M rows) tables and the entity
frames, generated exactly per the spec (benchmarks/features/_data.py); both sides read the
same Parquet files, whose column hashes are recorded. Feast runs from its own virtualenv at
~/.cache/shipyard-dev/feast-<version> (``feast[duckdb]``), Shipyard from the .venv. Every
measurement is a fresh child process (peak RSS: its own VmHWM); pairs alternate
Shipyard, Feast, Shipyard, ... Shipyard's PIT join result is checked against a vectorized
brute-force answer. Writes benchmarks/features/RESULTS.md and results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import _data  # noqa: E402
import _harness as h  # noqa: E402

FEAST = "0.67.0"
REDIS_URL = os.environ.get("SHIPYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def feast_python() -> Path:
    return h.anchor_python(f"feast-{FEAST}", [f"feast[duckdb]=={FEAST}"], pin_sklearn=False)


def child(python: Path, script: str, work: Path, *args: object) -> h.ChildResult:
    argv = [str(python), str(HERE / script), str(work), *map(str, args)]
    return h.run_child(argv, env=h.side_env(), cwd=work, timeout=1800)


def expected_driver(work: Path, size: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force PIT answer for the driver view: matched row index per entity (-1: NULL)."""
    driver = pq.read_table(work / "data" / size / "driver_stats.parquet")
    entity = pq.read_table(work / "data" / size / f"entity_{n}.parquet")
    ids = driver.column("driver_id").to_numpy()
    ts = driver.column("event_timestamp").cast("int64").to_numpy() // 10**9
    key = ids * 10**10 + ts
    order = np.argsort(key, kind="stable")
    e_ids = entity.column("driver_id").to_numpy()
    e_ts = entity.column("event_timestamp").cast("int64").to_numpy() // 10**9
    pos = np.searchsorted(key[order], e_ids * 10**10 + e_ts, side="right") - 1
    match = np.full(len(e_ids), -1)
    ok = pos >= 0
    rows = order[np.clip(pos, 0, None)]
    ok &= ids[rows] == e_ids
    ok &= e_ts - ts[rows] <= _data.DRIVER_TTL_S
    match[ok] = rows[ok]
    return match, driver.column("conv_rate").to_numpy()


def check_pit(work: Path, size: str, n: int) -> dict[str, Any]:
    """Compare Shipyard's saved pit1 result with the brute-force answer."""
    match, conv = expected_driver(work, size, n)
    got = pq.read_table(work / f"result-pit1-{n}.parquet").column("conv_rate")
    want_null = match < 0
    got_null = np.asarray(got.is_null())
    values = got.fill_null(np.float32(-1)).to_numpy()
    same = bool(
        np.array_equal(want_null, got_null)
        and np.array_equal(values[~want_null], conv[match[~want_null]])
    )
    return {"equal": same, "rows": len(match), "null_share": float(want_null.mean())}


def pairs(
    key: str,
    count: int,
    ship: tuple[str, ...] | None,
    feast: tuple[str, ...] | None,
    work: Path,
    feast_py: Path | None,
) -> dict[str, Any]:
    """``count`` alternating pairs; medians of seconds (or p99) and peak RSS per side."""
    sides: dict[str, list[dict[str, Any]]] = {"shipyard": [], "feast": []}
    for i in range(count):
        for side, args, python, script in (
            ("shipyard", ship, h.shipyard_python(), "shipyard_side.py"),
            ("feast", feast, feast_py, "feast_side.py"),
        ):
            if args is None or python is None:
                continue
            try:
                res = child(python, script, work, *args)
            except h.ChildFailed as exc:
                h.log(f"{key} {side}: FAILED {str(exc)[-1500:]}")
                sides[side].append({"error": str(exc)[-300:]})
                continue
            # the child's own VmHWM (see _data.peak_rss_mb), not wait4's ru_maxrss
            sides[side].append({"peak_rss_mb": res.peak_rss_mb, **res.data})
            h.log(f"{key} {side} {i + 1}/{count}: {res.data} rss {res.peak_rss_mb:.0f} MB")
    return sides


def med(runs: list[dict[str, Any]], field: str) -> float | None:
    values = [r[field] for r in runs if field in r]
    return statistics.median(values) if values else None


def render(results: dict[str, Any], facts: dict[str, Any], cmd: str) -> str:
    lines = [
        "# Feature-store benchmark",
        "",
        f"Command: `{cmd}`",
        "",
        f"- {facts.get('date')}, {facts.get('nproc')} cores ({facts.get('cpu', '?')}), load "
        f"average at start {facts.get('loadavg_start')}; Feast {FEAST} in its own virtualenv.",
        f"- Data: {facts.get('size')} (driver_stats {facts.get('driver_rows'):,} rows, "
        f"customer_stats {facts.get('customer_rows'):,}); column hashes in results.json.",
        "- Medians over alternating pairs; each measurement a fresh process; peak RSS is "
        "the child's own VmHWM.",
        "",
        "| workload | Shipyard | Feast | Feast / Shipyard | Shipyard peak MB | Feast peak MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, row in results["rows"].items():
        for field in row["fields"]:
            s, f = med(row["shipyard"], field), med(row["feast"], field)
            unit = " ms" if field.endswith("_ms") else " s"
            label = f"{key}, {field.removesuffix('_ms')}" if len(row["fields"]) > 1 else key
            ratio = f"{f / s:.1f}x" if s and f else "—"
            lines.append(
                f"| {label} | {(s and f'{s:.3f}{unit}') or '—'} | "
                f"{(f and f'{f:.3f}{unit}') or '—'} | {ratio} | "
                f"{med(row['shipyard'], 'peak_rss_mb') or 0:.0f} | "
                f"{med(row['feast'], 'peak_rss_mb') or 0:.0f} |"
            )
    if "check" in results:
        check = results["check"]
        lines += [
            "",
            f"Correctness: Shipyard's driver-view PIT join of {check['rows']:,} entity rows "
            f"{'equals' if check['equal'] else 'DIFFERS FROM'} the brute-force answer "
            f"({check['null_share']:.1%} NULL by TTL).",
        ]
    for key, row in results["rows"].items():
        for side in ("shipyard", "feast"):
            errors = [r["error"] for r in row[side] if "error" in r]
            if errors:
                lines.append(f"- {key}, {side} failed: `{errors[0][-200:]}`")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", choices=sorted(_data.SIZES))
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small data, one pair")
    parser.add_argument("--only", default="pit,materialize,online,push")
    parser.add_argument("--no-file-store", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.size, args.pairs = "small", 1
    only = set(args.only.split(","))
    big, mid = (1_000_000, 100_000) if args.size == "large" else (100_000, 10_000)
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-features-"))
    facts = h.machine_facts(None) | {"size": args.size}
    feast_py = feast_python()
    try:
        hashes = _data.write(work, args.size, [mid, big])
        facts["driver_rows"] = pq.read_metadata(
            work / "data" / args.size / "driver_stats.parquet"
        ).num_rows
        facts["customer_rows"] = pq.read_metadata(
            work / "data" / args.size / "customer_stats.parquet"
        ).num_rows
        rows: dict[str, Any] = {}
        s = args.size

        def add(
            key: str, fields: str | tuple[str, ...], count: int, ship: tuple, feast: tuple | None
        ) -> None:
            fields = (fields,) if isinstance(fields, str) else fields
            rows[key] = {"fields": fields, **pairs(key, count, ship, feast, work, feast_py)}

        if "pit" in only:
            if not args.no_file_store:
                add(
                    f"PIT join, driver view, {mid:,} entity rows (Feast file store)",
                    "seconds",
                    1,
                    (s, "pit1", mid, "sqlite"),
                    (s, "pit1", mid, "file"),
                )
            add(
                f"PIT join, driver view, {big:,} entity rows (Feast DuckDB store)",
                "seconds",
                args.pairs,
                (s, "pit1", big, "sqlite"),
                (s, "pit1", big, "duckdb"),
            )
            add(
                f"PIT join, both views, {big:,} entity rows (Feast DuckDB store)",
                "seconds",
                args.pairs,
                (s, "pit2", big, "sqlite"),
                (s, "pit2", big, "duckdb"),
            )
        if "materialize" in only:
            add(
                "materialize both views to SQLite",
                "seconds",
                max(1, args.pairs - 1),
                (s, "materialize", 0, "sqlite"),
                (s, "materialize", 0, "duckdb"),
            )
        if "online" in only:
            for n in (1, 100):
                add(
                    f"online read, {n} entities x 10 features, SQLite",
                    ("p50_ms", "p99_ms"),
                    args.pairs,
                    (s, "online", n, "sqlite"),
                    (s, "online", n, "duckdb"),
                )
            add(
                "online read, 100 entities x 10 features, Shipyard on Redis",
                ("p50_ms", "p99_ms"),
                args.pairs,
                (s, "online", 100, REDIS_URL),
                None,
            )
        if "push" in only:
            add(
                "push 10,000 rows to the online store",
                "seconds",
                args.pairs,
                (s, "push", 10_000, "sqlite"),
                (s, "push", 10_000, "duckdb"),
            )
        results: dict[str, Any] = {"rows": rows, "hashes": hashes}
        if (work / f"result-pit1-{big}.parquet").exists():
            results["check"] = check_pit(work, s, big)
        cmd = ("python benchmarks/features/run.py " + " ".join(sys.argv[1:])).strip()
        text = render(results, facts, cmd)
        print(text)
        if not args.no_write:
            (HERE / "RESULTS.md").write_text(text)
            (HERE / "results.json").write_text(
                json.dumps({"facts": facts, **results}, indent=1, default=str)
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
