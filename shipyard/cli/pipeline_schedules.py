"""``shipyard pipelines schedule|backfill|compile``: commands added to the pipelines group."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``pipelines`` group."""
