"""``shipyard features stream VIEW``: run a view's Kafka stream processor in the foreground.

``register(app)`` adds the command to the ``features`` command group. The process stops
cleanly on SIGTERM or Ctrl+C (it finishes the batch, commits and flushes); killed harder,
it resumes from its last commit when started again.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from shipyard.cli._common import WorkspaceOption
from shipyard.errors import InvalidArgumentError

__all__ = ["parse_kafka_settings", "register", "stream"]


def parse_kafka_settings(pairs: list[str] | None) -> dict[str, str]:
    """``["session.timeout.ms=6000", ...]`` -> librdkafka settings."""
    settings: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidArgumentError(
                f"Kafka setting {pair!r} is not key=value.",
                hint="Write librdkafka settings like -X session.timeout.ms=6000.",
            )
        settings[key.strip()] = value.strip()
    return settings


def stream(
    view: Annotated[str, typer.Argument(help="Feature view whose KafkaSource to consume.")],
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka servers; default the view's KafkaSource.")
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Consumer group; default shipyard-features-<view>.")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="Input topic; default the source's.")] = None,
    output_topic: Annotated[
        str | None, typer.Option(help="Processed rows; default processed_features.")
    ] = None,
    dead_letter_topic: Annotated[
        str | None, typer.Option(help="Rejected events; default <topic>.dlq.")
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option(min=1, help="Stop after consuming this many messages.")
    ] = None,
    stop_when_idle: Annotated[
        float | None,
        typer.Option(min=0, help="Stop after this many seconds without a message."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Messages processed and committed together.")
    ] = 500,
    metrics_port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Serve Prometheus /metrics here.")
    ] = None,
    metrics_addr: Annotated[str, typer.Option(help="Address of the metrics server.")] = (
        "127.0.0.1"
    ),
    online_url: Annotated[
        str | None, typer.Option(help="Online store URL; default the configured one.")
    ] = None,
    consumer_setting: Annotated[
        list[str] | None,
        typer.Option("-X", "--consumer-setting", help="librdkafka consumer key=value (repeat)."),
    ] = None,
    producer_setting: Annotated[
        list[str] | None,
        typer.Option("-P", "--producer-setting", help="librdkafka producer key=value (repeat)."),
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Consume raw events, transform them, write online and offline, produce the rows."""
    from shipyard.cli._common import err_console, render_mapping
    from shipyard.features.store import FeatureStore
    from shipyard.features.streaming import StreamProcessor

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    processor = StreamProcessor(
        FeatureStore(workspace=workspace, online_url=online_url),
        view,
        bootstrap=bootstrap,
        group_id=group,
        input_topic=topic,
        output_topic=output_topic,
        dead_letter_topic=dead_letter_topic,
        batch_size=batch_size,
        consumer_config=parse_kafka_settings(consumer_setting),
        producer_config=parse_kafka_settings(producer_setting),
    )
    stop_metrics = None
    if metrics_port is not None:
        stop_metrics = processor.metrics.serve(metrics_port, metrics_addr)
    err_console.print(
        f"Streaming '{view}' from {processor.input_topic} at {processor.bootstrap} "
        f"(group {processor.group_id}) to {processor.output_topic}; Ctrl+C stops."
    )
    try:
        stats = processor.run(
            max_messages=max_messages, idle_timeout=stop_when_idle, handle_signals=True
        )
    finally:
        if stop_metrics is not None:
            stop_metrics()
    render_mapping(
        f"Stream {view}",
        {
            "consumed": stats.consumed,
            "processed": stats.processed,
            "dead_lettered": stats.dead_lettered,
            "delivered": stats.delivered,
            "delivery_failed": stats.delivery_failed,
            "batches": stats.batches,
        },
    )
    if stats.delivery_failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``stream`` to the ``shipyard features`` command group."""
    app.command("stream")(stream)
