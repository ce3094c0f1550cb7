"""``shipyard serve models:/name@alias``: the model server."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    models: Annotated[
        list[str],
        typer.Argument(help="Models to serve: models:/<name>@<alias> or models:/<name>/<n>."),
    ],
    host: Annotated[str, typer.Option(help="Bind address; off loopback, auth is on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="HTTP port.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    max_batch_size: Annotated[
        int, typer.Option(min=1, max=65536, help="Most rows per model call.")
    ] = 64,
    max_latency_ms: Annotated[
        float,
        typer.Option(min=0, help="Longest a forming batch keeps collecting arriving requests."),
    ] = 2.0,
    max_queue: Annotated[
        int, typer.Option(min=1, help="Requests waiting per model before answering 503.")
    ] = 256,
    log_sample: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of requests in the prediction log (0: off)."),
    ] = 1.0,
    log_roll_rows: Annotated[
        int, typer.Option(min=1, help="Publish a prediction log file after this many rows.")
    ] = 100_000,
    log_roll_seconds: Annotated[
        float, typer.Option(min=0.1, help="... or after this many seconds.")
    ] = 300.0,
    log_kafka_topic: Annotated[
        str | None, typer.Option(help="Also send logged predictions to this Kafka topic.")
    ] = None,
    log_kafka_bootstrap: Annotated[
        str | None, typer.Option(help="Kafka brokers for --log-kafka-topic (host:port).")
    ] = None,
    shadow: Annotated[
        list[str] | None,
        typer.Option(help="Mirror traffic to this URI (e.g. models:/fraud@challenger)."),
    ] = None,
    canary: Annotated[
        list[str] | None,
        typer.Option(help="Send a share of traffic to URI=PERCENT (models:/fraud@canary=10)."),
    ] = None,
    poll_seconds: Annotated[
        float, typer.Option(min=0, help="Re-resolve aliases this often (0: never).")
    ] = 10.0,
    audit_predictions: Annotated[
        bool, typer.Option(help="Write an audit record for every prediction.")
    ] = False,
    grpc_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Also serve OIP V2 over gRPC.")
    ] = None,
    workspace: Annotated[
        str | None, typer.Option("--workspace", "-w", help="Registry workspace.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve registered models over Open Inference Protocol V2 (/v2) and POST /predict.

    Example: shipyard serve models:/fraud@champion --canary models:/fraud@challenger=10
    """
    from shipyard.config import load_settings
    from shipyard.serving.runner import ServeConfig
    from shipyard.serving.runner import serve as run

    overrides: dict[str, object] = {"host": host, "port": port}
    if workspace:
        overrides["workspace"] = workspace
    settings = load_settings(**overrides)
    config = ServeConfig(
        models=list(models),
        shadows=list(shadow or []),
        canaries=list(canary or []),
        options={
            "max_batch_size": max_batch_size,
            "max_latency_ms": max_latency_ms,
            "max_queue": max_queue,
            "log_sample": log_sample,
            "log_roll_rows": log_roll_rows,
            "log_roll_seconds": log_roll_seconds,
            "poll_seconds": poll_seconds,
            "audit_predictions": audit_predictions,
            "log_kafka_topic": log_kafka_topic,
            "log_kafka_bootstrap": log_kafka_bootstrap,
        },
        grpc_port=grpc_port,
    )
    run(config, settings, workers=workers, log_level=log_level)
