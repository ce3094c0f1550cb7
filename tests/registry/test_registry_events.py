"""Registry events: in-process subscribers, the webhook outbox and the dispatcher."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from shipyard.errors import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PromotionRefusedError,
)
from shipyard.registry.entities import RegistryEvent
from shipyard.registry.events import (
    SIGNATURE_HEADER,
    EventBus,
    WebhookDispatcher,
    verify_signature,
)
from shipyard.registry.schema import webhook_deliveries, webhooks
from shipyard.registry.sql import SqlRegistryStore
from shipyard.store.db import engine_for, now_ms

if TYPE_CHECKING:
    from tests.registry.conftest import RegistryEnv


def closed_port_url() -> str:
    """A URL nothing listens on: a delivery to it fails at once, without leaving the host."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@pytest.fixture(autouse=True)
def _drop_webhooks(registry_env: RegistryEnv) -> Iterator[None]:
    """Dispatchers see every workspace, so each test removes its webhooks (and outbox)."""
    yield
    with engine_for(registry_env.db_url).begin() as conn:
        conn.execute(webhooks.delete().where(webhooks.c.workspace == registry_env.workspace))


def deliveries(store: SqlRegistryStore, webhook_id: str) -> list[Any]:
    with store.engine.connect() as conn:
        return conn.execute(
            sa.select(webhook_deliveries)
            .where(webhook_deliveries.c.webhook_id == webhook_id)
            .order_by(webhook_deliveries.c.id)
        ).all()


# --- in-process subscribers -----------------------------------------------------------------


class TestEventBus:
    def test_subscribers_hear_every_kind_of_change(
        self, sql_registry: SqlRegistryStore, registry_env: RegistryEnv
    ) -> None:
        seen: list[RegistryEvent] = []
        registry_env.bus.subscribe(seen.append)
        registry_env.run_metrics["weak"] = {"accuracy": 0.5}
        store = sql_registry
        store.create_registered_model("churn", description="d")
        store.create_model_version("churn", "runs:/weak/m", run_id="weak")
        store.create_model_version("churn", "s3://2")
        store.set_alias("churn", "staging", 1, actor="ana")
        store.set_alias("churn", "staging", 2, actor="bo")
        store.set_gate("churn", "champion", "accuracy > 0.9")
        with pytest.raises(PromotionRefusedError):
            store.set_alias("churn", "champion", 1, actor="cy")
        store.delete_alias("churn", "staging", actor="di")
        store.delete_model_version("churn", 2)
        store.delete_registered_model("churn")

        assert [e.type for e in seen] == [
            "registered_model_created",
            "model_version_created",
            "model_version_created",
            "alias_set",
            "alias_set",
            "promotion_refused",
            "alias_deleted",
            "model_version_deleted",
            "model_deleted",
        ]
        assert all(e.workspace == store.workspace and e.model == "churn" for e in seen)
        assert all(isinstance(e.at, datetime) and e.at.tzinfo is not None for e in seen)
        assert seen[1].payload == {"version": 1, "source": "runs:/weak/m", "run_id": "weak"}
        assert seen[4].payload == {
            "alias": "staging",
            "from_version": 1,
            "to_version": 2,
            "actor": "bo",
            "reason": "",
        }
        assert seen[5].payload == {
            "alias": "champion",
            "version": 1,
            "gate": "accuracy > 0.9",
            "failing": ["accuracy > 0.9 (was 0.5)"],
            "actor": "cy",
        }
        assert seen[6].payload["from_version"] == 2
        assert seen[7].payload == {"version": 2}

    def test_filter_and_unsubscribe(
        self, sql_registry: SqlRegistryStore, registry_env: RegistryEnv
    ) -> None:
        aliases: list[str] = []
        everything: list[str] = []
        stop = registry_env.bus.subscribe(lambda e: aliases.append(e.type), ["alias_set"])
        registry_env.bus.subscribe(lambda e: everything.append(e.type))
        sql_registry.create_registered_model("churn")
        sql_registry.create_model_version("churn", "s3://1")
        sql_registry.set_alias("churn", "staging", 1)
        stop()
        stop()  # harmless twice
        sql_registry.create_model_version("churn", "s3://2")
        sql_registry.set_alias("churn", "staging", 2)
        assert aliases == ["alias_set"]
        assert everything.count("alias_set") == 2

    def test_unknown_event_type_is_rejected(self) -> None:
        with pytest.raises(
            InvalidArgumentError,
            match=r"Unknown registry event type 'alias_moved'.*Did you mean 'alias_set'",
        ):
            EventBus().subscribe(print, ["alias_moved"])

    def test_a_failing_subscriber_is_logged_and_never_breaks_the_write(
        self,
        sql_registry: SqlRegistryStore,
        registry_env: RegistryEnv,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        def broken(event: RegistryEvent) -> None:
            raise RuntimeError("subscriber bug")

        later: list[str] = []
        registry_env.bus.subscribe(broken)
        registry_env.bus.subscribe(lambda e: later.append(e.type))
        with caplog.at_level(logging.ERROR, logger="shipyard.registry.events"):
            sql_registry.create_registered_model("churn")
        assert sql_registry.get_registered_model("churn").name == "churn"
        assert later == ["registered_model_created"]
        assert "subscriber" in caplog.text and "subscriber bug" in caplog.text

    def test_subscribers_run_after_commit(
        self, sql_registry: SqlRegistryStore, registry_env: RegistryEnv
    ) -> None:
        # Reading from another connection inside the callback sees the change: it committed.
        # (On SQLite a callback inside the write transaction would block on its lock.)
        found: list[int] = []
        registry_env.bus.subscribe(
            lambda e: found.append(
                sql_registry.get_model_version("churn", e.payload["version"]).version
            ),
            ["model_version_created"],
        )
        sql_registry.create_registered_model("churn")
        sql_registry.create_model_version("churn", "s3://1")
        assert found == [1]

    def test_a_failed_write_publishes_nothing(
        self, sql_registry: SqlRegistryStore, registry_env: RegistryEnv
    ) -> None:
        sql_registry.create_registered_model("churn")
        seen: list[RegistryEvent] = []
        registry_env.bus.subscribe(seen.append)
        with pytest.raises(ConflictError):
            sql_registry.create_registered_model("churn")
        assert seen == []


# --- webhooks and the outbox ----------------------------------------------------------------


class TestWebhooks:
    def test_create_list_delete(self, sql_registry: SqlRegistryStore) -> None:
        everything = sql_registry.create_webhook("https://ci.example.com/hooks")
        some = sql_registry.create_webhook(
            "http://127.0.0.1:9/x", events=["alias_set", "promotion_refused"], secret="s3cret"
        )
        assert everything.events == ["*"]
        assert some.events == ["alias_set", "promotion_refused"]
        assert len(everything.webhook_id) == 32 and everything.workspace == sql_registry.workspace
        assert sql_registry.list_webhooks() == [everything, some]
        sql_registry.delete_webhook(everything.webhook_id)
        assert sql_registry.list_webhooks() == [some]
        with pytest.raises(
            NotFoundError, match=f"Webhook '{everything.webhook_id}' does not exist"
        ):
            sql_registry.delete_webhook(everything.webhook_id)

    @pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/hook", "", "http://"])
    def test_webhook_url_must_be_http(self, sql_registry: SqlRegistryStore, url: str) -> None:
        with pytest.raises(
            InvalidArgumentError, match=r"Invalid webhook URL[\s\S]*http:// or https://"
        ):
            sql_registry.create_webhook(url)

    def test_webhook_event_types_are_checked(self, sql_registry: SqlRegistryStore) -> None:
        with pytest.raises(InvalidArgumentError, match="Unknown registry event type 'alias_moved'"):
            sql_registry.create_webhook("https://x.example.com", events=["alias_moved"])

    def test_webhooks_of_other_workspaces_are_invisible(
        self, sql_registry: SqlRegistryStore, registry_env: RegistryEnv
    ) -> None:
        from shipyard.store.workspaces import ensure_workspace

        other_name = registry_env.workspace + "-b"
        ensure_workspace(sql_registry.engine, other_name)
        other = sql_registry.for_workspace(other_name)
        hook = sql_registry.create_webhook(closed_port_url())
        assert other.list_webhooks() == []
        with pytest.raises(NotFoundError):
            other.delete_webhook(hook.webhook_id)
        other.create_registered_model("churn")
        assert deliveries(sql_registry, hook.webhook_id) == []

    def test_each_matching_webhook_gets_an_outbox_row_with_the_change(
        self, sql_registry: SqlRegistryStore
    ) -> None:
        everything = sql_registry.create_webhook(closed_port_url())
        aliases = sql_registry.create_webhook(closed_port_url(), events=["alias_set"])
        sql_registry.create_registered_model("churn")
        sql_registry.create_model_version("churn", "s3://1")
        change = sql_registry.set_alias("churn", "champion", 1, actor="ana")

        rows = deliveries(sql_registry, everything.webhook_id)
        assert [json.loads(r.event)["type"] for r in rows] == [
            "registered_model_created",
            "model_version_created",
            "alias_set",
        ]
        assert all(r.status == "pending" and r.attempts == 0 for r in rows)
        (alias_row,) = deliveries(sql_registry, aliases.webhook_id)
        body = json.loads(alias_row.event)
        assert body == {
            "type": "alias_set",
            "workspace": sql_registry.workspace,
            "model": "churn",
            "payload": {
                "alias": "champion",
                "from_version": None,
                "to_version": 1,
                "actor": "ana",
                "reason": "",
            },
            "at": change.at.isoformat(),
        }

    def test_refused_promotion_is_still_queued(self, sql_registry: SqlRegistryStore) -> None:
        hook = sql_registry.create_webhook(closed_port_url(), events=["promotion_refused"])
        sql_registry.create_registered_model("churn")
        sql_registry.create_model_version("churn", "s3://1")
        sql_registry.set_gate("churn", "champion", "accuracy >= 0.85")
        with pytest.raises(PromotionRefusedError):
            sql_registry.set_alias("churn", "champion", 1)
        (row,) = deliveries(sql_registry, hook.webhook_id)
        assert json.loads(row.event)["payload"]["failing"] == ["accuracy >= 0.85 (metric missing)"]

    def test_change_and_outbox_commit_together(
        self, sql_registry: SqlRegistryStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import shipyard.registry.sql as sql_module

        hook = sql_registry.create_webhook(closed_port_url())
        original = sql_module.enqueue_deliveries

        def enqueue_then_crash(conn: Any, event: RegistryEvent) -> int:
            original(conn, event)
            raise RuntimeError("crash after the outbox write")

        monkeypatch.setattr(sql_module, "enqueue_deliveries", enqueue_then_crash)
        with pytest.raises(RuntimeError, match="crash after the outbox write"):
            sql_registry.create_registered_model("churn")
        monkeypatch.undo()
        assert sql_registry.list_registered_models().items == []
        assert deliveries(sql_registry, hook.webhook_id) == []


# --- the dispatcher, against a real local HTTP server ---------------------------------------


@dataclass
class Receiver:
    """A local webhook endpoint answering with scripted statuses (then 200)."""

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    accepted: list[bytes] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                state.requests.append((dict(self.headers), body))
                status = state.statuses.pop(0) if state.statuses else 200
                if status == 200:
                    state.accepted.append(body)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/shipyard"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def deliver_until(dispatcher: WebhookDispatcher, done: Any, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    delivered = 0
    while not done():
        assert time.monotonic() < deadline, "deliveries did not finish in time"
        delivered += dispatcher.deliver_due()
        time.sleep(0.005)
    return delivered


class TestWebhookDispatcher:
    def test_retries_until_delivered_exactly_once_with_a_valid_signature(
        self, sql_registry: SqlRegistryStore, receiver: Receiver
    ) -> None:
        receiver.statuses = [500, 500]
        hook = sql_registry.create_webhook(receiver.url, events=["alias_set"], secret="s3cret")
        sql_registry.create_registered_model("churn")
        sql_registry.create_model_version("churn", "s3://1")
        sql_registry.set_alias("churn", "champion", 1, actor="ana")

        with WebhookDispatcher(sql_registry.engine, base_delay=0.01) as dispatcher:
            delivered = deliver_until(
                dispatcher, lambda: deliveries(sql_registry, hook.webhook_id)[0].status != "pending"
            )
            assert dispatcher.deliver_due() == 0
        assert delivered == 1
        assert len(receiver.requests) == 3
        assert len(receiver.accepted) == 1
        body = receiver.accepted[0]
        event = json.loads(body)
        assert event["type"] == "alias_set" and event["model"] == "churn"
        assert event["payload"]["to_version"] == 1
        assert set(event) == {"type", "workspace", "model", "payload", "at"}
        headers = receiver.requests[-1][0]
        assert headers[SIGNATURE_HEADER].startswith("sha256=")
        assert verify_signature("s3cret", body, headers[SIGNATURE_HEADER])
        assert not verify_signature("wrong", body, headers[SIGNATURE_HEADER])
        assert headers["X-Shipyard-Event"] == "alias_set"
        assert {h["X-Shipyard-Delivery"] for h, _ in receiver.requests} == {
            headers["X-Shipyard-Delivery"]
        }
        (row,) = deliveries(sql_registry, hook.webhook_id)
        assert (row.status, row.attempts, row.last_error) == ("delivered", 3, "")

    def test_unsigned_without_secret(
        self, sql_registry: SqlRegistryStore, receiver: Receiver
    ) -> None:
        sql_registry.create_webhook(receiver.url)
        sql_registry.create_registered_model("churn")
        with WebhookDispatcher(sql_registry.engine) as dispatcher:
            deliver_until(dispatcher, lambda: receiver.accepted)
        assert SIGNATURE_HEADER not in receiver.requests[0][0]

    def test_failure_backs_off_exponentially(
        self, sql_registry: SqlRegistryStore, receiver: Receiver
    ) -> None:
        receiver.statuses = [503, 503]
        hook = sql_registry.create_webhook(receiver.url)
        sql_registry.create_registered_model("churn")
        with WebhookDispatcher(sql_registry.engine, base_delay=10.0) as dispatcher:
            before = now_ms()
            assert dispatcher.deliver_due() == 0
            (row,) = deliveries(sql_registry, hook.webhook_id)
            assert (row.status, row.attempts) == ("pending", 1)
            assert row.last_error.startswith("HTTP 503")
            # Equal jitter: between half and all of base_delay * 2**(attempts - 1).
            assert 5_000 <= row.next_attempt_at - before <= 10_500
            assert dispatcher.deliver_due() == 0  # not due yet: no new request
            assert len(receiver.requests) == 1
            assert 20_000 <= dispatcher._backoff_ms(2) * 2 <= 40_000

    def test_gives_up_after_max_attempts(self, sql_registry: SqlRegistryStore) -> None:
        hook = sql_registry.create_webhook(closed_port_url())
        sql_registry.create_registered_model("churn")
        with WebhookDispatcher(sql_registry.engine, max_attempts=3, base_delay=0.001) as dispatcher:
            deliver_until(
                dispatcher, lambda: deliveries(sql_registry, hook.webhook_id)[0].status == "failed"
            )
        (row,) = deliveries(sql_registry, hook.webhook_id)
        assert row.attempts == 3
        assert row.last_error.startswith("ConnectError")

    def test_concurrent_dispatchers_deliver_each_event_once(
        self, sql_registry: SqlRegistryStore, receiver: Receiver
    ) -> None:
        hook = sql_registry.create_webhook(receiver.url)
        sql_registry.create_registered_model("churn")
        for i in range(15):
            sql_registry.create_model_version("churn", f"s3://{i}")
        dispatchers = [WebhookDispatcher(sql_registry.engine, batch_size=4) for _ in range(3)]

        def pending() -> bool:
            return any(r.status != "delivered" for r in deliveries(sql_registry, hook.webhook_id))

        def work(dispatcher: WebhookDispatcher) -> None:
            deadline = time.monotonic() + 15
            while pending() and time.monotonic() < deadline:
                dispatcher.deliver_due()

        threads = [threading.Thread(target=work, args=(d,)) for d in dispatchers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for d in dispatchers:
            d.close()
        ids = [h["X-Shipyard-Delivery"] for h, _ in receiver.requests]
        assert len(ids) == 16 and len(set(ids)) == 16

    def test_run_forever_until_stopped(
        self, sql_registry: SqlRegistryStore, receiver: Receiver
    ) -> None:
        sql_registry.create_webhook(receiver.url)
        stop = threading.Event()
        with WebhookDispatcher(sql_registry.engine) as dispatcher:
            thread = threading.Thread(target=dispatcher.run_forever, args=(stop, 0.01))
            thread.start()
            sql_registry.create_registered_model("churn")
            deadline = time.monotonic() + 10
            while not receiver.accepted and time.monotonic() < deadline:
                time.sleep(0.01)
            stop.set()
            thread.join(timeout=5)
        assert not thread.is_alive()
        assert json.loads(receiver.accepted[0])["type"] == "registered_model_created"
