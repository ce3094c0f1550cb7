"""The audit log: append-only, hash-chained records in the metadata DB, also emitted as JSON
lines through structlog (logger ``shipyard.audit``).

Each record stores ``prev_hash``, the sha256 of the previous record's canonical JSON, and
``hash``, the sha256 of its own (``json.dumps`` with sorted keys, ``(',', ':')``
separators, ``ensure_ascii=False``; every field but ``hash``, ``details`` as an object).
The first record's ``prev_hash`` is 64 zeros. Appends are serialized (SQLite's
``BEGIN IMMEDIATE``, a PostgreSQL advisory lock) so the chain stays linear under
concurrency, and ``audit_head`` remembers the newest record so that cutting records off
the end, or appending behind the log's back, is noticed too.

:func:`verify_chain` finds modified, deleted, inserted and reordered records and names
them by ``seq``. Someone able to rewrite the whole table and the head can forge a
consistent chain; anchor :attr:`VerifyReport.head_hash` somewhere else (a ticket, a
notary, object storage with retention) to rule that out.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal, TextIO

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from shipyard.errors import InvalidArgumentError
from shipyard.security._db import serialize
from shipyard.security.schema import audit_head, audit_log
from shipyard.store.db import now_ms

GENESIS_HASH = "0" * 64
EXPORT_FORMATS = ("jsonl", "csv")

IssueKind = Literal["modified", "deleted", "inserted", "reordered"]

_LOCK = "shipyard.audit"
_FIELDS = (
    "seq",
    "at",
    "actor",
    "action",
    "resource_type",
    "resource_id",
    "workspace",
    "details",
    "prev_hash",
    "hash",
)


def _jsonable(value: Any) -> Any:
    """JSON form of the non-JSON values payloads commonly hold (numpy, pandas, datetimes)."""
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # pandas DataFrame
        return value.to_dict(orient="records")
    if hasattr(value, "tolist"):  # numpy arrays and scalars, pandas Series
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"Cannot put a {type(value).__name__} into an audit record.")


def canonical_json(value: Any) -> str:
    """The canonical JSON text audit hashes are computed over."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def payload_sha256(payload: Any) -> str:
    """sha256 of the canonical JSON of ``payload`` (e.g. a prediction's feature payload)."""
    return _sha256(canonical_json(payload))


@dataclass(frozen=True)
class AuditRecord:
    """One audit record; ``at`` is epoch ms, ``actor`` a principal id or ``system``."""

    seq: int
    at: int
    actor: str
    action: str
    resource_type: str
    resource_id: str
    workspace: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def canonical(self) -> str:
        """The canonical JSON of every field except ``hash``: what ``hash`` is taken of."""
        body = self.to_dict()
        del body["hash"]
        return canonical_json(body)

    def computed_hash(self) -> str:
        return _sha256(self.canonical())


@dataclass(frozen=True)
class AuditIssue:
    seq: int
    kind: IssueKind
    message: str


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify_chain`.

    Attributes:
        checked: Records read.
        issues: One per affected ``seq``, in ``seq`` order.
        head_seq, head_hash: The newest record; anchor these elsewhere to detect a
            wholesale rewrite.
    """

    checked: int
    issues: tuple[AuditIssue, ...] = ()
    head_seq: int = 0
    head_hash: str = GENESIS_HASH

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def bad_seqs(self) -> list[int]:
        return [i.seq for i in self.issues]

    def issue_for(self, seq: int) -> AuditIssue | None:
        return next((i for i in self.issues if i.seq == seq), None)

    def __str__(self) -> str:
        if self.ok:
            return f"Audit log intact: {self.checked} records, head {self.head_hash[:12]}."
        lines = [f"Audit log tampered: {len(self.issues)} problem(s) in {self.checked} records."]
        lines += [f"  seq {i.seq}: {i.kind}: {i.message}" for i in self.issues]
        return "\n".join(lines)


def _record(row: Any) -> AuditRecord:
    try:
        details = json.loads(row.details)
    except ValueError:
        details = {"__unparsable__": row.details}
    return AuditRecord(
        seq=int(row.seq),
        at=int(row.at),
        actor=row.actor,
        action=row.action,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        workspace=row.workspace,
        details=details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _clean(text: str) -> str:
    # Lone surrogates (possible from JSON input) cannot be stored in PostgreSQL.
    return text.encode("utf-8", "replace").decode("utf-8")


def _render(event: Any, **_ignored: Any) -> str:
    return canonical_json(event)


_emitter = structlog.wrap_logger(
    logging.getLogger("shipyard.audit"),
    processors=[structlog.processors.JSONRenderer(serializer=_render)],
    wrapper_class=structlog.BoundLogger,
)


class AuditLog:
    """Appends audit records and reads them back.

    Example::

        audit = AuditLog(engine_for(settings.db))
        audit.append("user:alice", "model.alias.set", resource_type="aliases",
                     resource_id="fraud@prod", workspace="default",
                     details={"before": 3, "after": 4})
        verify_chain(engine).ok

    Args:
        engine: The metadata DB.
        emit: Also emit every record as a JSON line on the ``shipyard.audit`` logger.
    """

    def __init__(self, engine: Engine, *, emit: bool = True) -> None:
        self._engine = engine
        self._emit = emit

    def __repr__(self) -> str:
        return f"AuditLog({self._engine.url.render_as_string(hide_password=True)!r})"

    def append(
        self,
        actor: str,
        action: str,
        *,
        resource_type: str = "",
        resource_id: str = "",
        workspace: str = "",
        details: Mapping[str, Any] | None = None,
        conn: Connection | None = None,
    ) -> AuditRecord:
        """Append one record and return it.

        Args:
            actor: Principal id (``user:alice``, ``sa:ci``) or ``system``/``anonymous``.
            action: Dotted verb, e.g. ``login.failure``, ``model.alias.set``.
            details: JSON-able facts (before/after, reasons); never secrets.
            conn: Write inside this open transaction, so the record commits or rolls back
                with the change it describes. The JSON line is then emitted at once,
                before the caller's commit.
        """
        if conn is not None:
            record = self._append(
                conn, actor, action, resource_type, resource_id, workspace, details
            )
        else:
            with self._engine.begin() as own:
                record = self._append(
                    own, actor, action, resource_type, resource_id, workspace, details
                )
        if self._emit:
            _emitter.info("audit", **record.to_dict())
        return record

    def _append(
        self,
        conn: Connection,
        actor: str,
        action: str,
        resource_type: str,
        resource_id: str,
        workspace: str,
        details: Mapping[str, Any] | None,
    ) -> AuditRecord:
        details_text = _clean(canonical_json(dict(details or {})))
        serialize(conn, _LOCK)
        head = conn.execute(
            sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).first()
        if head is None:
            # No head yet (fresh log): continue after whatever is there.
            last = conn.execute(
                sa.select(audit_log.c.seq, audit_log.c.hash)
                .order_by(audit_log.c.seq.desc())
                .limit(1)
            ).first()
            prev_seq, prev_hash = (int(last.seq), last.hash) if last else (0, GENESIS_HASH)
        else:
            prev_seq, prev_hash = int(head.seq), head.hash
        record = AuditRecord(
            seq=prev_seq + 1,
            at=now_ms(),
            actor=_clean(actor),
            action=_clean(action),
            resource_type=_clean(resource_type),
            resource_id=_clean(resource_id),
            workspace=_clean(workspace),
            details=json.loads(details_text),
            prev_hash=prev_hash,
            hash="",
        )
        record = replace(record, hash=record.computed_hash())
        row = record.to_dict() | {"details": details_text}
        conn.execute(audit_log.insert().values(**row))
        if head is None:
            conn.execute(audit_head.insert().values(id=1, seq=record.seq, hash=record.hash))
        else:
            conn.execute(
                audit_head.update()
                .where(audit_head.c.id == 1)
                .values(seq=record.seq, hash=record.hash)
            )
        return record

    def records(
        self, *, since: int | datetime | None = None, until: int | datetime | None = None
    ) -> Iterator[AuditRecord]:
        """Records in ``seq`` order, optionally only those with ``since <= at < until``."""
        return iter_records(self._engine, since=since, until=until)

    def verify(self) -> VerifyReport:
        return verify_chain(self._engine)

    def export(
        self,
        out: TextIO,
        *,
        since: int | datetime | None = None,
        until: int | datetime | None = None,
        format: str = "jsonl",
    ) -> int:
        return export(self._engine, out, since=since, until=until, format=format)

    # Helpers for the records every component writes.

    def log_login(
        self,
        username: str,
        success: bool,
        *,
        method: str = "password",
        client_ip: str | None = None,
        reason: str = "",
    ) -> AuditRecord:
        """A login attempt (``login.success`` / ``login.failure``); never the password."""
        details: dict[str, Any] = {"method": method, "client_ip": client_ip}
        if reason:
            details["reason"] = reason
        actor = f"user:{username}" if method == "password" else f"sa:{username}"
        return self.append(
            actor,
            "login.success" if success else "login.failure",
            resource_type="users",
            resource_id=username if method == "password" else actor,
            details=details,
        )

    def log_prediction(
        self,
        actor: str,
        model: str,
        version: int | str,
        features: Any,
        prediction: Any,
        *,
        workspace: str = "",
    ) -> AuditRecord:
        """A prediction: who asked which model version; the features only as the sha256 of
        their canonical JSON (see :func:`payload_sha256`), so no raw data is kept."""
        return self.append(
            actor,
            "prediction",
            resource_type="predictions",
            resource_id=f"{model}/{version}",
            workspace=workspace,
            details={
                "model": model,
                "version": str(version),
                "features_sha256": payload_sha256(features),
                "prediction": json.loads(canonical_json(prediction)),
            },
        )

    def log_model_update(
        self,
        actor: str,
        model: str,
        before: Any,
        after: Any,
        *,
        action: str = "model.update",
        workspace: str = "",
        reason: str = "",
    ) -> AuditRecord:
        """A registry change (alias move, promotion, deletion) with its before/after."""
        details: dict[str, Any] = {"before": before, "after": after}
        if reason:
            details["reason"] = reason
        return self.append(
            actor,
            action,
            resource_type="models",
            resource_id=model,
            workspace=workspace,
            details=details,
        )


def _ms(value: int | datetime | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    return int(value.timestamp() * 1000)


def iter_records(
    engine: Engine, *, since: int | datetime | None = None, until: int | datetime | None = None
) -> Iterator[AuditRecord]:
    """Stream records in ``seq`` order (``since``/``until``: epoch ms or aware datetimes)."""
    query = sa.select(audit_log).order_by(audit_log.c.seq)
    if (start := _ms(since)) is not None:
        query = query.where(audit_log.c.at >= start)
    if (end := _ms(until)) is not None:
        query = query.where(audit_log.c.at < end)
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=1000).execute(query):
            yield _record(row)


def export_lines(
    engine: Engine,
    *,
    since: int | datetime | None = None,
    until: int | datetime | None = None,
    format: str = "jsonl",
) -> Iterator[str]:
    """The export as lines of text, each ending in a newline (a CSV header first), so a
    server can stream it; see :func:`export`."""
    if format not in EXPORT_FORMATS:
        raise InvalidArgumentError(
            f"Unknown export format {format!r}. Supported: {', '.join(EXPORT_FORMATS)}."
        )
    return _export_lines(engine, since, until, format)


class _LineBuffer:
    """A file-like sink for csv.writer that hands back what was written."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def take(self) -> str:
        text, self.text = self.text, ""
        return text


def _export_lines(
    engine: Engine,
    since: int | datetime | None,
    until: int | datetime | None,
    format: str,
) -> Iterator[str]:
    buffer = _LineBuffer()
    writer = csv.writer(buffer) if format == "csv" else None
    if writer is not None:
        writer.writerow(_FIELDS)
        yield buffer.take()
    for record in iter_records(engine, since=since, until=until):
        body = record.to_dict()
        if writer is None:
            yield canonical_json(body) + "\n"
        else:
            writer.writerow([canonical_json(v) if k == "details" else v for k, v in body.items()])
            yield buffer.take()


def export(
    engine: Engine,
    out: TextIO,
    *,
    since: int | datetime | None = None,
    until: int | datetime | None = None,
    format: str = "jsonl",
) -> int:
    """Write records to ``out`` as JSON lines or CSV (``details`` as a JSON string);
    returns how many were written."""
    count = -1 if format == "csv" else 0  # the CSV header is not a record
    for line in export_lines(engine, since=since, until=until, format=format):
        out.write(line)
        count += 1
    return max(count, 0)


def _hash_at(record: AuditRecord, seq: int) -> str:
    return replace(record, seq=seq).computed_hash()


def verify_chain(engine: Engine) -> VerifyReport:
    """Check every record's hash, the links between them and the head.

    Each problem is reported once, on the ``seq`` it concerns:

    - ``modified``: the content no longer matches its hash, or its hash was recomputed
      (the next record still remembers the old one);
    - ``deleted``: a ``seq`` is missing, in the middle or cut off the end;
    - ``inserted``: a record that was not written through the log (it forks the chain,
      or lies beyond the head);
    - ``reordered``: the record is intact but sits at another ``seq`` than it was written
      at (swapped or renumbered).
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # One snapshot for the head and the records, so appends made while we read
            # are not mistaken for tampering (SQLite's transaction is a snapshot already).
            conn.execution_options(isolation_level="REPEATABLE READ")
        head = conn.execute(
            sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).first()
        rows = conn.execution_options(yield_per=1000).execute(
            sa.select(audit_log).order_by(audit_log.c.seq)
        )
        records = [_record(row) for row in rows]
    issues: dict[int, AuditIssue] = {}

    def flag(seq: int, kind: IssueKind, message: str, *, override: bool = False) -> None:
        if override or seq not in issues:
            issues[seq] = AuditIssue(seq, kind, message)

    by_hash: dict[str, AuditRecord] = {}
    children: dict[str, list[AuditRecord]] = defaultdict(list)
    for r in records:
        by_hash.setdefault(r.hash, r)
        children[r.prev_hash].append(r)

    # Where each record sits in the chain its links describe (independent of the seq
    # column): one after its parent, or its own seq when the parent is gone.
    chain_seq: dict[int, int] = {}
    for r in records:
        path: list[AuditRecord] = []
        on_path: set[int] = set()
        cur: AuditRecord | None = r
        while cur is not None and cur.seq not in chain_seq:
            if cur.seq in on_path:  # a forged cycle: trust the seq column
                chain_seq[cur.seq] = cur.seq
                break
            path.append(cur)
            on_path.add(cur.seq)
            parent = by_hash.get(cur.prev_hash) if cur.prev_hash != GENESIS_HASH else None
            if parent is None or parent is cur:
                chain_seq[cur.seq] = 1 if cur.prev_hash == GENESIS_HASH else cur.seq
                break
            cur = parent
        for node in reversed(path):
            if node.seq not in chain_seq:
                chain_seq[node.seq] = chain_seq[by_hash[node.prev_hash].seq] + 1

    # 1. Contents.
    for r in records:
        if r.computed_hash() == r.hash:
            continue
        written_at = chain_seq[r.seq]
        if written_at != r.seq and _hash_at(r, written_at) == r.hash:
            flag(r.seq, "reordered", f"the record was written as seq {written_at}")
        else:
            flag(r.seq, "modified", "its content does not match its hash")

    # 2. Forks: two records claim the same predecessor; the one nothing follows is the
    # stranger (the genuine one has successors, or is the head).
    for siblings in children.values():
        if len(siblings) < 2:
            continue
        genuine = [
            s
            for s in siblings
            if children.get(s.hash) or (head is not None and s.hash == head.hash)
        ]
        for s in siblings:
            if genuine and s not in genuine:
                flag(
                    s.seq,
                    "inserted",
                    f"it claims the same predecessor as seq {genuine[0].seq}",
                    override=True,
                )

    # 3. Links and gaps, in seq order.
    prev: AuditRecord | None = None
    for r in records:
        expected_seq = prev.seq + 1 if prev else 1
        if r.seq > expected_seq:
            for missing in range(expected_seq, r.seq):
                flag(missing, "deleted", "the record is missing")
        elif r.prev_hash != (prev.hash if prev else GENESIS_HASH) and not (
            r.seq in issues or (prev is not None and prev.seq in issues)
        ):
            parent = by_hash.get(r.prev_hash)
            if parent is None and prev is not None:
                flag(
                    prev.seq,
                    "modified",
                    f"its hash was recomputed: seq {r.seq} recorded a different one",
                )
            elif parent is None:
                flag(r.seq, "modified", "its prev_hash does not match the start of the chain")
            else:
                flag(r.seq, "reordered", f"it follows seq {parent.seq} in the chain")
        prev = r

    # 4. The head: records cut off the end, or appended behind the log's back.
    last = records[-1] if records else None
    if head is not None:
        head_seq = int(head.seq)
        head_record = by_hash.get(head.hash)
        # The genuine chain is what the head record descends from; anything else past the
        # head's seq was not written by the log.
        genuine: set[int] = set()
        node = head_record
        while node is not None and node.seq not in genuine:
            genuine.add(node.seq)
            node = by_hash.get(node.prev_hash)
        for r in records:
            if r.seq > head_seq and r.seq not in genuine:
                flag(
                    r.seq,
                    "inserted",
                    f"it lies beyond the head (seq {head_seq}) and was not written by the log",
                    override=True,
                )
        if head_record is None:
            last_seq = last.seq if last else 0
            for missing in range(last_seq + 1, head_seq + 1):
                flag(missing, "deleted", "the record is missing from the end of the log")
            if last_seq >= head_seq:
                flag(head_seq, "modified", "its hash differs from the one the head recorded")
    elif records:
        flag(records[0].seq, "inserted", "the log has records but no head")

    ordered = tuple(issues[s] for s in sorted(issues))
    return VerifyReport(
        checked=len(records),
        issues=ordered,
        head_seq=last.seq if last else 0,
        head_hash=last.hash if last else GENESIS_HASH,
    )
