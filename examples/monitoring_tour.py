"""Monitoring tour: drift of a shifted dataset against a training set, from the raw data and
from the compact profile kept with a model version, as an HTML report; and, for a served
model, the drift gauges rising as drifted traffic arrives.

    python examples/monitoring_tour.py [--out DIR]

``watch_served_model(server_url, model)`` is the second half: call it after sending drifted
traffic to a model served with ``shipyard serve`` (whose version has a profile attached,
``shipyard monitor profile``) to watch the gauges the monitor exports.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.monitoring import Profile, build_report, detect_drift


def make_data(n: int = 20_000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A training frame and a current frame where two features and a category shifted."""
    rng = np.random.default_rng(seed)
    plans = ["basic", "plus", "pro", "team"]
    reference = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 0.5, n),
            "sessions": rng.poisson(5, n).astype(float),
            "tenure_days": rng.uniform(0, 1000, n),
            "plan": rng.choice(plans, n, p=[0.5, 0.25, 0.15, 0.10]),
        }
    )
    m = n // 4
    current = pd.DataFrame(
        {
            "age": rng.normal(46, 10, m),  # older customers
            "income": rng.lognormal(10, 0.5, m),
            "sessions": rng.poisson(5, m).astype(float),
            "tenure_days": rng.uniform(0, 1000, m),
            "plan": rng.choice(plans, m, p=[0.25, 0.25, 0.25, 0.25]),  # plan mix changed
        }
    )
    current.loc[current.index[:50], "income"] = np.nan  # a broken upstream join
    return reference, current


def main(argv: list[str] | None = None) -> Path:
    """Compute the drift report for the shifted data; returns the HTML file's path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the report")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="shipyard-drift-"))

    reference, current = make_data()
    raw = detect_drift(reference, current)
    profile = Profile.from_data(reference)
    from_profile = detect_drift(profile, current)
    print(f"==> {len(reference):,} training rows vs {len(current):,} current rows")
    print(f"{'column':<12} {'test':<14} {'raw score':>10} {'profile':>10}  verdict")
    for a, b in zip(raw.columns, from_profile.columns, strict=True):
        verdict = "DRIFT" if a.drifted else "ok"
        print(f"{a.column:<12} {a.test:<14} {a.score:>10.4f} {b.score:>10.4f}  {verdict}")
    size = len(profile.to_json())
    differ = [
        a.column
        for a, b in zip(raw.columns, from_profile.columns, strict=True)
        if a.drifted != b.drifted
    ]
    agreement = "gives the same verdicts" if not differ else f"differs on {', '.join(differ)}"
    print(
        f"dataset drift: {raw.drifted} ({raw.share_drifted:.0%} of columns); the profile "
        f"({size / 1024:.0f} KiB of JSON instead of the rows) {agreement}"
    )
    report = build_report(
        profile, current, title="Churn model: current week vs training", meta={"model": "churn"}
    )
    html_path, json_path = report.save(out)
    print(f"HTML report: {html_path}")
    print(f"JSON report: {json_path}")
    return html_path


def watch_served_model(
    server_url: str,
    model: str,
    *,
    settings: Any = None,
    window: str = "10m",
    timeout: float = 30.0,
    threshold: float = 0.1,
    out_dir: str | Path | None = None,
) -> Any:
    """Watch a served model's drift gauges rise: poll the monitor on its prediction log until
    a feature drifts (or ``timeout``), printing the gauges, then write an HTML report.

    Args:
        server_url: The model server (``shipyard serve``), for its prediction counter.
        model: The served model's name; its version needs an attached profile.
        settings: Where the stores are (default: environment).
        window: The monitor's window.
        timeout: Seconds to wait for the log to show the drift.
        threshold: Drift score counted as risen, for the printout.
        out_dir: Where to write the report (default: a temporary folder).

    Returns:
        The last :class:`~shipyard.monitoring.monitor.MonitorSnapshot`.
    """
    import httpx
    from prometheus_client import generate_latest

    from shipyard.client import Client
    from shipyard.monitoring.monitor import Monitor
    from shipyard.monitoring.report import build_report

    client = Client(settings)
    monitor = Monitor(
        model,
        artifacts_url=client.settings.artifacts,
        workspace=client.workspace,
        window=window,
        client=client,
    )
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in httpx.get(f"{server_url.rstrip('/')}/metrics", timeout=10).text.splitlines()
        if line.startswith("model_predictions_total{") and f'model="{model}"' in line
    )
    print(f"==> {model}: {counted:.0f} predictions served so far (model_predictions_total)")
    deadline = time.monotonic() + timeout
    snapshot = monitor.update()
    while time.monotonic() < deadline:
        drifting = [
            r
            for s in snapshot.versions
            if s.drift is not None
            for r in s.drift.columns
            if r.score >= threshold
        ]
        if drifting:
            break
        time.sleep(1.0)  # the server publishes its log every few seconds
        snapshot = monitor.update()
    for line in generate_latest(monitor.metrics.registry).decode().splitlines():
        if line.startswith(("model_feature_drift{", "model_dataset_drift_share{")):
            print(f"    {line}")
    for status in snapshot.versions:
        if status.drift is None:
            print(f"    version {status.version}: no profile attached, no drift computed")
            continue
        print(
            f"    version {status.version}: {status.rows} rows in the window, drifted: "
            f"{', '.join(status.drift.drifted_columns) or 'none'}"
        )
        reference = monitor._profiles.get(status.version)
        table, _ = monitor.read_window()
        if reference is not None and table.num_rows:
            from shipyard.monitoring.windows import feature_frame

            folder = Path(out_dir or tempfile.mkdtemp(prefix="shipyard-drift-"))
            report = build_report(
                reference,
                feature_frame(table),
                title=f"{model} v{status.version}: prediction log vs training profile",
                meta={"model": model, "version": status.version, "window": window},
            )
            html_path, _ = report.save(folder)
            print(f"    HTML report: {html_path}")
    return snapshot


if __name__ == "__main__":
    main()
