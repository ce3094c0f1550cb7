"""The hash-chained audit log: appends, JSON lines, export, and tamper detection."""

from __future__ import annotations

import csv
import io
import json
import logging
import multiprocessing
import threading
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from security_helpers import append_many
from sqlalchemy.engine import Engine

from shipyard.errors import InvalidArgumentError
from shipyard.security.audit import (
    GENESIS_HASH,
    AuditLog,
    AuditRecord,
    canonical_json,
    export,
    iter_records,
    payload_sha256,
    verify_chain,
)
from shipyard.security.schema import audit_head, audit_log

N = 10


@pytest.fixture
def audit(engine: Engine) -> AuditLog:
    log = AuditLog(engine, emit=False)
    for i in range(1, N + 1):
        log.append(
            f"user:u{i}",
            "model.alias.set",
            resource_type="aliases",
            resource_id=f"fraud@prod-{i}",
            workspace="default",
            details={"before": i - 1, "after": i, "note": "ünïcode ✓"},
        )
    return log


def records(engine: Engine) -> dict[int, AuditRecord]:
    return {r.seq: r for r in iter_records(engine)}


def write(engine: Engine, record: AuditRecord) -> None:
    row = record.to_dict() | {"details": canonical_json(record.details)}
    with engine.begin() as conn:
        conn.execute(audit_log.insert().values(**row))


def set_seq(engine: Engine, old: int, new: int) -> None:
    with engine.begin() as conn:
        conn.execute(audit_log.update().where(audit_log.c.seq == old).values(seq=new))


def forged(prev: AuditRecord, seq: int, **changes: Any) -> AuditRecord:
    record = AuditRecord(
        seq=seq,
        at=prev.at + 1,
        actor="user:mallory",
        action="model.alias.set",
        resource_type="aliases",
        resource_id="fraud@prod",
        workspace="default",
        details={"before": 1, "after": 666},
        prev_hash=prev.hash,
        hash="",
    )
    record = replace(record, **changes)
    return replace(record, hash=record.computed_hash())


def only_issue(engine: Engine) -> tuple[int, str]:
    report = verify_chain(engine)
    assert not report.ok
    assert len(report.issues) == 1, str(report)
    return report.issues[0].seq, report.issues[0].kind


class TestChain:
    def test_records_link_by_hash_of_canonical_json(self, audit: AuditLog, engine: Engine) -> None:
        recs = records(engine)
        assert sorted(recs) == list(range(1, N + 1))
        assert recs[1].prev_hash == GENESIS_HASH
        for seq in range(2, N + 1):
            assert recs[seq].prev_hash == recs[seq - 1].hash
        first = recs[1]
        body = {k: v for k, v in first.to_dict().items() if k != "hash"}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert "ünïcode ✓" in text
        import hashlib

        assert first.hash == hashlib.sha256(text.encode()).hexdigest()

    def test_intact_log_verifies(self, audit: AuditLog, engine: Engine) -> None:
        report = verify_chain(engine)
        assert report.ok, str(report)
        assert report.checked == N and report.head_seq == N
        assert report.head_hash == records(engine)[N].hash
        assert str(report).startswith(f"Audit log intact: {N} records")

    def test_empty_log_verifies(self, engine: Engine) -> None:
        report = verify_chain(engine)
        assert report.ok and report.checked == 0 and report.head_hash == GENESIS_HASH

    def test_records_are_emitted_as_json_lines(
        self, engine: Engine, caplog: pytest.LogCaptureFixture
    ) -> None:
        log = AuditLog(engine)
        with caplog.at_level(logging.INFO, logger="shipyard.audit"):
            record = log.append("user:alice", "run.delete", resource_type="runs", resource_id="r1")
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "shipyard.audit"]
        assert lines == [record.to_dict() | {"event": "audit"}]

    def test_append_inside_a_callers_transaction_rolls_back_with_it(self, engine: Engine) -> None:
        log = AuditLog(engine, emit=False)
        with pytest.raises(RuntimeError), engine.begin() as conn:
            log.append("user:alice", "model.delete", conn=conn)
            raise RuntimeError("the change failed")
        assert list(iter_records(engine)) == []
        with engine.begin() as conn:
            log.append("user:alice", "model.delete", conn=conn)
        assert verify_chain(engine).ok


class TestTamperDetection:
    def test_edited_record(self, audit: AuditLog, engine: Engine) -> None:
        with engine.begin() as conn:
            conn.execute(
                audit_log.update().where(audit_log.c.seq == 4).values(details='{"after":999}')
            )
        assert only_issue(engine) == (4, "modified")

    @pytest.mark.parametrize("column", ["actor", "action", "resource_id", "workspace", "at"])
    def test_edited_column(self, audit: AuditLog, engine: Engine, column: str) -> None:
        value: Any = 12345 if column == "at" else "tampered"
        with engine.begin() as conn:
            conn.execute(audit_log.update().where(audit_log.c.seq == 6).values(**{column: value}))
        assert only_issue(engine) == (6, "modified")

    def test_edited_record_with_recomputed_hash(self, audit: AuditLog, engine: Engine) -> None:
        original = records(engine)[5]
        edited = replace(original, details={"before": 4, "after": 42})
        edited = replace(edited, hash=edited.computed_hash())
        with engine.begin() as conn:
            conn.execute(
                audit_log.update()
                .where(audit_log.c.seq == 5)
                .values(details=canonical_json(edited.details), hash=edited.hash)
            )
        seq, kind = only_issue(engine)
        assert (seq, kind) == (5, "modified")
        assert "hash was recomputed" in verify_chain(engine).issues[0].message

    def test_edited_last_record_with_recomputed_hash(self, audit: AuditLog, engine: Engine) -> None:
        original = records(engine)[N]
        edited = replace(original, actor="user:mallory")
        edited = replace(edited, hash=edited.computed_hash())
        with engine.begin() as conn:
            conn.execute(
                audit_log.update()
                .where(audit_log.c.seq == N)
                .values(actor=edited.actor, hash=edited.hash)
            )
        assert only_issue(engine) == (N, "modified")

    @pytest.mark.parametrize("seq", [1, 5, N])
    def test_deleted_record(self, audit: AuditLog, engine: Engine, seq: int) -> None:
        with engine.begin() as conn:
            conn.execute(audit_log.delete().where(audit_log.c.seq == seq))
        assert only_issue(engine) == (seq, "deleted")

    def test_deleted_tail_records(self, audit: AuditLog, engine: Engine) -> None:
        with engine.begin() as conn:
            conn.execute(audit_log.delete().where(audit_log.c.seq > N - 3))
        report = verify_chain(engine)
        assert [(i.seq, i.kind) for i in report.issues] == [
            (N - 2, "deleted"),
            (N - 1, "deleted"),
            (N, "deleted"),
        ]

    def test_inserted_record_at_the_end(self, audit: AuditLog, engine: Engine) -> None:
        # A perfectly forged record: right seq, right prev_hash, right hash.
        write(engine, forged(records(engine)[N], N + 1))
        assert only_issue(engine) == (N + 1, "inserted")

    def test_inserted_record_in_the_middle(self, audit: AuditLog, engine: Engine) -> None:
        recs = records(engine)
        for seq in range(N, 5, -1):  # make room at seq 6, as an attacker would
            set_seq(engine, seq, seq + 1)
        write(engine, forged(recs[5], 6))
        report = verify_chain(engine)
        assert report.issue_for(6) is not None
        assert report.issue_for(6).kind == "inserted"  # type: ignore[union-attr]
        # The shifted records are intact but sit one seq later than they were written.
        for seq in range(7, N + 2):
            issue = report.issue_for(seq)
            assert issue is not None and issue.kind == "reordered", str(report)
            assert f"written as seq {seq - 1}" in issue.message

    def test_inserted_record_with_a_made_up_hash(self, audit: AuditLog, engine: Engine) -> None:
        last = records(engine)[N]
        write(engine, replace(forged(last, N + 1), hash="f" * 64))
        assert only_issue(engine) == (N + 1, "inserted")

    def test_swapped_records(self, audit: AuditLog, engine: Engine) -> None:
        set_seq(engine, 3, -1)
        set_seq(engine, 4, 3)
        set_seq(engine, -1, 4)
        report = verify_chain(engine)
        assert [(i.seq, i.kind) for i in report.issues] == [(3, "reordered"), (4, "reordered")]
        assert "written as seq 4" in report.issues[0].message

    def test_swapped_contents(self, audit: AuditLog, engine: Engine) -> None:
        recs = records(engine)
        cols = {
            "at",
            "actor",
            "action",
            "resource_type",
            "resource_id",
            "workspace",
            "prev_hash",
            "hash",
        }
        with engine.begin() as conn:
            for seq, source in ((7, recs[8]), (8, recs[7])):
                values = {c: getattr(source, c) for c in cols}
                values["details"] = canonical_json(source.details)
                conn.execute(audit_log.update().where(audit_log.c.seq == seq).values(**values))
        report = verify_chain(engine)
        assert [(i.seq, i.kind) for i in report.issues] == [(7, "reordered"), (8, "reordered")]

    def test_head_removed(self, audit: AuditLog, engine: Engine) -> None:
        with engine.begin() as conn:
            conn.execute(audit_head.delete())
        assert only_issue(engine) == (1, "inserted")

    def test_appending_after_a_deletion_keeps_the_gap_visible(
        self, audit: AuditLog, engine: Engine
    ) -> None:
        with engine.begin() as conn:
            conn.execute(audit_log.delete().where(audit_log.c.seq == N))
        audit.append("user:alice", "run.delete")
        report = verify_chain(engine)
        assert [(i.seq, i.kind) for i in report.issues] == [(N, "deleted")]
        assert report.head_seq == N + 1


def test_concurrent_appends_from_four_processes_keep_one_chain(engine: Engine, db_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=append_many, args=(db_url, w, 25, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    report = verify_chain(engine)
    assert report.ok, str(report)
    assert report.checked == 100 and report.head_seq == 100
    chain = list(iter_records(engine))
    assert len({r.resource_id for r in chain}) == 100


def test_verifying_while_others_append_reports_no_tampering(engine: Engine) -> None:
    log = AuditLog(engine, emit=False)
    log.append("user:alice", "run.log")
    done = threading.Event()

    def writer() -> None:
        for i in range(150):
            log.append("user:alice", "run.log", details={"i": i})
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reports = []
    while not done.is_set():
        reports.append(verify_chain(engine))
    thread.join()
    reports.append(verify_chain(engine))
    assert all(r.ok for r in reports), next(str(r) for r in reports if not r.ok)
    assert reports[-1].checked == 151


class TestHelpersAndExport:
    def test_log_prediction_keeps_only_a_hash_of_the_features(self, engine: Engine) -> None:
        log = AuditLog(engine, emit=False)
        features = {"amount": np.float64(12.5), "country": "FR", "vec": np.array([1, 2, 3])}
        record = log.log_prediction(
            "sa:scorer", "fraud", 3, features, np.array([0.91]), workspace="default"
        )
        plain = {"amount": 12.5, "country": "FR", "vec": [1, 2, 3]}
        assert record.details["features_sha256"] == payload_sha256(plain)
        assert record.details["prediction"] == [0.91]
        assert "FR" not in canonical_json(record.details)
        assert record.resource_id == "fraud/3"
        # Key order does not change the hash: the payload is canonicalised.
        assert payload_sha256({"b": 1, "a": 2}) == payload_sha256({"a": 2, "b": 1})

    def test_log_model_update_and_login(self, engine: Engine) -> None:
        log = AuditLog(engine, emit=False)
        update = log.log_model_update(
            "user:alice",
            "fraud",
            {"prod": 3},
            {"prod": 4},
            action="model.alias.set",
            reason="better auc",
        )
        assert update.details == {
            "before": {"prod": 3},
            "after": {"prod": 4},
            "reason": "better auc",
        }
        login = log.log_login("alice", False, client_ip="10.1.1.1", reason="bad_credentials")
        assert (login.actor, login.action) == ("user:alice", "login.failure")
        assert verify_chain(engine).ok

    def test_export_jsonl_and_csv(self, audit: AuditLog, engine: Engine) -> None:
        out = io.StringIO()
        assert export(engine, out, format="jsonl") == N
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [line["seq"] for line in lines] == list(range(1, N + 1))
        assert lines[0]["details"]["note"] == "ünïcode ✓"
        out = io.StringIO()
        since = records(engine)[6].at
        expected = [r.seq for r in records(engine).values() if r.at >= since]
        assert audit.export(out, since=since, format="csv") == len(expected)
        rows = list(csv.DictReader(io.StringIO(out.getvalue())))
        assert [int(r["seq"]) for r in rows] == expected
        assert json.loads(rows[-1]["details"])["after"] == N
        assert rows[-1]["hash"] == records(engine)[N].hash
        with pytest.raises(InvalidArgumentError, match="Unknown export format 'xml'"):
            export(engine, io.StringIO(), format="xml")

    def test_unicode_and_lone_surrogates_are_stored_safely(self, engine: Engine) -> None:
        log = AuditLog(engine, emit=False)
        log.append("user:\ud800x", "login.failure", details={"name": "\udcff ok ✓"})
        assert verify_chain(engine).ok
