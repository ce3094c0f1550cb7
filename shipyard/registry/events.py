"""Registry events: their types, the in-process EventBus, and webhooks through an outbox.

A registry write and the ``webhook_deliveries`` rows for every matching webhook commit in
one transaction (the outbox pattern), so an acknowledged change never loses its webhook
calls. :class:`WebhookDispatcher` then POSTs due rows with retries and exponential backoff.
In-process subscribers are called after the commit and can never break the write.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from shipyard.errors import InvalidArgumentError, did_you_mean
from shipyard.registry.entities import RegistryEvent
from shipyard.registry.schema import webhook_deliveries, webhooks
from shipyard.store.db import now_ms

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "SIGNATURE_HEADER",
    "EventBus",
    "EventType",
    "WebhookDispatcher",
    "sign_body",
    "verify_signature",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Shipyard-Signature"
ALL_EVENTS = "*"


class EventType(StrEnum):
    """Every kind of registry event; the value is the ``type`` subscribers and webhooks see."""

    REGISTERED_MODEL_CREATED = "registered_model_created"
    MODEL_VERSION_CREATED = "model_version_created"
    ALIAS_SET = "alias_set"
    ALIAS_DELETED = "alias_deleted"
    PROMOTION_REFUSED = "promotion_refused"
    MODEL_DELETED = "model_deleted"
    MODEL_VERSION_DELETED = "model_version_deleted"


Subscriber = Callable[[RegistryEvent], None]


def check_event_types(event_types: Iterable[str] | None) -> list[str]:
    """The event types, validated and sorted; ``None``, ``[]`` or ``["*"]`` mean all."""
    if event_types is None or isinstance(event_types, str):
        event_types = [event_types] if isinstance(event_types, str) else []
    chosen = sorted(set(event_types))
    if not chosen or ALL_EVENTS in chosen:
        return [ALL_EVENTS]
    known = [t.value for t in EventType]
    for name in chosen:
        if name not in known:
            raise InvalidArgumentError(
                f"Unknown registry event type '{name}'. Known: {', '.join(known)}, or '*' "
                f"for all.{did_you_mean(name, known)}"
            )
    return chosen


class EventBus:
    """In-process publish/subscribe of registry events.

    Pass one to :class:`~shipyard.registry.sql.SqlRegistryStore` (``events=bus``); callbacks
    run in the writing thread right after the change commits. A callback that raises is
    logged and skipped.

    Example::

        bus = EventBus()
        stop = bus.subscribe(print, ["alias_set"])
        store = SqlRegistryStore(engine, events=bus)
        ...
        stop()
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[Subscriber, frozenset[str] | None]] = []

    def subscribe(
        self, callback: Subscriber, event_types: Iterable[str] | None = None
    ) -> Callable[[], None]:
        """Call ``callback(event)`` for each event of ``event_types`` (all when None).

        Returns:
            A function that unsubscribes; calling it twice is harmless.

        Raises:
            InvalidArgumentError: an event type is unknown.
        """
        types = check_event_types(event_types)
        entry = (callback, None if types == [ALL_EVENTS] else frozenset(types))
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return unsubscribe

    def publish(self, event: RegistryEvent) -> None:
        """Deliver ``event`` to every matching subscriber; failures are logged, not raised."""
        with self._lock:
            subscribers = list(self._subscribers)
        for callback, types in subscribers:
            if types is not None and event.type not in types:
                continue
            try:
                callback(event)
            except Exception:
                logger.exception("Registry event subscriber %r failed on %s", callback, event.type)


# --- webhooks: validation, outbox rows, signatures -----------------------------------------


def check_webhook_url(url: str) -> str:
    """Return ``url`` when it is an absolute http(s) URL, else raise InvalidArgumentError."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(
            f"Invalid webhook URL {url!r}.",
            hint="Use an absolute http:// or https:// URL, e.g. https://ci.example.com/hooks.",
        )
    return url


def event_body(event: RegistryEvent) -> str:
    """The JSON document POSTed to webhooks: type, workspace, model, payload, at."""
    return json.dumps(
        {
            "type": event.type,
            "workspace": event.workspace,
            "model": event.model,
            "payload": event.payload,
            "at": event.at.isoformat(),
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def enqueue_deliveries(conn: Connection, event: RegistryEvent) -> int:
    """Write one outbox row per webhook of the event's workspace that wants it.

    Called inside the transaction of the change itself; returns the number of rows.
    """
    rows = conn.execute(
        sa.select(webhooks.c.webhook_id, webhooks.c.events).where(
            webhooks.c.workspace == event.workspace
        )
    ).all()
    wanted = [r.webhook_id for r in rows if _wants(r.events, event.type)]
    if wanted:
        body = event_body(event)
        due = now_ms()
        conn.execute(
            webhook_deliveries.insert(),
            [{"webhook_id": w, "event": body, "next_attempt_at": due} for w in wanted],
        )
    return len(wanted)


def _wants(events: str, event_type: str) -> bool:
    return events == ALL_EVENTS or event_type in events.split(",")


def sign_body(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Check a received ``X-Shipyard-Signature`` header, in constant time."""
    return header is not None and hmac.compare_digest(sign_body(secret, body), header)


# --- the dispatcher ------------------------------------------------------------------------

PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"


@dataclass(frozen=True)
class _Claim:
    id: int
    url: str
    secret: str
    body: str
    attempts: int


class WebhookDispatcher:
    """Delivers the webhook outbox: claim due rows, POST them, record the outcome.

    Safe to run in several threads or processes: a row is claimed with a compare-and-set
    update that leases it for ``lease`` seconds, so a crashed dispatcher's rows come back.
    Delivery is at least once; receivers can de-duplicate on ``X-Shipyard-Delivery``.

    Example::

        dispatcher = WebhookDispatcher(engine_for("sqlite:///shipyard.db"))
        stop = threading.Event()
        threading.Thread(target=dispatcher.run_forever, args=(stop,), daemon=True).start()

    Args:
        engine: the metadata database holding the outbox.
        client: the httpx client to POST with (one is created and owned when None).
        max_attempts: a delivery is marked ``failed`` after this many failed attempts.
        base_delay: seconds before the first retry; doubles each attempt, with jitter.
        max_delay: upper bound of one backoff delay, in seconds.
        lease: seconds a claimed row stays invisible to other dispatchers.
        batch_size: rows claimed per :meth:`deliver_due` call.
        timeout: HTTP timeout, in seconds, of the client created when ``client`` is None.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        client: httpx.Client | None = None,
        max_attempts: int = 8,
        base_delay: float = 1.0,
        max_delay: float = 3600.0,
        lease: float = 60.0,
        batch_size: int = 100,
        timeout: float = 10.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        import httpx

        self.engine = engine
        self._owns_client = client is None
        self.client = client if client is not None else httpx.Client(timeout=timeout)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease = lease
        self.batch_size = batch_size
        self._random = random.Random()

    def __repr__(self) -> str:
        from shipyard.store.db import mask_url

        return f"WebhookDispatcher({mask_url(str(self.engine.url))})"

    def __enter__(self) -> WebhookDispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client if the dispatcher created it."""
        if self._owns_client:
            self.client.close()

    def deliver_due(self) -> int:
        """Attempt every due delivery once.

        Returns:
            How many were delivered (answered with a 2xx status) by this call.
        """
        delivered = 0
        for claim in self._claim():
            error = self._post(claim)
            self._record(claim, error)
            delivered += error is None
        return delivered

    def run_forever(self, stop_event: threading.Event, interval: float = 1.0) -> None:
        """Deliver until ``stop_event`` is set, polling every ``interval`` seconds.

        Meant as a background thread's target; errors are logged and the loop goes on.
        """
        while not stop_event.is_set():
            try:
                busy = self.deliver_due() >= self.batch_size
            except Exception:
                logger.exception("Webhook delivery round failed")
                busy = False
            if not busy:
                stop_event.wait(interval)

    def _claim(self) -> list[_Claim]:
        now = now_ms()
        d, w = webhook_deliveries.c, webhooks.c
        query = (
            sa.select(d.id, d.event, d.attempts, d.status, d.next_attempt_at, w.url, w.secret)
            .join(webhooks, w.webhook_id == d.webhook_id)
            .where(d.status.in_([PENDING, SENDING]), d.next_attempt_at <= now)
            .order_by(d.next_attempt_at, d.id)
            .limit(self.batch_size)
        )
        claims = []
        with self.engine.begin() as conn:
            for row in conn.execute(query).all():
                # Compare-and-set: only one dispatcher wins a row; the others skip it.
                won = conn.execute(
                    webhook_deliveries.update()
                    .where(
                        d.id == row.id,
                        d.status == row.status,
                        d.next_attempt_at == row.next_attempt_at,
                    )
                    .values(status=SENDING, next_attempt_at=now + int(self.lease * 1000))
                ).rowcount
                if won == 1:
                    claims.append(_Claim(row.id, row.url, row.secret, row.event, row.attempts))
        return claims

    def _post(self, claim: _Claim) -> str | None:
        import httpx

        body = claim.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "shipyard-webhooks",
            "X-Shipyard-Event": str(json.loads(claim.body).get("type", "")),
            "X-Shipyard-Delivery": str(claim.id),
        }
        if claim.secret:
            headers[SIGNATURE_HEADER] = sign_body(claim.secret, body)
        try:
            response = self.client.post(claim.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"

    def _record(self, claim: _Claim, error: str | None) -> None:
        attempts = claim.attempts + 1
        values: dict[str, Any] = {"attempts": attempts}
        if error is None:
            values.update(status=DELIVERED, last_error="")
        elif attempts >= self.max_attempts:
            values.update(status=FAILED, last_error=error)
            logger.warning(
                "Webhook delivery %s to %s failed for good: %s", claim.id, claim.url, error
            )
        else:
            values.update(
                status=PENDING,
                last_error=error,
                next_attempt_at=now_ms() + self._backoff_ms(attempts),
            )
        with self.engine.begin() as conn:
            conn.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.id == claim.id)
                .values(**values)
            )

    def _backoff_ms(self, attempts: int) -> int:
        # "Equal jitter": half the exponential delay is fixed, half random, so retries of
        # many deliveries that failed together spread out instead of arriving in lockstep.
        delay = min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
        return int(1000 * (delay / 2 + self._random.uniform(0, delay / 2)))
