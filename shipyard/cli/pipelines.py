"""``shipyard pipelines``: run, list, show, logs, resume, cancel."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)

# Schedules, backfills and compilers live in their own module and add their commands here.
from shipyard.cli import pipeline_schedules  # noqa: E402

pipeline_schedules.register(app)
