"""``shipyard monitor``: drift monitors, reports, alert rules and dashboards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli._common import WorkspaceOption, console, err_console, make_client, render_table

if TYPE_CHECKING:
    from shipyard.monitoring.monitor import MonitorSnapshot

app = typer.Typer(no_args_is_help=True)

ModelOption = Annotated[str, typer.Option("--model", "-m", help="Registered model name.")]
VersionOption = Annotated[
    int | None, typer.Option("--version", "-v", help="Model version (default: latest).")
]
CategoricalOption = Annotated[
    str, typer.Option("--categorical", help="Comma-separated columns to treat as categorical.")
]


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _read_table(path: Path) -> Any:
    import pandas as pd

    from shipyard.errors import InvalidArgumentError

    suffix = path.suffix.lower()
    if not path.is_file():
        raise InvalidArgumentError(f"No file at {path}.")
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True)
    raise InvalidArgumentError(
        f"Cannot read {path.name}.", hint="Use a .csv, .parquet or .jsonl file."
    )


@app.command("profile")
def profile(
    data: Annotated[Path, typer.Argument(help="Training data: .csv, .parquet or .jsonl.")],
    model: ModelOption,
    version: VersionOption = None,
    categorical: CategoricalOption = "",
    out: Annotated[Path | None, typer.Option(help="Also write the profile JSON here.")] = None,
    predict: Annotated[
        bool,
        typer.Option(help="Also profile the model's predictions on the data (prediction drift)."),
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Profile training data and attach the profile to a model version."""
    from shipyard.monitoring.profiles import Profile, _version, _with_predictions

    client = make_client(workspace)
    frame = _read_table(data)
    options: dict[str, Any] = {"categorical": _split(categorical)}
    if predict:
        from shipyard.models.logging import load

        mv = _version(model, version, client)
        predictor = load(f"models:/{mv.name}/{mv.version}", client=client)
        table, options = _with_predictions(frame, predictor.predict(frame), options)
        built = Profile.from_data(table, **options)
    else:
        built = Profile.from_data(frame, **options)
    from shipyard.monitoring.profiles import attach_profile

    attach_profile(model, built, version=version, client=client)
    if out is not None:
        built.save(out)
    console.print(
        f"Attached a profile of {len(built)} columns ({built.n_rows:,} rows) to "
        f"{model} version {version or 'latest'}."
    )


def _print_snapshot(snapshot: MonitorSnapshot) -> None:
    rows = []
    for s in snapshot.versions:
        share = "-" if s.drift is None else f"{s.drift.share_drifted:.0%}"
        drifted = "-" if s.drift is None else ", ".join(s.drift.drifted_columns) or "none"
        pred = "-" if s.prediction is None else f"{s.prediction.score:.3g}"
        perf = ", ".join(f"{k}={v:.3g}" for k, v in s.performance.items()) or "-"
        rows.append((s.version, s.rows, share, drifted, pred, s.labeled, perf))
    render_table(
        f"{snapshot.model} at {snapshot.at:%H:%M:%S}",
        ("version", "rows", "drift share", "drifted", "prediction drift", "labeled", "perf"),
        rows,
    )


@app.command("run")
def run(
    model: ModelOption,
    interval: Annotated[float, typer.Option(help="Seconds between updates.")] = 30.0,
    window: Annotated[str, typer.Option(help="10m, 1h ... or 5000rows.")] = "10m",
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve the gauges on /metrics of this port.")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address of the metrics server.")] = (
        "127.0.0.1"
    ),
    reference: Annotated[
        Path | None,
        typer.Option(help="A profile JSON for every version (default: each version's own)."),
    ] = None,
    server_url: Annotated[
        str | None, typer.Option(help="Model server base URL, for error rate and queue alerts.")
    ] = None,
    webhook: Annotated[str | None, typer.Option(help="POST alerts to this URL.")] = None,
    webhook_secret: Annotated[
        str, typer.Option(envvar="SHIPYARD_MONITOR_WEBHOOK_SECRET", help="HMAC key.")
    ] = "",
    retrain: Annotated[
        bool, typer.Option(help="Start the pipelines bound to an alert when it fires.")
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Alert threshold KEY=VALUE, as for `shipyard monitor rules`."),
    ] = None,
    once: Annotated[bool, typer.Option(help="Update once, print, and exit.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Watch a served model: drift, data quality and performance gauges, and alerts."""
    from shipyard.monitoring.alerts import alert_rules
    from shipyard.monitoring.evaluator import (
        AlertEvaluator,
        PipelineTrigger,
        ServerScraper,
        WebhookTrigger,
    )
    from shipyard.monitoring.labels import LabelStore
    from shipyard.monitoring.monitor import Monitor
    from shipyard.monitoring.profiles import Profile
    from shipyard.monitoring.service import MonitorService

    client = make_client(workspace)
    labels = None
    if not client.is_remote:
        from shipyard.store.db import engine_for

        labels = LabelStore(engine_for(client.settings.db), client.workspace)
    fixed = Profile.load(reference) if reference is not None else None
    monitor = Monitor(
        model,
        artifacts_url=client.settings.artifacts,
        workspace=client.workspace,
        window=window,
        references=(lambda _version: fixed) if fixed is not None else None,
        labels=labels,
        client=client,
    )
    triggers: list[Any] = []
    if webhook:
        triggers.append(WebhookTrigger(webhook, webhook_secret))
    if retrain:
        triggers.append(PipelineTrigger())
    scrapers = [ServerScraper(f"{server_url.rstrip('/')}/metrics", model)] if server_url else []
    service = MonitorService(
        [monitor],
        evaluator=AlertEvaluator(alert_rules(**_thresholds(set_ or [])), triggers=triggers),
        scrapers=scrapers,
        interval=interval,
        metrics_port=None if once else metrics_port,
        metrics_host=metrics_host,
        on_update=_print_snapshot,
    )
    if once:
        service.tick()
        return
    service.start()
    if service.metrics_port is not None:
        console.print(
            f"Serving gauges on http://{metrics_host}:{service.metrics_port}/metrics "
            f"(every {interval:g}s, window {window})."
        )
    try:
        service.wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()


@app.command("labels")
def labels(
    file: Annotated[Path, typer.Argument(help="request_id,label rows: .csv, .parquet, .jsonl")],
    model: ModelOption,
    workspace: WorkspaceOption = None,
) -> None:
    """Store ground-truth labels for earlier predictions (joined by request id)."""
    from shipyard.monitoring.labels import read_labels_file, store_labels

    stored = store_labels(model, read_labels_file(file), make_client(workspace))
    console.print(f"Stored {stored:,} labels for {model}.")


@app.command("report")
def report(
    model: ModelOption,
    reference: Annotated[
        str, typer.Option(help="Data file, profile .json, or 'profile' (the version's).")
    ],
    current: Annotated[
        str, typer.Option(help="Data file, or 'window' / 'window:1h' (the prediction log).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for report.html and report.json.")],
    version: VersionOption = None,
    categorical: CategoricalOption = "",
    workspace: WorkspaceOption = None,
) -> None:
    """Write a self-contained HTML drift report (and JSON) of current vs reference data."""
    from datetime import UTC, datetime, timedelta

    from shipyard.monitoring.profiles import Profile, load_profile
    from shipyard.monitoring.report import build_report
    from shipyard.monitoring.windows import feature_frame, parse_window, read_prediction_log

    client = make_client(workspace)
    meta: dict[str, Any] = {"model": model}
    ref: Any
    if reference == "profile":
        ref = load_profile(model, version=version, client=client)
        meta["reference"] = f"profile of version {version or 'latest'}"
    elif reference.endswith(".json"):
        ref = Profile.load(reference)
        meta["reference"] = Path(reference).name
    else:
        ref = _read_table(Path(reference))
        meta["reference"] = Path(reference).name
    if current == "window" or current.startswith("window:"):
        span = current.partition(":")[2] or "1h"
        by, size = parse_window(span)
        now = datetime.now(UTC)
        start = now - timedelta(seconds=size) if by == "time" else now - timedelta(days=1)
        table = read_prediction_log(client.settings.artifacts, client.workspace, model, start, now)
        if version is not None and table.num_rows:
            import pyarrow.compute as pc

            table = table.filter(pc.equal(table.column("version"), str(version)))
        if by == "count":
            table = table.slice(max(0, table.num_rows - int(size)))
        cur = feature_frame(table) if table.num_rows else None
        if cur is None or cur.empty:
            from shipyard.errors import NotFoundError

            raise NotFoundError(
                f"No prediction log rows of {model} in the last {span}.",
                hint="Send traffic to the served model, or pass --current FILE.",
            )
        meta["current"] = f"prediction log, last {span} ({table.num_rows:,} rows)"
    else:
        cur = _read_table(Path(current))
        meta["current"] = Path(current).name
    categorical_columns = _split(categorical)
    built = build_report(
        ref,
        cur,
        title=f"Drift report: {model}",
        categorical=categorical_columns if not isinstance(ref, Profile) else (),
        meta=meta,
    )
    html_path, json_path = built.save(out)
    verdict = "DRIFT" if built.drift.drifted else "no drift"
    console.print(
        f"{verdict}: {built.drift.n_drifted} of {len(built.drift.columns)} columns drifted."
    )
    console.print(f"HTML: {html_path}\nJSON: {json_path}")


def _thresholds(values: list[str]) -> dict[str, Any]:
    from shipyard.errors import InvalidArgumentError

    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgumentError(
                f"--set {item!r} is not KEY=VALUE.", hint="For example --set drift_share=0.3"
            )
        try:
            out[key.strip()] = float(value)
        except ValueError:
            out[key.strip()] = value.strip()
    return out


@app.command("rules")
def rules(
    model: ModelOption,
    kubernetes: Annotated[
        bool, typer.Option("--kubernetes", help="A PrometheusRule manifest.")
    ] = False,
    namespace: Annotated[str, typer.Option(help="Namespace of the manifest.")] = "default",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Threshold KEY=VALUE, e.g. drift_share=0.3, drift_for=10m."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Prometheus alert rules for a model (drift, errors, p99 latency, queue)."""
    from shipyard.monitoring.alerts import rules_yaml

    text = rules_yaml(model, kubernetes=kubernetes, namespace=namespace, **_thresholds(set_ or []))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        err_console.print(f"Wrote {out}")


@app.command("dashboard")
def dashboard(
    model: ModelOption,
    features: Annotated[
        str, typer.Option(help="Comma-separated features (default: the latest profile's).")
    ] = "",
    service_monitor: Annotated[
        bool, typer.Option("--service-monitor", help="Print the ServiceMonitor YAML instead.")
    ] = False,
    namespace: Annotated[str, typer.Option(help="Namespace of the ServiceMonitor.")] = "default",
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """A Grafana dashboard JSON for a model (or its ServiceMonitor YAML)."""
    from shipyard.monitoring.dashboards import grafana_dashboard
    from shipyard.monitoring.dashboards import service_monitor as make_service_monitor

    if service_monitor:
        import yaml

        text = yaml.safe_dump(make_service_monitor(model, namespace), sort_keys=False)
    else:
        names = _split(features)
        if not names:
            from shipyard.errors import ShipyardError
            from shipyard.monitoring.profiles import load_profile

            try:
                names = [
                    c
                    for c in load_profile(model, client=make_client(workspace)).columns
                    if c != "prediction"
                ]
            except ShipyardError:
                names = []
        text = json.dumps(grafana_dashboard(model, names), indent=1) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        err_console.print(f"Wrote {out}")
