"""Audit log routes: read records, verify the hash chain, export as JSON lines or CSV.

The audit log is site-wide (it spans every workspace), so these routes need a site-wide
role with ``audit:read``.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from shipyard.errors import InvalidArgumentError
from shipyard.security.audit import export_lines, iter_records, verify_chain
from shipyard.server.deps import PermissionRoute, Platform, platform, requires
from shipyard.server.schemas import ERROR_RESPONSES
from shipyard.server.security_schemas import AuditList, AuditVerifyOut

__all__ = ["MAX_RECORDS", "parse_time", "router"]

router = APIRouter(route_class=PermissionRoute, responses=ERROR_RESPONSES, tags=["audit"])

PlatformDep = Annotated[Platform, Depends(platform)]
ReadAudit = [Depends(requires("audit", "read", site=True))]

#: Most records one GET /audit returns.
MAX_RECORDS = 10_000

_TIME = Query(max_length=64, description="Epoch milliseconds or ISO 8601 time (naive means UTC)")
TimeParam = Annotated[str | None, _TIME]
_MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def parse_time(value: str | None, name: str) -> int | None:
    """Epoch ms from ``1714000000000`` or ``2024-04-25T00:00:00Z``; 400 otherwise."""
    if value is None or value == "":
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        ms = int(text)
        if abs(ms) < 2**62:
            return ms
    else:
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)
    raise InvalidArgumentError(
        f"'{name}' must be epoch milliseconds or an ISO 8601 time, not {value[:64]!r}.",
        hint="For example 2024-04-25T00:00:00Z or 1714003200000.",
    )


@router.get("/audit", response_model=AuditList, dependencies=ReadAudit)
def list_audit_records(
    state: PlatformDep,
    since: TimeParam = None,
    until: TimeParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RECORDS)] = 1000,
) -> Any:
    """Records with ``since <= at < until``, oldest first, at most ``limit``."""
    records = iter_records(
        state.engine, since=parse_time(since, "since"), until=parse_time(until, "until")
    )
    return {"records": [r.to_dict() for r in itertools.islice(records, limit)]}


@router.get("/audit/verify", response_model=AuditVerifyOut, dependencies=ReadAudit)
def verify_audit_log(state: PlatformDep) -> Any:
    """Check every record's hash, the chain's links and its head; issues name the
    ``seq`` of each modified, deleted, inserted or reordered record."""
    report = verify_chain(state.engine)
    return {
        "ok": report.ok,
        "checked": report.checked,
        "issues": [{"seq": i.seq, "kind": i.kind, "message": i.message} for i in report.issues],
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
    }


@router.get(
    "/audit/export",
    response_class=StreamingResponse,
    dependencies=ReadAudit,
    responses={
        200: {
            "description": "One record per line (JSON lines), or CSV with a header row.",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
def export_audit_log(
    state: PlatformDep,
    format: Literal["jsonl", "csv"] = "jsonl",
    since: TimeParam = None,
    until: TimeParam = None,
) -> Any:
    """Stream the records as JSON lines or CSV (``details`` as a JSON string)."""
    lines = export_lines(
        state.engine,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
        format=format,
    )
    filename = f"shipyard-audit.{format}"
    return StreamingResponse(
        lines,
        media_type=_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
