"""``shipyard audit``: check the hash chain of the audit log and export it.

Acts on the local metadata DB when ``SHIPYARD_URL`` is unset, else on the server.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli._common import console, err_console

app = typer.Typer(no_args_is_help=True)


def parse_when(text: str | None, option: str) -> datetime | None:
    """An ISO date or date-time; one without a time zone is taken as UTC."""
    from shipyard.errors import InvalidArgumentError

    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgumentError(
            f"Invalid {option} {text!r}.",
            hint="Write a date or date-time such as 2026-01-01 or 2026-01-01T08:00:00Z (UTC "
            "unless a time zone is given).",
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@app.command("verify")
def verify() -> None:
    """Check every record's hash and link; name each modified, deleted, inserted or
    reordered record by its seq. Exits non-zero when the log was tampered with."""
    from shipyard.cli._security import open_admin
    from shipyard.config import load_settings
    from shipyard.errors import IntegrityError

    with open_admin(load_settings()) as admin:
        report = admin.verify_audit()
    if report.ok:
        console.print(
            f"OK: audit log intact, {report.checked} records, head seq {report.head_seq} "
            f"hash {report.head_hash}",
            highlight=False,
        )
        err_console.print(
            "Keep the head hash somewhere else too (a ticket, object storage with retention):"
            " it proves later that the whole log was not rewritten."
        )
        return
    for issue in report.issues:
        console.print(f"seq {issue.seq}: {issue.kind}: {issue.message}", highlight=False)
    raise IntegrityError(
        f"Audit log tampered: {len(report.issues)} problem(s) in {report.checked} records "
        f"({admin.where}).",
        hint="Restore the audit_log table from a backup and find out who had write access "
        "to the metadata database.",
    )


@app.command("export")
def export(
    since: Annotated[
        str | None, typer.Option("--since", help="From this date (UTC), e.g. 2026-01-01.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Up to (not including) this date (UTC).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl or csv.")] = "jsonl",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to this file (default: stdout).")
    ] = None,
) -> None:
    """Export audit records as JSON lines or CSV."""
    from shipyard.cli._security import open_admin
    from shipyard.config import load_settings
    from shipyard.errors import InvalidArgumentError

    if fmt not in ("jsonl", "csv"):
        raise InvalidArgumentError(f"Unknown format {fmt!r}.", hint="Use --format jsonl or csv.")
    start, end = parse_when(since, "--since"), parse_when(until, "--until")
    with open_admin(load_settings()) as admin:
        if out is None:
            count = admin.export_audit(sys.stdout, start, end, fmt)
            sys.stdout.flush()
        else:
            with out.open("w", encoding="utf-8", newline="") as target:
                count = admin.export_audit(target, start, end, fmt)
    where = f" to {out}" if out else ""
    err_console.print(f"Exported {count} audit records{where}.")
